// What every handler receives: the request, its parsed parts and the registry services.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import type { Services } from '../app.js';
import type { RequestAuth } from '../auth/authenticator.js';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** Repository name from the path, validated. Empty for routes without one. */
  name: string;
  /** The last path segment of routes that have one (reference, digest or upload id). */
  param: string;
  query: URLSearchParams;
  services: Services;
  config: Config;
  log: Logger;
  /** Absolute or relative base for Location headers, ending before "/v2/". */
  base: string;
  /** The caller and what it may do. */
  auth: RequestAuth;
}

export type Handler = (ctx: RequestContext) => Promise<void>;

/** Sends a response; HEAD requests get the headers only. */
export function send(ctx: RequestContext, status: number, headers: Record<string, string | number>, body?: Buffer | string): void {
  ctx.res.writeHead(status, headers);
  if (ctx.req.method === 'HEAD' || body === undefined) ctx.res.end();
  else ctx.res.end(body);
}

export function sendJson(ctx: RequestContext, status: number, value: unknown,
                         headers: Record<string, string | number> = {}, contentType = 'application/json; charset=utf-8'): void {
  const body = Buffer.from(JSON.stringify(value));
  send(ctx, status, { 'Content-Type': contentType, 'Content-Length': body.length, ...headers }, body);
}

/** Whether the request carries a body worth reading (Content-Length > 0 or chunked). */
export function hasBody(ctx: RequestContext): boolean {
  const length = ctx.req.headers['content-length'];
  if (length !== undefined) return Number(length) > 0;
  return ctx.req.headers['transfer-encoding'] !== undefined;
}

/**
 * Reads a request body into memory, refusing more than `limit` bytes. A refusal stops reading
 * without destroying the request, so that the error answer still reaches the client (the
 * error path discards the rest of the body).
 */
export function readBody(req: IncomingMessage, limit: number, tooLarge: (limit: number) => Error): Promise<Buffer> {
  if (Number(req.headers['content-length'] ?? 0) > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const settle = (err: Error | undefined) => {
      req.off('data', onData).off('end', onEnd).off('error', settle).off('close', onClose);
      if (err) {
        req.pause();
        reject(err);
      } else {
        resolve(Buffer.concat(chunks));
      }
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > limit) settle(tooLarge(limit));
      else chunks.push(chunk);
    };
    const onEnd = () => settle(undefined);
    const onClose = () => settle(Object.assign(new Error('the client closed the connection'), { code: 'ECONNRESET' }));
    req.on('data', onData).once('end', onEnd).once('error', settle).once('close', onClose);
  });
}
