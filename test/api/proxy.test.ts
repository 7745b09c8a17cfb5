// The pull-through cache against real upstreams on loopback: the reference registry with
// htpasswd (Basic), a Berth with its token server (Bearer, with credentials and anonymous), and a
// tiny server that answers 429 or corrupts a blob. One Berth serves them under prefixes, beside
// local repositories that accept pushes.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { needs } from '../helpers/clients.js';
import { makeHtpasswd } from '../helpers/pki.js';
import { errorCodes, pushImage, sha256, startRegistry, tempDir, type TestRegistry } from '../helpers/registry.js';
import {
  basicAuth, bearerAuth, countRequests, pushImageTo, refRegistry, tinyUpstream, type Image, type RefRegistry, type TinyUpstream,
} from '../helpers/upstreams.js';

const skip = needs('docker-registry', 'htpasswd', 'curl');
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('pull-through cache', { skip }, () => {
  let ref: RefRegistry;
  let tok: TestRegistry;
  let tiny: TinyUpstream;
  let cache: TestRegistry;
  let refApp: Image;
  let refBig: Image;
  let tokPrivate: Image;
  let tokPublic: Image;
  const tinyConfig = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const tinyLayer = Buffer.from('tiny layer bytes '.repeat(100));
  const redirected = Buffer.from('bytes served from elsewhere '.repeat(50));
  const tinyManifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(tinyConfig), size: tinyConfig.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(tinyLayer), size: tinyLayer.length }],
  }));

  before(async () => {
    if (skip) return;
    const dir = tempDir('berth-proxy-');
    ref = await refRegistry(join(dir, 'ref'), 'refuser', 'refpass');
    const users = join(dir, 'htpasswd');
    await makeHtpasswd(users, { tokuser: 'tokpass' });
    tok = await startRegistry({ overrides: {
      tokenserver: { enabled: true, htpasswd: users, service: 'tok-service' },
      access: { rules: [
        { repositories: ['**'], users: { tokuser: ['pull', 'push', 'delete'] } },
        { repositories: ['public/**'], anonymous: ['pull'] },
      ] },
    } });
    refApp = await pushImageTo(ref.url, 'team/app', 'v1', basicAuth('refuser', 'refpass'));
    refBig = await pushImageTo(ref.url, 'big', 'v1', basicAuth('refuser', 'refpass'), [24 << 20, 8 << 20]);
    const tokAuth = bearerAuth(tok.url, 'tok-service', 'tokuser', 'tokpass');
    tokPrivate = await pushImageTo(tok.url, 'private/app', 'v1', tokAuth);
    tokPublic = await pushImageTo(tok.url, 'public/app', 'v1', tokAuth);
    tiny = await tinyUpstream(new Map([
      ['manifests/v1', [MANIFEST, tinyManifest]], [`manifests/${sha256(tinyManifest)}`, [MANIFEST, tinyManifest]],
      [`blobs/${sha256(tinyConfig)}`, ['application/octet-stream', tinyConfig]],
      [`blobs/${sha256(tinyLayer)}`, ['application/octet-stream', tinyLayer]],
      [`blobs/${sha256(redirected)}`, ['application/octet-stream', redirected]],
    ]));
    cache = await startRegistry({ overrides: { proxy: { upstreams: [
      { prefix: 'ref', remoteurl: ref.url, username: 'refuser', password: 'refpass', tagttl: '1s' },
      { prefix: 'tok', remoteurl: tok.url, username: 'tokuser', password: 'tokpass' },
      { prefix: 'anon', remoteurl: tok.url },
      { prefix: 'tiny', remoteurl: tiny.url, tagttl: '0s' },
    ] } } });
  });

  after(async () => {
    await cache?.close();
    await tok?.close();
    await tiny?.close();
    await ref?.stop().catch(() => undefined);
  });

  async function pull(name: string, image: Image, reference = 'v1'): Promise<string[]> {
    const notes: string[] = [];
    const res = await fetch(`${cache.url}/v2/${name}/manifests/${reference}`, { headers: { Accept: MANIFEST } });
    assert.equal(res.status, 200, `manifest ${name}:${reference}: ${res.status} ${res.status === 200 ? '' : await res.clone().text()}`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest);
    assert.equal(res.headers.get('docker-content-digest'), image.digest);
    notes.push(res.headers.get('berth-cache') ?? '');
    for (const digest of [image.config, ...image.layers]) {
      const blob = await fetch(`${cache.url}/v2/${name}/blobs/${digest}`);
      assert.equal(blob.status, 200, `blob ${digest}: ${blob.status}`);
      const hash = createHash('sha256'); // streamed: sixteen clients of a 100 MiB image hold no copy
      for await (const chunk of blob.body!) hash.update(chunk);
      assert.equal(`sha256:${hash.digest('hex')}`, digest);
      notes.push(blob.headers.get('berth-cache') ?? '');
    }
    return notes;
  }

  it('pulls through the reference registry with Basic credentials, then serves from storage', async () => {
    assert.deepEqual(await pull('ref/team/app', refApp), ['miss', 'miss', 'miss']);
    assert.deepEqual(await pull('ref/team/app', refApp), ['hit', 'hit', 'hit']);
    const byDigest = await fetch(`${cache.url}/v2/ref/team/app/manifests/${refApp.digest}`);
    assert.equal(byDigest.headers.get('berth-cache'), 'hit');
    const catalog = await (await fetch(`${cache.url}/v2/_catalog`)).json() as { repositories: string[] };
    assert.ok(catalog.repositories.includes('ref/team/app'), JSON.stringify(catalog));
  });

  it('pulls through a Berth with token authentication, with credentials and anonymously', async () => {
    assert.deepEqual(await pull('tok/private/app', tokPrivate), ['miss', 'miss', 'miss']);
    assert.deepEqual(await pull('anon/public/app', tokPublic), ['miss', 'miss', 'miss']);
    const denied = await fetch(`${cache.url}/v2/anon/private/app/manifests/v1`);
    assert.equal(denied.status, 403);
    const body = await denied.json() as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]!.code, 'DENIED');
    assert.match(body.errors[0]!.message, new RegExp(`upstream ${tok.url} answered 401`));
  });

  it('answers HEAD of an uncached manifest and blob from the upstream', async () => {
    const image = await pushImageTo(ref.url, 'team/heads', 'v1', basicAuth('refuser', 'refpass'));
    const blob = await fetch(`${cache.url}/v2/ref/team/heads/blobs/${image.layers[0]}`, { method: 'HEAD' });
    assert.equal(blob.status, 200);
    assert.equal(blob.headers.get('content-length'), '1024');
    const manifest = await fetch(`${cache.url}/v2/ref/team/heads/manifests/v1`, { method: 'HEAD' });
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers.get('docker-content-digest'), image.digest);
    const missing = await fetch(`${cache.url}/v2/ref/team/heads/manifests/nope`, { method: 'HEAD' });
    assert.equal(missing.status, 404);
  });

  it('routes containerd\'s ?ns= to the upstream that host names', async () => {
    const res = await fetch(`${cache.url}/v2/team/app/manifests/v1?ns=${new URL(ref.url).host}`, { headers: { Accept: MANIFEST } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), refApp.digest);
  });

  it('refuses pushes to a proxied repository and accepts them in a local one, in the same process', async () => {
    const refused = await fetch(`${cache.url}/v2/ref/team/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(refused.status, 405);
    const body = await refused.json() as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]!.code, 'UNSUPPORTED');
    assert.match(body.errors[0]!.message, /under ref\/, a cache of http:\/\/127\.0\.0\.1/);
    const put = await fetch(`${cache.url}/v2/ref/team/app/manifests/v2`, { method: 'PUT', body: new Uint8Array(refApp.manifest), headers: { 'Content-Type': MANIFEST } });
    assert.equal(put.status, 405);
    const local = await pushImage(cache.url, 'mine/app', 'v1');
    assert.equal((await fetch(`${cache.url}/v2/mine/app/manifests/v1`)).headers.get('docker-content-digest'), local.digest);
  });

  it('lets deletes remove cached content', async () => {
    await pull('ref/team/app', refApp, refApp.digest);
    const res = await fetch(`${cache.url}/v2/ref/team/app/manifests/${refApp.digest}`, { method: 'DELETE' });
    assert.equal(res.status, 202);
    assert.deepEqual(await pull('ref/team/app', refApp), ['miss', 'hit', 'hit']); // fetched again
  });

  it('fetches each blob once for 16 concurrent cold pulls of a 100 MiB image', async () => {
    const huge = await pushImageTo(ref.url, 'huge', 'v1', basicAuth('refuser', 'refpass'), [64 << 20, 36 << 20]);
    const pulls = await Promise.all(Array.from({ length: 16 }, () => pull('ref/huge', huge)));
    assert.equal(pulls.length, 16);
    const log = await ref.log();
    for (const digest of [huge.config, ...huge.layers]) {
      assert.equal(countRequests(log, 'GET', `/v2/huge/blobs/${digest}`), 1, `upstream GETs of ${digest}`);
    }
    assert.equal(countRequests(log, 'GET', '/v2/huge/manifests/v1'), 1);
  });

  it('lists tags from the upstream', async () => {
    await pushImageTo(ref.url, 'team/app', 'v2', basicAuth('refuser', 'refpass'));
    const res = await fetch(`${cache.url}/v2/ref/team/app/tags/list`);
    assert.deepEqual(await res.json(), { name: 'ref/team/app', tags: ['v1', 'v2'] });
  });

  it('does not keep a blob whose bytes the upstream corrupted', async () => {
    tiny.mode = 'corrupt';
    const layer = sha256(tinyLayer);
    const res = await fetch(`${cache.url}/v2/tiny/x/blobs/${layer}`);
    await assert.rejects(res.arrayBuffer()); // the answer is cut short
    assert.equal(await cache.app.services.store.blobStat(sha256ToDigest(layer)), undefined);
    const uploads = join(cache.root, 'docker/registry/v2/repositories/tiny/x/_uploads');
    assert.deepEqual(existsSync(uploads) ? readdirSync(uploads) : [], []);
    tiny.mode = 'ok';
    const again = await fetch(`${cache.url}/v2/tiny/x/blobs/${layer}`);
    assert.equal(sha256(Buffer.from(await again.arrayBuffer())), layer);
  });

  it('follows an upstream\'s redirect for blob bytes (as Docker Hub sends them to a CDN)', async () => {
    tiny.mode = 'redirect';
    try {
      const res = await fetch(`${cache.url}/v2/tiny/redirected/blobs/${sha256(redirected)}`);
      assert.equal(res.status, 200);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), redirected);
      assert.ok(tiny.requests.some((r) => r.startsWith('GET /cdn/')));
    } finally {
      tiny.mode = 'ok';
    }
  });

  it('serves the cached copy when the upstream answers 429', async () => {
    const image = { manifest: tinyManifest, digest: sha256(tinyManifest), config: sha256(tinyConfig), layers: [sha256(tinyLayer)] };
    await pull('tiny/x', image);
    tiny.mode = '429';
    const res = await fetch(`${cache.url}/v2/tiny/x/manifests/v1`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('berth-cache'), 'stale');
    assert.match(res.headers.get('berth-cache-reason') ?? '', /answered 429/);
    const uncached = await fetch(`${cache.url}/v2/tiny/other/manifests/v1`);
    assert.equal(uncached.status, 429);
    assert.equal(uncached.headers.get('retry-after'), '30');
    tiny.mode = 'ok';
  });

  it('serves everything cached while the upstream is down, a tag past its ttl too; an uncached name gets a clear error', async () => {
    await pull('ref/team/app', refApp);
    await pull('ref/big', refBig);
    await ref.stop();
    try {
      await new Promise((r) => setTimeout(r, 1100)); // past the tag's ttl
      assert.deepEqual(await pull('ref/team/app', refApp), ['stale', 'hit', 'hit']);
      assert.deepEqual((await pull('ref/big', refBig))[0], 'stale');
      const tags = await fetch(`${cache.url}/v2/ref/team/app/tags/list`);
      assert.equal(tags.status, 200);
      assert.equal(tags.headers.get('berth-cache'), 'stale');
      const uncached = await fetch(`${cache.url}/v2/ref/team/never/manifests/v1`);
      assert.equal(uncached.status, 503);
      assert.deepEqual(await errorCodes(uncached.clone()), ['UNAVAILABLE']);
      const body = await uncached.json() as { errors: { message: string }[] };
      assert.match(body.errors[0]!.message, new RegExp(`upstream ${ref.url} could not be reached`));
    } finally {
      await ref.start();
    }
  });

  it('expires cached tags not pulled within the ttl; collection then frees what they held; a pull fetches them again', async () => {
    const short = await startRegistry({ overrides: {
      proxy: { upstreams: [{ prefix: 'tiny', remoteurl: tiny.url, ttl: '1h' }] },
      'storage.maintenance.gc.deleteuntagged': true, 'storage.maintenance.gc.grace': '0s',
    } });
    try {
      const image = { manifest: tinyManifest, digest: sha256(tinyManifest), config: sha256(tinyConfig), layers: [sha256(tinyLayer)] };
      await pull('tiny/x', image); // through the shared cache: a warm-up only
      const res = await fetch(`${short.url}/v2/tiny/x/manifests/v1`);
      assert.equal(res.status, 200);
      for (const d of [image.config, ...image.layers]) await (await fetch(`${short.url}/v2/tiny/x/blobs/${d}`)).arrayBuffer();
      // a client has every byte once the digest matched; the commit (flush, rename) follows
      for (let i = 0; i < 100 && !(await short.app.services.store.blobStat(sha256ToDigest(image.layers[0]!))); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const cached = short.app.services.cache!;
      assert.equal(await cached.expire(), 0); // pulled just now
      assert.equal(await cached.expire(Date.now() + 2 * 3_600_000), 1); // two hours on: past the ttl
      await short.app.services.collector.run();
      assert.equal(await short.app.services.store.blobStat(sha256ToDigest(image.layers[0]!)), undefined);
      const again = await fetch(`${short.url}/v2/tiny/x/manifests/v1`);
      assert.equal(again.headers.get('berth-cache'), 'miss');
    } finally {
      await short.close();
    }
  });

  it('serves the cached copy when the upstream times out', async () => {
    const slow = await startRegistry({ overrides: { proxy: { upstreams: [{ prefix: 'tiny', remoteurl: tiny.url, tagttl: '0s', timeout: '300ms' }] } } });
    try {
      assert.equal((await fetch(`${slow.url}/v2/tiny/x/manifests/v1`)).status, 200);
      tiny.delayMs = 1000;
      const res = await fetch(`${slow.url}/v2/tiny/x/manifests/v1`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('berth-cache'), 'stale');
      assert.match(res.headers.get('berth-cache-reason') ?? '', /did not answer within 0\.3 s/);
      const uncached = await fetch(`${slow.url}/v2/tiny/x/manifests/${sha256('nothing')}`);
      assert.equal(uncached.status, 503);
      assert.match(((await uncached.json()) as { errors: { message: string }[] }).errors[0]!.message, /did not answer within 0\.3 s/);
    } finally {
      tiny.delayMs = 0;
      await slow.close();
    }
  });

  it('caps requests in flight and per second toward an upstream', async () => {
    const limited = await startRegistry({ overrides: { proxy: { upstreams: [{ prefix: 'tiny', remoteurl: tiny.url, maxconcurrent: 2, maxrps: 4 }] } } });
    try {
      tiny.delayMs = 100;
      tiny.maxInFlight = 0;
      const started = Date.now();
      const heads = await Promise.all(Array.from({ length: 8 }, () => fetch(`${limited.url}/v2/tiny/y/blobs/${sha256(tinyLayer)}`, { method: 'HEAD' })));
      assert.deepEqual(heads.map((h) => h.status), Array(8).fill(200));
      assert.equal(tiny.maxInFlight, 2);
      assert.ok(Date.now() - started >= 1000, 'eight requests at four a second take over a second');
    } finally {
      tiny.delayMs = 0;
      await limited.close();
    }
  });

  it('counts hits, misses, bytes, upstream requests and stale serves in /metrics', async () => {
    const text = await (await fetch(`${cache.url}/metrics`)).text();
    const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? NaN);
    const upstream = ref.url.replace(/[.]/g, '\\.');
    assert.ok(value(new RegExp(`berth_proxy_lookups_total\\{upstream="${upstream}",kind="blob",result="hit"\\} (\\d+)`)) > 0, text);
    assert.ok(value(new RegExp(`berth_proxy_lookups_total\\{upstream="${upstream}",kind="manifest",result="miss"\\} (\\d+)`)) > 0);
    assert.ok(value(new RegExp(`berth_proxy_upstream_bytes_total\\{upstream="${upstream}"\\} (\\d+)`)) >= 32 << 20);
    assert.ok(value(new RegExp(`berth_proxy_stale_served_total\\{upstream="${upstream}"\\} (\\d+)`)) >= 2);
    assert.ok(value(new RegExp(`berth_proxy_upstream_errors_total\\{upstream="${upstream}",kind="manifest-head"\\} (\\d+)`)) >= 1);
    assert.match(text, /berth_proxy_upstream_request_seconds_count\{upstream="[^"]+",kind="blob",status="200"\} \d+/);
  });
});

function sha256ToDigest(text: string) {
  const [algorithm, hex] = text.split(':');
  return { algorithm, hex, toString: () => text } as never;
}

describe('pull-through cache in read-only mode', () => {
  it('serves what storage holds and asks no upstream', async () => {
    const tiny = await tinyUpstream(new Map());
    const root = tempDir('berth-proxy-ro-');
    const writable = await startRegistry({ root, overrides: { proxy: { upstreams: [{ prefix: 'tiny', remoteurl: tiny.url }] } } });
    const local = await pushImage(writable.url, 'mine/app', 'v1');
    await writable.close();
    const ro = await startRegistry({ root, overrides: {
      proxy: { upstreams: [{ prefix: 'tiny', remoteurl: tiny.url }] }, 'storage.maintenance.readonly.enabled': true,
    } });
    try {
      assert.equal((await fetch(`${ro.url}/v2/mine/app/manifests/v1`)).headers.get('docker-content-digest'), local.digest);
      assert.equal((await fetch(`${ro.url}/v2/tiny/x/manifests/v1`)).status, 404);
      assert.deepEqual(tiny.requests, []);
    } finally {
      await ro.close();
      await tiny.close();
    }
  });
});
