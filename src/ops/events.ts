// Registry events in registry:2's notification envelope, derived from what a request did:
// the route it took, its method and its status. One place knows which requests are events.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';

export const EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v2+json';
export const INSTANCE_ID = randomUUID();

export interface RegistryEvent {
  id: string;
  timestamp: string;
  action: 'push' | 'pull' | 'delete' | 'mount';
  target: {
    mediaType?: string;
    size?: number;
    length?: number;
    digest?: string;
    repository: string;
    url?: string;
    tag?: string;
    fromRepository?: string;
  };
  request: { id: string; addr?: string; host?: string; method?: string; useragent?: string };
  actor: { name?: string };
  source: { addr: string; instanceID: string };
}

export interface Completed {
  route: string;
  req: IncomingMessage;
  res: ServerResponse;
  name: string;
  param: string;
  query: URLSearchParams;
  base: string;
  requestId: string;
  user?: string;
  listenAddr: string;
}

function header(res: ServerResponse, name: string): string | undefined {
  const value = res.getHeader(name);
  return value === undefined ? undefined : String(value);
}

/** The event a completed request amounts to, if any. */
export function eventFor(c: Completed): RegistryEvent | undefined {
  const { route, req, res } = c;
  const method = req.method;
  const status = res.statusCode;
  let action: RegistryEvent['action'] | undefined;
  let kind: 'manifests' | 'blobs' = 'blobs';
  if (route === 'manifest') {
    kind = 'manifests';
    if (method === 'GET' && status === 200) action = 'pull';
    else if (method === 'PUT' && status === 201) action = 'push';
    else if (method === 'DELETE' && status === 202) action = 'delete';
  } else if (route === 'blob') {
    if (method === 'GET' && (status === 200 || status === 206)) action = 'pull';
    else if (method === 'DELETE' && status === 202) action = 'delete';
  } else if (route === 'upload' && method === 'PUT' && status === 201) {
    action = 'push';
  } else if (route === 'uploads' && method === 'POST' && status === 201) {
    action = c.query.get('mount') ? 'mount' : 'push';
  }
  if (!action) return undefined;
  const digest = header(res, 'docker-content-digest') ?? (c.param.includes(':') ? c.param : undefined);
  const size = kind === 'manifests' && action === 'push' ? Number(req.headers['content-length'] ?? 0) || undefined
    : Number(header(res, 'content-length') ?? 0) || undefined;
  const mediaType = kind === 'manifests'
    ? (action === 'push' ? req.headers['content-type']?.split(';')[0] : header(res, 'content-type'))
    : 'application/octet-stream';
  const target: RegistryEvent['target'] = {
    mediaType, size, length: size, digest, repository: c.name,
    url: digest ? `${c.base}/v2/${c.name}/${kind}/${digest}` : undefined,
  };
  if (kind === 'manifests' && !c.param.includes(':')) target.tag = c.param;
  if (action === 'mount') target.fromRepository = c.query.get('from') ?? undefined;
  return {
    id: randomUUID(),
    timestamp: new Date().toISOString(),
    action,
    target,
    request: { id: c.requestId, addr: req.socket.remoteAddress, host: req.headers.host, method, useragent: req.headers['user-agent'] },
    actor: c.user ? { name: c.user } : {},
    source: { addr: `${hostname()}${c.listenAddr.replace(/^[^:]*/, '')}`, instanceID: INSTANCE_ID },
  };
}
