// The HTTP front: matches a request against the route table, applies the registry-wide rules
// (name grammar, read-only mode, deletes), runs the handler and turns every failure into the
// OCI error JSON. One access-log line per request.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Services } from '../app.js';
import type { Scope } from '../auth/access.js';
import { basicCredentials, type Authenticator, type RequestAuth } from '../auth/authenticator.js';
import { challengeHeader } from '../auth/challenge.js';
import type { TokenServer } from '../auth/token-server.js';
import type { Config } from '../config/load.js';
import { RegistryError, RegistryErrors } from '../registry/errors.js';
import { validateName } from '../registry/names.js';
import type { RequestContext } from './context.js';
import { eventFor } from '../ops/events.js';
import { serveOps, type OpsEndpoints } from '../ops/health.js';
import type { Metrics } from '../ops/metrics.js';
import type { Notifier } from '../ops/notifications.js';
import { createListener, type Listener, type Stall } from './listener.js';
import { ACTIONS_FOR, ROUTES, type Route } from './routes.js';
import { checkCrossSite } from './csrf.js';

export interface Operations {
  metrics?: Metrics;
  notifier?: Notifier;
  /** Health and metrics endpoints served on this listener. */
  endpoints: OpsEndpoints;
}

/** What the dispatcher learnt about a request, for the access log, metrics and events. */
interface RequestInfo {
  id: string;
  route: string;
  name: string;
  param: string;
  query?: URLSearchParams;
  base: string;
  user?: string;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;
const UPLOAD_ROUTES = new Set(['uploads', 'upload']);
/** RFC 3986 host with an optional port: a registered name or IPv4 address, or an IP literal. */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::\d{0,5})?$/;
/** Seconds a client is asked to wait when the registry is out of upload slots or descriptors. */
const RETRY_AFTER = '5';

export interface Security {
  authenticator: Authenticator;
  /** The embedded token server, when it answers on this listener. */
  tokenServer?: TokenServer;
}

const API_VERSION_HEADER = ['Docker-Distribution-API-Version', 'registry/2.0'] as const;

export function createRegistryServer(services: Services, config: Config, log: Logger, security: Security, ops: Operations): Listener {
  const fixedHeaders: [string, string | string[]][] = [
    [API_VERSION_HEADER[0], API_VERSION_HEADER[1]],
    ...Object.entries(config.http.headers),
  ];
  const { metrics, notifier } = ops;
  const uploads = { active: 0, limit: config.http.limits.uploads };
  const onStall = (req: IncomingMessage, res: ServerResponse, stall: Stall) => {
    cutOff.set(res, 'timed out');
    if (stall === 'body' && !res.headersSent) {
      const seconds = config.http.timeouts.idleMs / 1000;
      fail(res, new RegistryError('SIZE_INVALID', `the request body stopped arriving: nothing came for ${seconds} s (http.timeouts.idle)`,
        undefined, 408), log, true);
    } else {
      abandon(req);
    }
  };
  return createListener(config.tls, config.http.timeouts, log, (req, res) => {
    const started = process.hrtime.bigint();
    const socket = req.socket;
    const writtenAtStart = socket.bytesWritten;
    const received = countBody(req);
    const given = req.headers['x-request-id'];
    const info: RequestInfo = {
      id: typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID(), route: 'unknown', name: '', param: '', base: '',
    };
    for (const [name, value] of fixedHeaders) res.setHeader(name, value);
    res.setHeader('X-Request-Id', info.id);
    let uploading = false;
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const finished = res.writableFinished;
      // a complete body is the length it declared; otherwise what actually arrived
      const declared = Number(req.headers['content-length'] ?? NaN);
      const bytesIn = req.complete && Number.isFinite(declared) ? declared : received();
      const bytesOut = Math.max(0, socket.bytesWritten - writtenAtStart);
      // a status the client never got is not reported: it left (or was cut off) first
      const status = finished || res.headersSent ? res.statusCode : undefined;
      const outcome = finished ? undefined : cutOff.get(res) ?? 'client closed';
      if (uploading) {
        uploads.active--;
        metrics?.uploadsInFlight.dec();
      }
      metrics?.observeRequest(info.route, req.method ?? '', status ?? CLIENT_CLOSED, seconds, bytesIn, bytesOut);
      if (config.log.accessLog) {
        log.info({
          reqId: info.id, method: req.method, route: info.route, repository: info.name || undefined, status, outcome,
          bytesIn, bytesOut, ms: Math.round(seconds * 100_000) / 100, user: info.user,
          triedUser: status === 401 ? triedUser(req) : undefined, remote: socket.remoteAddress, complete: finished || undefined,
        }, 'request');
      }
      if (notifier?.enabled && finished && info.query) {
        const event = eventFor({ ...info, query: info.query, requestId: info.id, req, res, listenAddr: config.http.addr });
        if (event) notifier.publish(event);
      }
    });
    if (serveOps(req.url?.split('?')[0] ?? '/', req, res, ops.endpoints)) {
      info.route = 'ops';
      return;
    }
    dispatch(req, res, services, config, log, security, info, () => {
      if (uploads.active >= uploads.limit) {
        throw new RegistryError('TOOMANYREQUESTS',
          `the registry is serving ${uploads.limit} uploads already (http.limits.uploads); retry in a few seconds`)
          .withHeaders({ 'Retry-After': RETRY_AFTER });
      }
      uploading = true;
      uploads.active++;
      metrics?.uploadsInFlight.inc();
    }).catch((err) => fail(res, err, log.child({ reqId: info.id })));
  }, onStall);
}

