// One upstream registry, as a client: requests with its authentication (none, Basic, or the
// Bearer token flow: challenge → token endpoint with service and scope → retry, tokens cached
// until they expire), within its limits (requests in flight, requests per second), and with a
// timeout on the answer's headers. Credentials never appear in errors or logs.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { UpstreamConfig } from '../config/load.js';

/** Why an upstream gave no usable answer: unreachable, timed out, or what it answered. */
export class UpstreamFailure extends Error {
  constructor(readonly upstream: string, readonly reason: string, readonly status?: number, readonly retryAfter?: string) {
    super(`upstream ${upstream} ${reason}`);
    this.name = 'UpstreamFailure';
  }

  /** Failures a cached copy stands in for: unreachable, timed out, 429, 5xx. */
  get transient(): boolean {
    return this.status === undefined || this.status === 429 || this.status >= 500;
  }
}

export interface UpstreamObserver {
  request(upstream: string, kind: string, status: number | 'error', seconds: number): void;
}

interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Caps requests in flight and requests started per second. */
class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  private readonly starts: number[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly maxConcurrent: number, private readonly maxRps: number) {}

  /** A slot; rejects with `onTimeout()` when none frees up within `waitMs`. */
  acquire(waitMs: number, onTimeout: () => Error): Promise<() => void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.queue.indexOf(grant);
        if (at !== -1) this.queue.splice(at, 1);
        reject(onTimeout());
      }, waitMs);
      timer.unref();
      const grant = () => {
        clearTimeout(timer);
        this.active++;
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.active--;
          this.pump();
        });
      };
      this.queue.push(grant);
      this.pump();
    });
  }

  private pump(): void {
    const now = Date.now();
    while (this.starts.length > 0 && now - this.starts[0]! >= 1000) this.starts.shift();
    while (this.queue.length > 0 && this.active < this.maxConcurrent && this.starts.length < this.maxRps) {
      this.starts.push(now);
      this.queue.shift()!();
    }
    if (this.queue.length > 0 && this.active < this.maxConcurrent && !this.timer) {
      this.timer = setTimeout(() => { this.timer = undefined; this.pump(); }, 1000 - (now - this.starts[0]!)).unref();
    }
  }
}

/** A blob's answer as a Node stream: large bodies go through node:http, cheaper than fetch's web streams. */
export interface UpstreamStream {
  status: number;
  size: number;
  body: IncomingMessage;
  release(): void;
}

const MAX_REDIRECTS = 5;

/** A response whose body the caller reads, then calls `release` (the in-flight slot is held until then). */
export interface UpstreamResponse {
  res: Response;
  release(): void;
}

const TOKEN_MARGIN_MS = 10_000;
/** How much of an upstream's error body, or token answer, is read: the rest is dropped. */
const MAX_ERROR_BODY = 64 << 10;
const MAX_TOKEN_BODY = 1 << 20;

