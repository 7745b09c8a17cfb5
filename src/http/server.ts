// The HTTP front: matches a request against the route table, applies the registry-wide rules
// (name grammar, read-only mode, deletes), runs the handler and turns every failure into the
// OCI error JSON. One access-log line per request.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Services } from '../app.js';
import type { Scope } from '../auth/access.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { TokenServer } from '../auth/token-server.js';
import type { Config } from '../config/load.js';
import { RegistryError, RegistryErrors } from '../registry/errors.js';
import { validateName } from '../registry/names.js';
import type { RequestContext } from './context.js';
import { eventFor } from '../ops/events.js';
import { serveOps, type OpsEndpoints } from '../ops/health.js';
import type { Metrics } from '../ops/metrics.js';
import type { Notifier } from '../ops/notifications.js';
import { createListener, type Listener } from './listener.js';
import { ACTIONS_FOR, ROUTES, type Route } from './routes.js';

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
  return createListener(config.tls, log, (req, res) => {
    const started = process.hrtime.bigint();
    const socket = req.socket;
    const readAtStart = socket.bytesRead;
    const writtenAtStart = socket.bytesWritten;
    const given = req.headers['x-request-id'];
    const info: RequestInfo = {
      id: typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID(), route: 'unknown', name: '', param: '', base: '',
    };
    for (const [name, value] of fixedHeaders) res.setHeader(name, value);
    res.setHeader('X-Request-Id', info.id);
    let uploading = false;
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      // the body's declared length, else what the socket read during the request (chunked bodies)
      const bytesIn = Number(req.headers['content-length'] ?? NaN) || Math.max(0, socket.bytesRead - readAtStart);
      const bytesOut = Math.max(0, socket.bytesWritten - writtenAtStart);
      if (uploading) metrics?.uploadsInFlight.dec();
      metrics?.observeRequest(info.route, req.method ?? '', res.statusCode, seconds, bytesIn, bytesOut);
      if (config.log.accessLog) {
        log.info({
          reqId: info.id, method: req.method, route: info.route, repository: info.name || undefined, status: res.statusCode,
          bytesIn, bytesOut, ms: Math.round(seconds * 100_000) / 100, user: info.user, remote: socket.remoteAddress,
          complete: res.writableFinished || undefined,
        }, 'request');
      }
      if (notifier?.enabled && res.writableFinished && info.query) {
        const event = eventFor({ ...info, query: info.query, requestId: info.id, req, res, listenAddr: config.http.addr });
        if (event) notifier.publish(event);
      }
    });
    if (serveOps(req.url?.split('?')[0] ?? '/', req, res, ops.endpoints)) {
      info.route = 'ops';
      return;
    }
    dispatch(req, res, services, config, log, security, info, () => {
      uploading = true;
      metrics?.uploadsInFlight.inc();
    }).catch((err) => fail(res, err, log.child({ reqId: info.id })));
  });
}

async function dispatch(req: IncomingMessage, res: ServerResponse, services: Services, config: Config, log: Logger,
                        security: Security, info: RequestInfo, onUpload: () => void): Promise<void> {
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
  const name = match[1] === undefined ? '' : validateName(match[1]);
  let param = match[2] ?? '';
  try {
    param = decodeURIComponent(param);
  } catch {
    throw new RegistryError('UNSUPPORTED', 'the path holds malformed percent-encoding', undefined, 400);
  }
  const base = baseUrl(req, config);
  Object.assign(info, { name, param, query, base });
  if (UPLOAD_ROUTES.has(route.name) && req.method !== 'GET' && req.method !== 'DELETE') onUpload();
  const required: Scope[] = route.resource === 'catalog' ? [{ type: 'registry', name: 'catalog', actions: ['*'] }]
    : route.resource === 'repository' ? [{ type: 'repository', name, actions: ACTIONS_FOR[method.effect] }] : [];
  const auth = await security.authenticator.authenticate(req, required, baseUrl(req, config, true));
  info.user = auth.identity.user;
  if (method.effect !== 'read' && config.storage.readOnly) {
    throw new RegistryError('UNSUPPORTED', 'the registry is in read-only mode (storage.maintenance.readonly.enabled)');
  }
  if (method.effect === 'delete' && !config.storage.deleteEnabled) {
    throw new RegistryError('UNSUPPORTED', 'deletes are disabled; set storage.delete.enabled: true (REGISTRY_STORAGE_DELETE_ENABLED=true) to allow them');
  }
  const ctx: RequestContext = { req, res, name, param, query, services, config, log, base, auth };
  await method.handler(ctx);
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

/** Serialises a failure as the OCI error JSON; anything that is not a RegistryError is a bug (500). */
function fail(res: ServerResponse, err: unknown, log: Logger): void {
  let errors: RegistryError[];
  if (err instanceof RegistryErrors) errors = err.errors;
  else if (err instanceof RegistryError) errors = [err];
  else if (isClientGone(err)) {
    res.destroy();
    return;
  } else {
    log.error({ err }, 'internal error');
    errors = [new RegistryError('UNKNOWN', 'internal error; see the registry log')];
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const status = errors[0]!.status;
  for (const e of errors) for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v);
  const body = Buffer.from(JSON.stringify({
    errors: errors.map((e) => ({ code: e.code, message: e.message, detail: e.detail ?? {} })),
  }));
  // A body we did not read would otherwise be drained; close instead of reading a large upload.
  if (!res.req.complete && res.req.httpVersionMajor === 1) res.setHeader('Connection', 'close');
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function isClientGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'EPIPE' || code === 'ECONNABORTED';
}
