// Real upstreams for the pull-through cache tests: the reference registry with htpasswd, a
// Berth with its token server (Bearer), and a tiny loopback server that can answer 429 or send
// a blob's bytes corrupted. Pushes carry whatever authorization the upstream wants.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { freePort, run, SUPPORT } from './clients.js';
import { sha256 } from './registry.js';
import { atExit } from './scratch.js';

export type Authorize = (scope: string) => Promise<Record<string, string>>;

export const basicAuth = (user: string, password: string): Authorize =>
  async () => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

/** Tokens from a Berth token server at `url` (on its own listener's /auth/token). */
export const bearerAuth = (url: string, service: string, user: string, password: string): Authorize => async (scope) => {
  const res = await fetch(`${url}/auth/token?service=${service}&scope=${scope}`,
    { headers: { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } });
  const { token } = await res.json() as { token: string };
  return { Authorization: `Bearer ${token}` };
};

export async function pushBlobTo(url: string, name: string, data: Buffer, authorize: Authorize): Promise<string> {
  const headers = await authorize(`repository:${name}:pull,push`);
  const digest = sha256(data);
  const start = await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: 'POST', headers });
  if (start.status !== 202) throw new Error(`POST upload: ${start.status} ${await start.text()}`);
  const location = new URL(start.headers.get('location')!, url);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', body: new Uint8Array(data), headers: { ...headers, 'Content-Type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`PUT upload: ${put.status} ${await put.text()}`);
  return digest;
}

export interface Image {
  manifest: Buffer;
  digest: string;
  config: string;
  layers: string[];
}

/** Pushes an OCI image whose layers hold the given numbers of random bytes. */
export async function pushImageTo(url: string, name: string, tag: string, authorize: Authorize, layerSizes = [1024]): Promise<Image> {
  const configBody = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, seed: randomBytes(8).toString('hex') }));
  const config = await pushBlobTo(url, name, configBody, authorize);
  const layers: { digest: string; size: number }[] = [];
  for (const size of layerSizes) layers.push({ digest: await pushBlobTo(url, name, randomBytes(size), authorize), size });
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: configBody.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l })),
  }));
  const res = await fetch(`${url}/v2/${name}/manifests/${tag}`, {
    method: 'PUT', body: new Uint8Array(manifest),
    headers: { ...(await authorize(`repository:${name}:pull,push`)), 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
  });
  if (res.status !== 201) throw new Error(`PUT manifest: ${res.status} ${await res.text()}`);
  return { manifest, digest: sha256(manifest), config, layers: layers.map((l) => l.digest) };
}

export interface RefRegistry {
  url: string;
  dir: string;
  /** The registry's log: one "response completed" line per request. */
  log(): Promise<string>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The reference registry (docker-registry) with one htpasswd user, via test/support/ref-registry.sh. */
export async function refRegistry(dir: string, user: string, password: string): Promise<RefRegistry> {
  const port = await freePort();
  const script = join(SUPPORT, 'ref-registry.sh');
  const ref: RefRegistry = {
    url: `http://127.0.0.1:${port}`, dir,
    log: async () => readFileSync(join(dir, 'registry.log'), 'utf8'),
    start: async () => { await run('bash', [script, 'start', dir, String(port), '--auth', `${user}:${password}`]); },
    stop: async () => { await run('bash', [script, 'stop', dir]); },
  };
  atExit(() => { execFileSync('bash', [script, 'stop', dir], { stdio: 'ignore' }); });
  await ref.start();
  return ref;
}

/** How many requests the reference registry answered with `status` for paths containing `fragment`. */
export function countRequests(log: string, method: string, fragment: string, status = 200): number {
  return log.split('\n').filter((line) => line.includes('response completed') && line.includes(`http.request.method=${method}`) &&
    line.includes(fragment) && line.includes(`http.response.status=${status}`)).length;
}

export interface TinyUpstream {
  url: string;
  host: string;
  /** What the next requests get: served normally, 429, or (for blobs) bytes with one flipped. */
  mode: 'ok' | '429' | 'corrupt' | 'redirect';
  requests: string[];
  /** How long each answer is held back, and the most requests seen in flight at once. */
  delayMs: number;
  maxInFlight: number;
  close(): Promise<void>;
}

/**
 * A loopback upstream serving one repository from memory: `content` maps `manifests/<ref>` and
 * `blobs/<digest>` to [content type, bytes]. Allowed by the test rules to answer 429 or to corrupt a blob.
 */
export async function tinyUpstream(content: Map<string, [string, Buffer]>): Promise<TinyUpstream> {
  const state: TinyUpstream = { url: '', host: '', mode: 'ok', requests: [], delayMs: 0, maxInFlight: 0, close: async () => undefined };
  let inFlight = 0;
  const server: Server = createServer(async (req, res) => {
    state.requests.push(`${req.method} ${req.url}`);
    inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
    res.once('close', () => { inFlight--; });
    if (state.delayMs) await new Promise((r) => setTimeout(r, state.delayMs));
    if (state.mode === '429') {
      res.writeHead(429, { 'Content-Type': 'application/json', 'Retry-After': '30' })
        .end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
      return;
    }
    if (req.url === '/v2/') return void res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    if (state.mode === 'redirect' && /^\/v2\/.+\/blobs\//.test(req.url ?? '')) { // as Docker Hub sends blobs to a CDN
      return void res.writeHead(307, { Location: `/cdn/${req.url!.split('/blobs/')[1]}`, 'Content-Length': 0 }).end();
    }
    const cdn = /^\/cdn\/([^/?]+)$/.exec(req.url ?? '');
    const match = cdn ? [req.url, `blobs/${cdn[1]}`] : /^\/v2\/.+?\/((?:manifests|blobs)\/[^/?]+)$/.exec(req.url ?? '');
    const found = match && content.get(match[1]!);
    if (!found) {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not here"}]}');
      return;
    }
    const [type, bytes] = found;
    let body = bytes;
    if (state.mode === 'corrupt' && match[1]!.startsWith('blobs/')) {
      body = Buffer.from(bytes);
      body[body.length >> 1] ^= 0xff;
    }
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length, 'Docker-Content-Digest': sha256(bytes) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  state.url = `http://127.0.0.1:${port}`;
  state.host = `127.0.0.1:${port}`;
  state.close = () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
  return state;
}