/** A response body as text, reading at most `limit` bytes (then the body is cancelled). */
export async function readText(res: Response, limit: number): Promise<string> {
  if (!res.body) return '';
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    const room = limit - total;
    chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(chunk.byteLength, room)));
    total += Math.min(chunk.byteLength, room);
    if (total >= limit) {
      await res.body.cancel().catch(() => undefined);
      break;
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

export class Upstream {
  private readonly limiter: Limiter;
  private readonly tokens = new Map<string, { token: string; expires: number }>();
  /** How the upstream last asked to be authenticated; reused so that later requests skip the 401. */
  private challenge: Challenge | undefined;

  private readonly agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };

  constructor(readonly config: UpstreamConfig, private readonly observer?: UpstreamObserver) {
    this.limiter = new Limiter(config.maxConcurrent, config.maxRps);
  }

  /** GET of `/v2/<remote>/<path>` as a stream (redirects followed, credentials only to the upstream's origin). */
  async stream(remote: string, path: string, kind: string): Promise<UpstreamStream> {
    const release = await this.slot();
    const started = process.hrtime.bigint();
    const scope = `repository:${remote}:pull`;
    let status: number | 'error' = 'error';
    try {
      let url = new URL(`${this.url}/v2/${remote}/${path}`);
      let authorization = await this.authorization(scope);
      let retried = false;
      for (let hop = 0; ; hop++) {
        const res = await this.get(url, url.origin === new URL(this.url).origin ? authorization : undefined);
        const location = res.headers.location;
        if (res.statusCode === 401 && !retried) {
          retried = true;
          res.resume();
          // only the upstream itself may say how to log in to it: never a host a redirect led to
          if (url.origin !== new URL(this.url).origin) { status = 401; return this.failed(res, release, path); }
          const challenge = parseChallenge(res.headers['www-authenticate'] ?? null);
          if (!challenge) { status = 401; return this.failed(res, release, path); }
          this.challenge = challenge;
          this.tokens.delete(scope);
          authorization = await this.authorization(scope);
          continue;
        }
        if ([301, 302, 303, 307, 308].includes(res.statusCode ?? 0) && location && hop < MAX_REDIRECTS) {
          res.resume();
          url = new URL(location, url);
          continue;
        }
        status = res.statusCode ?? 0;
        if (status !== 200) return this.failed(res, release, path);
        return { status, size: Number(res.headers['content-length'] ?? -1), body: res, release };
      }
    } catch (err) {
      release();
      if (err instanceof UpstreamFailure) throw err;
      throw this.unreachable(err);
    } finally {
      this.observer?.request(this.url, kind, status, Number(process.hrtime.bigint() - started) / 1e9);
    }
  }

  private get(url: URL, authorization: string | undefined): Promise<IncomingMessage> {
    const https = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(url, {
        method: 'GET', agent: https ? this.agents.https : this.agents.http,
        headers: authorization ? { Authorization: authorization } : {},
      }, resolve);
      // an idle timeout: no answer, or a body that stops arriving, for that long
      req.setTimeout(this.config.timeoutMs, () => req.destroy(new UpstreamFailure(this.url, `sent nothing for ${this.config.timeoutMs / 1000} s`)));
      req.once('error', reject);
      req.end();
    });
  }

  /** A non-200 answer as a failure: what it said (its OCI error, if any), after reading a bounded body. */
  private async failed(res: IncomingMessage, release: () => void, what: string): Promise<never> {
    let text = '';
    try {
      for await (const chunk of res) {
        if (text.length < 65_536) text += (chunk as Buffer).toString('utf8');
      }
    } catch { /* the reason is the status */ }
    release();
    let detail = '';
    try {
      const first = (JSON.parse(text) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
      if (first) detail = `: ${first.code ?? ''}${first.message ? ` ${first.message}` : ''}`.slice(0, 300);
    } catch { /* not an OCI error body */ }
    const retryAfter = res.headers['retry-after'];
    throw new UpstreamFailure(this.url, `answered ${res.statusCode} for ${what.replace(/^blobs\//, 'blob ')}${detail}`, res.statusCode,
      typeof retryAfter === 'string' ? retryAfter : undefined);
  }

  get url(): string {
    return this.config.remoteUrl;
  }

  /** A request slot within the limits; waiting counts against the timeout (then a cached copy can stand in). */
  private slot(): Promise<() => void> {
    return this.limiter.acquire(this.config.timeoutMs, () =>
      new UpstreamFailure(this.url, `had no free request slot within ${this.config.timeoutMs / 1000} s (maxconcurrent ${this.config.maxConcurrent})`));
  }

  /** `method` on `/v2/<remote>/<path>`; throws UpstreamFailure when unreachable or timed out. */
  async request(method: 'GET' | 'HEAD', remote: string, path: string, kind: string, headers: Record<string, string> = {}): Promise<UpstreamResponse> {
    const release = await this.slot();
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    try {
      const scope = `repository:${remote}:pull`;
      const url = `${this.url}/v2/${remote}/${path}`;
      let res = await this.send(method, url, headers, await this.authorization(scope));
      if (res.status === 401 && sameOrigin(res.url || url, this.url)) {
        const challenge = parseChallenge(res.headers.get('www-authenticate'));
        await res.body?.cancel().catch(() => undefined);
        if (challenge) {
          this.challenge = challenge;
          this.tokens.delete(scope);
          const auth = await this.authorization(scope);
          if (auth) res = await this.send(method, url, headers, auth);
        }
      }
      this.observer?.request(this.url, kind, res.status, seconds());
      return { res, release };
    } catch (err) {
      release();
      this.observer?.request(this.url, kind, 'error', seconds());
      if (err instanceof UpstreamFailure) throw err;
      throw this.unreachable(err);
    }
  }

  /** The upstream's answer as a failure (after its body is dropped). */
  async failure(response: UpstreamResponse, what: string): Promise<UpstreamFailure> {
    const { res } = response;
    let detail = '';
    try {
      const body = JSON.parse(await readText(res, MAX_ERROR_BODY)) as { errors?: { code?: string; message?: string }[] };
      const first = body.errors?.[0];
      if (first) detail = `: ${first.code ?? ''}${first.message ? ` ${first.message}` : ''}`.slice(0, 300);
    } catch { /* not an OCI error body */ }
    response.release();
    return new UpstreamFailure(this.url, `answered ${res.status} for ${what}${detail}`, res.status, res.headers.get('retry-after') ?? undefined);
  }

  private async send(method: string, url: string, headers: Record<string, string>, authorization: string | undefined): Promise<Response> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.config.timeoutMs);
    try {
      return await fetch(url, {
        method, headers: authorization ? { ...headers, Authorization: authorization } : headers,
        signal: controller.signal, redirect: 'follow',
      });
    } catch (err) {
      if (controller.signal.aborted) throw new UpstreamFailure(this.url, `did not answer within ${this.config.timeoutMs / 1000} s`);
      throw err;
    } finally {
      clearTimeout(timer); // the body, once headers are in, is bounded by undici's body timeout
    }
  }

  private async authorization(scope: string): Promise<string | undefined> {
    const { username, password } = this.config;
    const challenge = this.challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') {
      return username ? `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` : undefined;
    }
    const cached = this.tokens.get(scope);
    if (cached && cached.expires > Date.now()) return `Bearer ${cached.token}`;
    const realm = challenge.params.realm;
    if (!realm) throw new UpstreamFailure(this.url, 'asked for a Bearer token without naming a realm');
    const tokenUrl = new URL(realm);
    if (challenge.params.service) tokenUrl.searchParams.set('service', challenge.params.service);
    tokenUrl.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    if (username) headers.Authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    let res: Response;
    try {
      res = await this.send('GET', tokenUrl.toString(), headers, undefined);
    } catch (err) {
      if (err instanceof UpstreamFailure) throw err;
      throw this.unreachable(err, `its token endpoint ${tokenUrl.origin}${tokenUrl.pathname}`);
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      throw new UpstreamFailure(this.url, `token endpoint ${tokenUrl.origin}${tokenUrl.pathname} answered ${res.status}${username ? ` for user ${username}` : ' (anonymous)'}`,
        res.status === 401 || res.status === 403 ? 401 : res.status);
    }
    const body = await readText(res, MAX_TOKEN_BODY).then((text) => JSON.parse(text), () => ({})) as { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new UpstreamFailure(this.url, 'token endpoint answered without a token');
    const issued = body.issued_at ? Date.parse(body.issued_at) : Date.now();
    const lifetime = (body.expires_in && body.expires_in > 0 ? body.expires_in : 60) * 1000;
    const expires = Math.min(Date.now(), Number.isNaN(issued) ? Date.now() : issued) + lifetime - Math.min(TOKEN_MARGIN_MS, lifetime / 2);
    if (this.tokens.size > 10_000) this.tokens.clear();
    this.tokens.set(scope, { token, expires });
    return `Bearer ${token}`;
  }

  private unreachable(err: unknown, what = ''): UpstreamFailure {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    return new UpstreamFailure(this.url, `${what ? `(${what}) ` : ''}could not be reached: ${why}`);
  }
}

/** `Bearer realm="…",service="…"` or `Basic realm="…"`. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!match) return undefined;
  const scheme = match[1]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  for (const p of match[2]!.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = p[2] ?? p[3] ?? '';
  return { scheme, params };
}