/** Who a public route's handler sees: no one in particular, with no rights. */
const NOBODY: RequestAuth = { identity: {}, can: () => false, canList: () => false, unrestricted: false, canEverywhere: () => false };

/** nginx's convention for the metrics of requests whose client left before any answer. */
const CLIENT_CLOSED = 499;

/** Why the registry ended a request before its answer was complete, for the access log. */
const cutOff = new WeakMap<ServerResponse, 'timed out' | 'failed while answering'>();

async function dispatch(req: IncomingMessage, res: ServerResponse, services: Services, config: Config, log: Logger,
                        security: Security, info: RequestInfo, onUpload: () => void): Promise<void> {
  checkHost(req);
  const rawUrl = req.url ?? '/';
  const queryAt = rawUrl.indexOf('?');
  let path = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
  const query = new URLSearchParams(queryAt === -1 ? '' : rawUrl.slice(queryAt + 1));
  const prefix = config.http.prefix;
  if (prefix) {
    if (path !== prefix && !path.startsWith(`${prefix}/`)) throw notFound();
    path = path.slice(prefix.length) || '/';
  }
  if (security.tokenServer && path === config.tokenServer.path) {
    await security.tokenServer.handle(req, res, query);
    return;
  }
  if (path === '/v2') {
    res.writeHead(301, { Location: `${prefix}/v2/`, 'Content-Length': 0 }).end();
    return;
  }
  const [route, match] = findRoute(path);
  if (!route || !match) throw notFound();
  info.route = route.name;
  const method = route.methods[req.method ?? ''];
  if (!method) {
    res.setHeader('Allow', Object.keys(route.methods).join(', '));
    throw new RegistryError('UNSUPPORTED', `${req.method} is not allowed on ${route.name}; use ${Object.keys(route.methods).join(', ')}`);
  }
  const name = match[1] === undefined ? '' : services.policy.localName(validateName(match[1]), query);
  let param = match[2] ?? '';
  try {
    param = decodeURIComponent(param);
  } catch {
    throw new RegistryError('UNSUPPORTED', 'the path holds malformed percent-encoding', undefined, 400);
  }
  const base = baseUrl(req, config);
  Object.assign(info, { name, param, query, base });
  const required: Scope[] = route.resource === 'catalog' ? [{ type: 'registry', name: 'catalog', actions: ['*'] }]
    : route.resource === 'repository' ? [{ type: 'repository', name, actions: ACTIONS_FOR[method.effect] }] : [];
  if (method.effect !== 'read') checkCrossSite(req, config.http.host);
  // the web UI's page and files hold no data: they are served to everyone, and read the rest with the user's credentials
  const auth = route.resource === 'public' ? NOBODY : await security.authenticator.authenticate(req, required, baseUrl(req, config, true));
  info.user = auth.identity.user;
  if (method.effect !== 'read' && config.storage.readOnly) {
    throw new RegistryError('UNSUPPORTED', 'the registry is in read-only mode (storage.maintenance.readonly.enabled)');
  }
  if (method.effect === 'delete' && !config.storage.deleteEnabled) {
    throw new RegistryError('UNSUPPORTED', 'deletes are disabled; set storage.delete.enabled: true (REGISTRY_STORAGE_DELETE_ENABLED=true) to allow them');
  }
  if (route.resource === 'repository') services.policy.check(name, method.effect);
  if (UPLOAD_ROUTES.has(route.name) && req.method !== 'GET' && req.method !== 'DELETE') onUpload();
  const ctx: RequestContext = { req, res, name, param, query, services, config, log, base, auth };
  await method.handler(ctx);
}

