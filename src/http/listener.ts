// The listening server: plain HTTP/1.1, or TLS with HTTP/2 and HTTP/1.1 side by side (ALPN),
// with optional client-certificate verification, and the connection-level limits: header and
// idle timeouts, and answers to requests too malformed to reach the router.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createSecureServer, type Http2SecureServer, type Http2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';

export type Listener = Server | Http2SecureServer;
type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface Timeouts {
  /** The whole header block must arrive within this (0: no limit). */
  headersMs: number;
  /** A connection on which nothing moves for this long is closed (0: no limit); see onStall. */
  idleMs: number;
}

/** Why a request was cut off: its body stopped arriving, or its client stopped reading. */
export type Stall = 'body' | 'download';

const TLS_VERSIONS = { 'tls1.0': 'TLSv1', 'tls1.1': 'TLSv1.1', 'tls1.2': 'TLSv1.2', 'tls1.3': 'TLSv1.3' } as const;
const KEEP_ALIVE_MS = 65_000;

/** How requests too malformed to reach the router are answered, by Node's error code:
 *  status, reason phrase, OCI error code, message. */
const CLIENT_ERRORS: Record<string, [number, string, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large', 'UNSUPPORTED', 'the request headers exceed the size limit'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout', 'UNSUPPORTED', 'the request headers did not arrive in time (http.timeouts.headers)'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'Payload Too Large', 'SIZE_INVALID', 'chunk extensions exceed the size limit'],
};
const MALFORMED: [number, string, string, string] = [400, 'Bad Request', 'UNSUPPORTED', 'malformed HTTP request'];
const HEADERS_IDLE: [number, string, string, string] = [408, 'Request Timeout', 'UNSUPPORTED', 'the request headers stopped arriving (http.timeouts.idle)'];

/**
 * The listening server. `onStall` is called for a request whose connection stayed idle for
 * `timeouts.idleMs` while the client was the one to move: sending a body, or reading an answer.
 * A request the registry itself is still working on is left alone.
 */
export function createListener(tls: Config['tls'], timeouts: Timeouts, log: Logger, handler: Handler,
                               onStall: (req: IncomingMessage, res: ServerResponse, stall: Stall) => void): Listener {
  const exchanges = new WeakMap<object, Set<{ req: IncomingMessage; res: ServerResponse }>>();
  /** Bytes an HTTP/1 connection had read when its last answer ended: more means a request has begun. */
  const answeredUpTo = new WeakMap<Socket, number>();
  const tracked: Handler = (req, res) => {
    // HTTP/1 requests share their socket, HTTP/2 requests their session: that is what times out
    const connection: object = req.httpVersionMajor === 2 ? (req as unknown as { stream: { session: object } }).stream.session : req.socket;
    let set = exchanges.get(connection);
    if (!set) exchanges.set(connection, (set = new Set()));
    const exchange = { req, res };
    set.add(exchange);
    res.once('close', () => {
      set!.delete(exchange);
      if (req.httpVersionMajor === 1) answeredUpTo.set(req.socket, req.socket.bytesRead);
    });
    handler(req, res);
  };
  const onTimeout = (connection: Socket | Http2Session) => {
    const active = exchanges.get(connection);
    if (!active || active.size === 0) {
      // the start of a request whose headers stopped coming is answered; an idle keep-alive
      // connection is just closed
      const socket = connection as Socket;
      if (typeof socket.bytesRead === 'number' && socket.bytesRead > (answeredUpTo.get(socket) ?? 0)) refuse(socket, HEADERS_IDLE);
      else connection.destroy();
      return;
    }
    for (const { req, res } of active) {
      // a body counts as stalled only while the registry is reading it (not while it waits on storage)
      if (!req.complete && req.readableFlowing === true) return onStall(req, res, 'body');
      if ('writableLength' in connection && connection.writableLength > 0) return onStall(req, res, 'download');
    }
  };
  const server = tls ? createTlsServer(tls, tracked) : createServer({
    requestTimeout: 0, // a layer upload may legitimately take many minutes
    headersTimeout: timeouts.headersMs,
    keepAliveTimeout: KEEP_ALIVE_MS,
    connectionsCheckingInterval: checkingInterval(timeouts.headersMs),
  }, tracked);
  if (tls) {
    // HTTP/1.1 over TLS shares the HTTP/1 server's limits; Node's defaults would cut uploads at 5 minutes
    Object.assign(server, { requestTimeout: 0, headersTimeout: timeouts.headersMs, keepAliveTimeout: KEEP_ALIVE_MS,
      connectionsCheckingInterval: checkingInterval(timeouts.headersMs) });
    server.on('tlsClientError', (err) => log.debug({ err: err.message }, 'TLS handshake failed'));
  }
  (server as { timeout: number }).timeout = timeouts.idleMs;
  server.on('timeout', onTimeout);
  // Clients probe a plain-HTTP port with a TLS ClientHello first; answer 400 and move on.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    log.debug({ err: err.message, code: err.code }, 'malformed request on the connection');
    if (!socket.writable || socket.destroyed) {
      socket.destroy();
      return;
    }
    refuse(socket, CLIENT_ERRORS[err.code ?? ''] ?? MALFORMED);
  });
  return server;
}

/** Answers on a connection whose request never reached the router, then closes it. */
function refuse(socket: Socket, [status, reason, code, message]: [number, string, string, string]): void {
  const body = JSON.stringify({ errors: [{ code, message, detail: {} }] });
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  socket.destroySoon();
}

/** How often Node checks header deadlines: often enough that a short limit is kept to within half of it. */
function checkingInterval(headersMs: number): number {
  return headersMs > 0 ? Math.max(250, Math.min(30_000, Math.floor(headersMs / 2))) : 30_000;
}

function createTlsServer(tls: NonNullable<Config['tls']>, handler: Handler): Http2SecureServer {
  const verifyClients = tls.clientCAs.length > 0;
  const mode = tls.clientAuth;
  return createSecureServer({
    allowHTTP1: true,
    cert: readFileSync(tls.certificate),
    key: readFileSync(tls.key),
    ca: verifyClients ? tls.clientCAs.map((file) => readFileSync(file)) : undefined,
    requestCert: verifyClients,
    rejectUnauthorized: verifyClients && mode === 'require-and-verify-client-cert',
    minVersion: TLS_VERSIONS[tls.minimumTls as keyof typeof TLS_VERSIONS],
  }, (req, res) => {
    const request = req as unknown as IncomingMessage;
    const response = res as unknown as ServerResponse;
    if (verifyClients && !clientCertificateAcceptable(request.socket as TLSSocket, mode)) {
      response.writeHead(403, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ errors: [{ code: 'DENIED', message: 'a valid client certificate is required', detail: {} }] }));
      return;
    }
    handler(request, response);
  });
}

function clientCertificateAcceptable(socket: TLSSocket, mode: string): boolean {
  const presented = Object.keys(socket.getPeerCertificate?.() ?? {}).length > 0;
  switch (mode) {
    case 'request-client-cert': return true;
    case 'require-any-client-cert': return presented;
    case 'verify-client-cert-if-given': return !presented || socket.authorized;
    default: return socket.authorized;
  }
}

/** Closes idle keep-alive connections (or all of them) where the server type allows it. */
export function closeConnections(server: Listener, all: boolean): void {
  const http1 = server as Partial<Server>;
  if (all) http1.closeAllConnections?.(); else http1.closeIdleConnections?.();
}
