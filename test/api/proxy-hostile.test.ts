// The pull-through cache against upstreams that misbehave: bytes that fail their digest late,
// redirects to a host that asks for credentials, error texts unfit for a header, huge error
// bodies; and against callers reaching for content their upstream does not hold.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { createServer, get, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { parseDigest } from '../../src/registry/names.js';
import { pushBlob, startRegistry, type TestRegistry } from '../helpers/registry.js';

const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

async function server(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; close(): Promise<void> }> {
  const s = createServer(handler);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  return { url, close: () => new Promise((resolve) => { s.closeAllConnections(); s.close(() => resolve()); }) };
}

describe('pull-through cache and hostile upstreams', () => {
  const good = Buffer.alloc(3 << 20, 7);
  const bad = Buffer.from(good);
  bad[bad.length - 1] = 8;
  const digest = sha(good);
  const flakyManifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: good.length }, layers: [] }));
  const drip = Buffer.alloc(24 << 20);
  for (let i = 0; i < drip.length; i += 4) drip.writeUInt32LE(i, i);
  let manifestAnswers = 0;
  const evilSaw: string[] = [];
  let evil: Awaited<ReturnType<typeof server>>;
  let up: Awaited<ReturnType<typeof server>>;
  let cache: TestRegistry;

  before(async () => {
    evil = await server((req, res) => {
      evilSaw.push(`${req.url} ${req.headers.authorization ?? '-'}`);
      if (req.url?.startsWith('/token')) return void res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"token":"x"}');
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${req.headers.host}/token",service="evil"` }).end();
    });
    up = await server((req, res) => {
      if (!req.headers.authorization) return void res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="up"' }).end();
      const url = req.url ?? '';
      if (url === '/v2/') return void res.writeHead(200).end('{}');
      if (url.includes('/corrupt/blobs/')) { // the right length, the last byte wrong, arriving late
        res.writeHead(200, { 'Content-Length': bad.length });
        res.write(bad.subarray(0, 1536 << 10));
        setTimeout(() => res.end(bad.subarray(1536 << 10)), 500);
        return;
      }
      if (url.includes('/drip/blobs/')) { // the blob in 1 MiB pieces, 10 ms apart
        res.writeHead(200, { 'Content-Length': drip.length });
        let at = 0;
        const next = () => { res.write(drip.subarray(at, at += 1 << 20)); if (at < drip.length) setTimeout(next, 10); else res.end(); };
        return void next();
      }
      if (url.includes('/redir/')) return void res.writeHead(307, { Location: `${evil.url}${url}` }).end();
      if (url.startsWith('/v2/paged/tags/list')) { // two pages, as registries that paginate answer
        const second = url.includes('last=b');
        if (!second) res.setHeader('Link', '</v2/paged/tags/list?n=2&last=b>; rel="next"');
        return void res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ name: 'paged', tags: second ? ['c'] : ['a', 'b'] }));
      }
      if (url.includes('/flaky/tags/list')) {
        return void res.writeHead(503, { 'Content-Type': 'application/json' })
          .end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'maintenance\nwindow \u2014 back soon' }] }));
      }
      if (url.includes('/flaky/manifests/')) {
        if (++manifestAnswers > 1) {
          return void res.writeHead(503, { 'Content-Type': 'application/json' })
            .end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'maintenance\nwindow \u2014 back soon' }] }));
        }
        return void res.writeHead(200, { 'Content-Type': MANIFEST, 'Docker-Content-Digest': sha(flakyManifest) }).end(req.method === 'HEAD' ? undefined : flakyManifest);
      }
      if (url.includes('/huge/')) { // a 64 MiB error body
        res.writeHead(503, { 'Content-Type': 'application/json' });
        const chunk = Buffer.alloc(1 << 20, 32);
        let n = 0;
        const write = () => { while (n < 64) { n++; if (!res.write(chunk)) return void res.once('drain', write); } res.end(); };
        return void write();
      }
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"BLOB_UNKNOWN","message":"not here"}]}');
    });
    cache = await startRegistry({ overrides: { proxy: { upstreams: [
      { prefix: 'up', remoteurl: up.url, username: 'alice', password: 's3cretpw', tagttl: '0s' },
    ] } } });
  });

  after(async () => {
    await cache?.close();
    await up?.close();
    await evil?.close();
  });

  it('never sends a whole blob before its digest matched: a late corrupt byte cuts the answer short', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${cache.url}/v2/up/r${i}/corrupt/blobs/${digest}`);
      const body = await res.arrayBuffer().then((b) => Buffer.from(b), () => undefined);
      assert.ok(res.status !== 200 || !body || body.length < bad.length, `try ${i}: a corrupt blob reached the client whole`);
    }
    assert.equal((await fetch(`${cache.url}/v2/up/r0/corrupt/blobs/${digest}`, { method: 'HEAD' })).status === 200
      && await cache.app.services.blobs.statGlobal(parseDigest(digest)) !== undefined, false, 'nothing corrupt is kept');
  });

  it('sends every client the exact bytes: one reading at once, one joining late, one reading slowly', async () => {
    const dripDigest = sha(drip);
    const read = async (delayMs: number, pauseEveryMiB: number): Promise<Buffer> => {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      const res = await new Promise<IncomingMessage>((resolve, reject) =>
        get(`${cache.url}/v2/up/drip/blobs/${dripDigest}`, resolve).on('error', reject));
      assert.equal(res.statusCode, 200);
      const parts: Buffer[] = [];
      let got = 0;
      for await (const chunk of res) {
        parts.push(chunk as Buffer);
        const before = got;
        got += (chunk as Buffer).length;
        // a slow client: its socket backs up far past what the fill keeps for it in memory
        if (pauseEveryMiB && Math.floor(got / (pauseEveryMiB << 20)) > Math.floor(before / (pauseEveryMiB << 20))) {
          await new Promise((resolve) => setTimeout(resolve, got < (8 << 20) ? 2_500 : 50));
        }
      }
      return Buffer.concat(parts);
    };
    const [fast, late, slow] = await Promise.all([read(0, 0), read(120, 0), read(0, 4)]);
    for (const [who, body] of Object.entries({ fast, late, slow })) {
      assert.equal(body.length, drip.length, `${who}: length`);
      assert.equal(sha(body), dripDigest, `${who}: bytes`);
    }
    assert.ok(await cache.app.services.blobs.statGlobal(parseDigest(dripDigest)), 'the blob is kept');
  });

  it('gives the upstream\'s credentials to no host a redirect leads to', async () => {
    const res = await fetch(`${cache.url}/v2/up/redir/blobs/${digest}`);
    assert.ok(res.status >= 400);
    await res.arrayBuffer();
    assert.deepEqual(evilSaw.filter((line) => line.includes('Basic')), []);
    assert.deepEqual(evilSaw.filter((line) => line.startsWith('/token')), []);
  });

  it('serves through a mirrored name only what its upstream holds, not a local private blob', async () => {
    const secret = Buffer.from('a private layer pushed to a local repository');
    const local = await pushBlob(cache.url, 'private/secret', secret);
    const res = await fetch(`${cache.url}/v2/up/whatever/blobs/${local}`);
    assert.equal(res.status, 404);
    await res.arrayBuffer();
  });

  it('serves the cached copy when the upstream\'s error text would not fit in a header', async () => {
    const first = await fetch(`${cache.url}/v2/up/flaky/manifests/v1`, { headers: { Accept: MANIFEST } });
    assert.equal(first.status, 200);
    await first.arrayBuffer();
    const again = await fetch(`${cache.url}/v2/up/flaky/manifests/v1`, { headers: { Accept: MANIFEST } });
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('berth-cache'), 'stale');
    await again.arrayBuffer();
    const tags = await fetch(`${cache.url}/v2/up/flaky/tags/list`);
    assert.equal(tags.status, 200);
    assert.equal(tags.headers.get('berth-cache'), 'stale');
    assert.match(tags.headers.get('berth-cache-reason') ?? '', /maintenance window/);
    assert.deepEqual(((await tags.json()) as { tags: string[] }).tags, ['v1']);
  });

  it('reads a bounded part of a huge error body', async () => {
    const before = process.memoryUsage().rss;
    const res = await fetch(`${cache.url}/v2/up/huge/manifests/v1`);
    assert.equal(res.status, 502);
    await res.arrayBuffer();
    assert.ok(process.memoryUsage().rss - before < 48 << 20, 'the error body was held in memory');
  });

  it('expires only tags the cache wrote: data that was there before the proxy was configured stays', async () => {
    const { store, cache: pullThrough } = cache.app.services;
    const content = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: good.length }, layers: [] }));
    await store.putManifest('up/local', { digest: parseDigest(sha(content)), mediaType: MANIFEST, content, blobs: [], children: [] }, 'v1');
    const later = Date.now() + 365 * 24 * 3600_000;
    assert.ok((await pullThrough!.expire(later)) >= 1, 'the cached flaky:v1 expires');
    assert.equal((await store.tag('up/flaky', 'v1')), undefined);
    assert.equal((await store.tag('up/local', 'v1'))?.toString(), sha(content));
  });

  it('follows every page of an upstream\'s tag list', async () => {
    const res = await fetch(`${cache.url}/v2/up/paged/tags/list`);
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { tags: string[] }).tags, ['a', 'b', 'c']);
  });

  it('refuses credentials written into a remoteurl', () => {
    assert.throws(() => loadConfig({ env: {}, overrides: { proxy: { remoteurl: 'http://bob:hunter2@127.0.0.1:5799' } } }),
      /proxy\.remoteurl holds credentials: put them in proxy\.username and password/);
  });
});