/** Exactly one Host, and a well-formed one (RFC 9110 section 7.2): anything else is a 400. */
function checkHost(req: IncomingMessage): void {
  let count = 0;
  let value = '';
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() !== 'host') continue;
    count++;
    value = req.rawHeaders[i + 1]!;
  }
  if (count > 1 || !HOST.test(value)) {
    throw new RegistryError('UNSUPPORTED', count > 1 ? 'the request has more than one Host header' :
      `the Host header ${JSON.stringify(value.slice(0, 100))} is not a host name with an optional port`, undefined, 400);
  }
}

/** The user name of Basic credentials that were refused, for the access log (never the password). */
function triedUser(req: IncomingMessage): string | undefined {
  const credentials = basicCredentials(req);
  return credentials ? credentials.user.slice(0, 128) : undefined;
}

/**
 * Counts the body bytes the request receives, for the access log and metrics. The parser hands
 * every chunk to the request stream's push() (HTTP/1 and HTTP/2 alike); watching it there counts
 * what arrived without reading the body or changing its flow, which a 'data' listener would.
 * (Bytes of a body Node discards after the answer are not counted.)
 */
function countBody(req: IncomingMessage): () => number {
  let received = 0;
  const push = req.push.bind(req);
  req.push = (chunk: unknown, encoding?: BufferEncoding) => {
    if (chunk !== null && chunk !== undefined) received += (chunk as Buffer | string).length;
    return push(chunk, encoding);
  };
  return () => received;
}

function findRoute(path: string): [Route | undefined, RegExpExecArray | undefined] {
  for (const route of ROUTES) {
    const match = route.pattern.exec(path);
    if (match) return [route, match];
  }
  return [undefined, undefined];
}

/** Where Location headers point: http.host, or the request's own host, unless relative URLs are asked for
 *  (`absolute` overrides that: a token realm must be absolute). */
