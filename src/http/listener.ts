// The listening server: plain HTTP/1.1, or TLS with HTTP/2 and HTTP/1.1 side by side (ALPN),
// with optional client-certificate verification.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';

export type Listener = Server | Http2SecureServer;
type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const TLS_VERSIONS = { 'tls1.0': 'TLSv1', 'tls1.1': 'TLSv1.1', 'tls1.2': 'TLSv1.2', 'tls1.3': 'TLSv1.3' } as const;

export function createListener(tls: Config['tls'], log: Logger, handler: Handler): Listener {
  if (!tls) {
    const server = createServer({
      requestTimeout: 0, // a layer upload may legitimately take many minutes
      headersTimeout: 60_000,
      keepAliveTimeout: 65_000,
    }, handler);
    // Clients probe a plain-HTTP port with a TLS ClientHello first; answer 400 and move on.
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      log.debug({ err: err.message, code: err.code }, 'malformed request on the connection');
      if (socket.writable && !socket.destroyed) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    return server;
  }
  const verifyClients = tls.clientCAs.length > 0;
  const mode = tls.clientAuth;
  const server = createSecureServer({
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
  server.on('tlsClientError', (err) => log.debug({ err: err.message }, 'TLS handshake failed'));
  return server;
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
