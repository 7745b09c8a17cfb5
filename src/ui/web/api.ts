// Talking to the registry: /api/v1/ and /v2/ on this origin, with the user's credentials in the
// Authorization header (kept in sessionStorage for this tab only; no cookie is ever used).
// With htpasswd: Basic. With token authentication: a token from the realm the registry names,
// asked with Basic for the scope its challenge names, cached until it expires.
// Every request carries X-Berth-UI: 1, so a 401 brings the challenge in X-Berth-Authenticate
// and the browser never opens its own login dialog.

export const BASE = location.pathname.replace(/[^/]*$/, '');
const SESSION = 'berth.credentials';

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

interface Credentials { user: string; password: string }
interface Challenge { scheme: 'basic' | 'bearer'; realm?: string; service?: string; scope?: string }

let challenge: Challenge | undefined;
const tokens = new Map<string, { token: string; until: number }>();

export function credentials(): Credentials | undefined {
  try {
    const raw = sessionStorage.getItem(SESSION);
    return raw ? (JSON.parse(raw) as Credentials) : undefined;
  } catch {
    return undefined;
  }
}

export function logIn(user: string, password: string): void {
  sessionStorage.setItem(SESSION, JSON.stringify({ user, password }));
  tokens.clear();
}

export function logOut(): void {
  sessionStorage.removeItem(SESSION);
  tokens.clear();
}

function basic(c: Credentials): string {
  const bytes = new TextEncoder().encode(`${c.user}:${c.password}`);
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return `Basic ${btoa(text)}`;
}

function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const scheme = header.trim().split(/\s+/)[0]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  for (const m of header.matchAll(/(\w+)="([^"]*)"/g)) params[m[1]!.toLowerCase()] = m[2]!;
  return { scheme, realm: params.realm, service: params.service, scope: params.scope };
}

async function token(c: Credentials, ch: Challenge, scopes: string[]): Promise<string> {
  const key = scopes.slice().sort().join(' ');
  const cached = tokens.get(key);
  if (cached && cached.until > Date.now()) return cached.token;
  const url = new URL(ch.realm ?? `${BASE}auth/token`, location.href);
  if (ch.service) url.searchParams.set('service', ch.service);
  for (const s of scopes) url.searchParams.append('scope', s);
  const res = await fetch(url, { headers: { Authorization: basic(c), 'X-Berth-UI': '1' }, credentials: 'omit' });
  if (res.status === 401) throw new ApiError(401, 'UNAUTHORIZED', 'invalid username or password');
  if (!res.ok) throw new ApiError(res.status, 'UNAUTHORIZED', `the token server answered ${res.status}`);
  const body = (await res.json()) as { token?: string; access_token?: string; expires_in?: number };
  const value = body.token ?? body.access_token ?? '';
  tokens.set(key, { token: value, until: Date.now() + Math.max(10, (body.expires_in ?? 60) - 10) * 1000 });
  return value;
}

export interface RequestOptions {
  method?: string;
  accept?: string;
  /** The token scopes this request needs, when the registry uses tokens (its challenge adds its own). */
  scopes?: string[];
}

/** One request to the registry; a failure throws ApiError with the registry's own message. */
export async function request(path: string, options: RequestOptions = {}): Promise<Response> {
  const send = async (authorization: string | undefined) => {
    const headers: Record<string, string> = { 'X-Berth-UI': '1', Accept: options.accept ?? 'application/json' };
    if (authorization) headers.Authorization = authorization;
    return fetch(BASE + path, { method: options.method ?? 'GET', headers, credentials: 'omit', cache: 'no-store' });
  };
  const c = credentials();
  const scopes = options.scopes ?? [];
  const authorize = async (ch: Challenge | undefined) => {
    if (!c) return undefined;
    if (ch?.scheme !== 'bearer') return basic(c);
    return `Bearer ${await token(c, ch, [...new Set([...scopes, ...(ch.scope ? ch.scope.split(' ') : [])])])}`;
  };
  let res = await send(await authorize(challenge));
  if (res.status === 401) {
    const given = parseChallenge(res.headers.get('X-Berth-Authenticate'));
    if (given) challenge = { scheme: given.scheme, realm: given.realm, service: given.service };
    if (c && given) res = await send(await authorize(given));
  }
  if (!res.ok) {
    let code = 'UNKNOWN';
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { errors?: { code: string; message: string }[] };
      if (body.errors?.[0]) ({ code, message } = body.errors[0]);
    } catch { /* not the error JSON */ }
    throw new ApiError(res.status, code, message);
  }
  return res;
}

export async function json<T>(path: string, options: RequestOptions = {}): Promise<T> {
  return (await request(path, options)).json() as Promise<T>;
}

/** The path of a repository's resource below /v2/. */
export const v2 = (name: string, rest: string): string => `v2/${name}/${rest}`;
export const repoScope = (name: string, actions = 'pull'): string => `repository:${name}:${actions}`;
export const CATALOG_SCOPE = 'registry:catalog:*';

/** Every manifest type, for GET of a manifest as stored. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json', 'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.artifact.manifest.v1+json', '*/*',
].join(', ');

// ---- what the management API answers ----

export interface RepositoryUsage { name: string; tags: number; manifests: number; bytes: number; uniqueBytes: number; lastPush?: string }
export interface Summary {
  digest: string; mediaType: string; kind: 'image' | 'index' | 'artifact'; size: number; platforms: string[];
  artifactType?: string; subject?: string; children: string[];
}
export interface TagDetail extends Summary { name: string; pushedAt?: string }
export interface UntaggedDetail extends Summary { role: 'platform' | 'referrer' | 'untagged' }
export interface Quota { limit?: number; used?: number }
export interface Policies {
  immutable?: string[];
  quota?: Record<string, Quota | undefined>;
  retention?: Record<string, string | number | undefined>;
}
export interface RepositoryDetail extends RepositoryUsage { tagList: TagDetail[]; untagged: UntaggedDetail[]; policies?: Policies }
export interface Me {
  user: string | null; auth: 'none' | 'htpasswd' | 'token'; deleteEnabled: boolean; readOnly: boolean; gc: boolean;
  repository?: { name: string; actions: string[] };
}