function baseUrl(req: IncomingMessage, config: Config, absolute = false): string {
  if (config.http.relativeUrls && !absolute) return config.http.prefix;
  if (config.http.host) return config.http.host + config.http.prefix;
  const forwardedProto = header(req, 'x-forwarded-proto');
  const proto = forwardedProto ?? ((req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http');
  const host = header(req, 'x-forwarded-host') ?? req.headers.host ?? 'localhost';
  return `${proto}://${host}${config.http.prefix}`;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return (Array.isArray(value) ? value[0] : value)?.split(',')[0]?.trim() || undefined;
}

function notFound(): RegistryError {
  return new RegistryError('UNSUPPORTED', 'no such endpoint in the registry API (see /v2/)', undefined, 404);
}

/**
 * Serialises a failure as the OCI error JSON; anything that is not a RegistryError is a bug (500),
 * except running out of file descriptors, which is a 503 with Retry-After. When the request body
 * is still arriving, the rest is discarded so that the client reads the answer (closing at once
 * would reset the connection under a client still sending, and lose the answer); `close` instead
 * closes the connection once the answer is out.
 */
function fail(res: ServerResponse, err: unknown, log: Logger, close = false): void {
  let errors: RegistryError[];
  if (err instanceof RegistryErrors) errors = err.errors;
  else if (err instanceof RegistryError) errors = [err];
  else if (isClientGone(err)) {
    res.destroy();
    return;
  } else if (isOutOfDescriptors(err)) {
    warnOutOfDescriptors(log, err);
    errors = [new RegistryError('UNAVAILABLE', 'the registry has run out of file descriptors; retry shortly')
      .withHeaders({ 'Retry-After': RETRY_AFTER })];
  } else {
    log.error({ err }, 'internal error');
    errors = [new RegistryError('UNKNOWN', 'internal error; see the registry log')];
  }
  if (res.headersSent) { // too late for an error answer: the client sees the answer cut short
    cutOff.set(res, 'failed while answering');
    res.destroy();
    return;
  }
  const status = errors[0]!.status;
  for (const e of errors) for (const [k, v] of Object.entries(e.headers)) res.setHeader(challengeHeader(res.req, k), v);
  const body = Buffer.from(JSON.stringify({
    errors: errors.map((e) => ({ code: e.code, message: e.message, detail: e.detail ?? {} })),
  }));
  const req = res.req;
  if (close) closeAfter(req, res);
  else if (!req.complete) discardBody(req, res);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** How much of an unwanted body is read and dropped, at most, before the connection is closed. */
const DISCARD_BYTES = 64 << 20;
const DISCARD_MS = 10_000;

/** Reads and drops the rest of a request body behind an early answer, within bounds. */
function discardBody(req: IncomingMessage, res: ServerResponse): void {
  if (req.destroyed) return;
  req.resume();
  if (req.httpVersionMajor === 2) { // the stream, not the connection, is what to end
    res.once('finish', () => abandon(req));
    return;
  }
  const socket = req.socket;
  const from = socket.bytesRead;
  const started = Date.now();
  const timer = setInterval(() => {
    if (socket.bytesRead - from > DISCARD_BYTES || Date.now() - started > DISCARD_MS) req.destroy();
  }, 50).unref();
  const done = () => {
    clearInterval(timer);
    socket.off('close', done);
  };
  req.once('end', done).once('close', done);
  socket.once('close', done);
}

function closeAfter(req: IncomingMessage, res: ServerResponse): void {
  if (req.httpVersionMajor === 1) res.setHeader('Connection', 'close');
  // a handler still reading the body must learn that no more will come (Node does not tell it
  // once the answer is out), or it would hold its upload, lock and file open for good
  res.once('finish', () => { if (!req.complete) req.destroy(); });
}

/** Ends a request's transport: its HTTP/2 stream, or its HTTP/1 connection. */
function abandon(req: IncomingMessage): void {
  if (!req.complete) { // destroying the request also tells whoever reads its body
    req.destroy();
    return;
  }
  const stream = (req as unknown as { stream?: { destroyed: boolean; close(code?: number): void } }).stream;
  if (req.httpVersionMajor === 2 && stream) {
    if (!stream.destroyed) stream.close();
  } else {
    req.socket.destroy();
  }
}

function isClientGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'EPIPE' || code === 'ECONNABORTED';
}

function isOutOfDescriptors(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EMFILE' || code === 'ENFILE';
}

let descriptorsWarnedAt = 0;

/** One warning a minute while the process is out of descriptors, not one per request. */
function warnOutOfDescriptors(log: Logger, err: unknown): void {
  if (Date.now() - descriptorsWarnedAt < 60_000) return;
  descriptorsWarnedAt = Date.now();
  log.warn({ err: (err as Error).message }, 'out of file descriptors: answering 503; raise the open-files limit (ulimit -n) or lower http.limits.uploads');
}
