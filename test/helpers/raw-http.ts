// Raw HTTP/1.1 over a socket, for requests fetch will not send (two Host headers, huge header
// blocks, bodies written while the answer is read, clients that stall or leave).
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The socket error seen, if any (the answer may still have arrived before it). */
  error?: string;
  /** Milliseconds from connecting to the end of the exchange. */
  ms: number;
}

export interface RawOptions {
  /** Bytes written after the head, streamed while the answer is read (as Go's client does). */
  body?: Buffer;
  /** Write the body with chunked transfer encoding (the head must say so). */
  chunked?: boolean;
  /** Give up after this long (the socket is destroyed); default 20 s. */
  timeoutMs?: number;
  /** Look at the answer only once the whole body is written, as simple clients do (curl, urllib3). */
  writeWholeBody?: boolean;
}

/** Parses the first response in `text`; undefined until its head and body are complete. */
export function parseResponse(text: string): Omit<RawResponse, 'ms'> | undefined {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  const body = text.slice(end + 4);
  if (Buffer.byteLength(body) < length) return undefined;
  return { status: Number(statusLine!.split(' ')[1]), headers, body: body.slice(0, length) };
}

/** Sends `head` (request line and headers, without the blank line) and optionally a body. */
export function rawRequest(url: string, head: string, options: RawOptions = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  const started = Date.now();
  return new Promise((resolve) => {
    const socket: Socket = connect(Number(port), hostname);
    let text = '';
    let error: string | undefined;
    let settled = false;
    let written = !options.body || !options.writeWholeBody;
    const finish = () => {
      if (settled || (!written && !socket.destroyed && !error)) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const parsed = parseResponse(text);
      resolve({ ...(parsed ?? { status: 0, headers: {}, body: text }), error, ms: Date.now() - started });
    };
    const timer = setTimeout(() => { error ??= 'timeout'; finish(); }, options.timeoutMs ?? 20_000);
    socket.on('connect', () => {
      socket.write(`${head}\r\n\r\n`);
      const body = options.body;
      if (!body) return;
      let offset = 0;
      const pump = () => {
        while (offset < body.length && !socket.destroyed) {
          const piece = body.subarray(offset, offset + 65_536);
          offset += piece.length;
          const data = options.chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece;
          const more = offset < body.length || !options.chunked ? socket.write(data) : socket.write(Buffer.concat([data, Buffer.from('0\r\n\r\n')]));
          if (!more) {
            socket.once('drain', pump);
            return;
          }
        }
        if (offset >= body.length && !written) {
          written = true;
          if (parseResponse(text)) finish();
        }
      };
      pump();
    });
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      if (parseResponse(text)) finish();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => { error ??= err.code ?? err.message; });
    socket.on('close', finish);
  });
}

/** Opens a request and leaves it hanging after `sent` bytes of its body (or, with `partialHead`,
 *  in the middle of its header block); returns the socket. */
export function openRequest(url: string, head: string, sent: Buffer = Buffer.alloc(0), partialHead = false): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(partialHead ? head : `${head}\r\n\r\n`);
      if (sent.length) socket.write(sent, () => resolve(socket));
      else resolve(socket);
    });
    socket.on('error', reject);
  });
}

/** What comes back on a socket until it closes (or `timeoutMs` passes). */
export function readUntilClose(socket: Socket, timeoutMs = 10_000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve({ text, closed: false }), timeoutMs);
    socket.on('data', (chunk) => { text += chunk.toString('latin1'); });
    socket.on('error', () => undefined);
    socket.once('close', () => { clearTimeout(timer); resolve({ text, closed: true }); });
  });
}
