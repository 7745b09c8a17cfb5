// What the web UI stands on, over HTTP: the page and its files (negotiated compression, strong
// ETags, caching, the Content-Security-Policy), ui.enabled, the management endpoints it reads
// (filtered and paged repositories, tag details, untagged manifests, status, me), challenges
// that do not open the browser's dialog, and the refusal of cross-site state changes.
import { strict as assert } from 'node:assert';
import { gunzipSync, brotliDecompressSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { UiAssets, UiAssetsMissing } from '../../src/ui/assets.js';
import { pushImage, pushBlob, sha256, startRegistry } from '../helpers/registry.js';
import { makeHtpasswd } from '../helpers/pki.js';
import { needs } from '../helpers/clients.js';
import { tempDir } from '../helpers/scratch.js';
import { join } from 'node:path';

const HTML = { Accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };

describe('the web UI over HTTP', () => {
  it('serves the page to browsers only, with a strict policy, and its files precompressed with strong ETags', async () => {
    const r = await startRegistry();
    try {
      const page = await fetch(`${r.url}/`, { headers: HTML });
      assert.equal(page.status, 200);
      assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
      assert.equal(page.headers.get('content-security-policy'), "default-src 'none'; script-src 'self'; style-src 'self'; " +
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
      assert.equal(page.headers.get('cache-control'), 'no-cache');
      const html = await page.text();
      const script = /<script type="module" src="(ui\/app\.[\w-]+\.js)"><\/script>/.exec(html)?.[1];
      const style = /<link rel="stylesheet" href="(ui\/app\.[\w-]+\.css)">/.exec(html)?.[1];
      assert.ok(script && style, html);
      assert.doesNotMatch(html, /<script>|\sstyle=|\son\w+="/, 'no inline script or style');
      // registry clients asking for / get what they always got
      const plain = await fetch(`${r.url}/`);
      assert.equal(plain.status, 404);
      assert.equal((await plain.json() as { errors: { code: string }[] }).errors[0]!.code, 'UNSUPPORTED');

      const { request } = await import('node:http');
      const raw = (path: string, headers: Record<string, string>) => new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
        request(`${r.url}/${path}`, { headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
        }).on('error', reject).end();
      });
      const identity = await raw(script, {});
      assert.equal(identity.status, 200);
      assert.equal(identity.headers['content-encoding'], undefined);
      assert.equal(identity.headers['cache-control'], 'public, max-age=31536000, immutable');
      assert.equal(identity.headers['content-type'], 'text/javascript; charset=utf-8');
      const br = await raw(script, { 'Accept-Encoding': 'gzip, deflate, br' });
      assert.equal(br.headers['content-encoding'], 'br');
      assert.deepEqual(brotliDecompressSync(br.body), identity.body);
      const gz = await raw(script, { 'Accept-Encoding': 'gzip, br;q=0' });
      assert.equal(gz.headers['content-encoding'], 'gzip');
      assert.deepEqual(gunzipSync(gz.body), identity.body);
      assert.match(String(br.headers.etag), /^"[\w-]+-br"$/);
      assert.notEqual(br.headers.etag, gz.headers.etag, 'each encoding has its own strong ETag');
      assert.equal(br.headers.vary, 'Accept-Encoding');
      const again = await raw(script, { 'Accept-Encoding': 'br', 'If-None-Match': String(br.headers.etag) });
      assert.equal(again.status, 304);
      assert.equal(again.body.length, 0);
      const css = await raw(style, { 'Accept-Encoding': 'gzip' });
      assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
      assert.ok(css.body.length > 0);
      const missing = await fetch(`${r.url}/ui/app.nothere.js`);
      assert.equal(missing.status, 404);
      // everything the page loads, compressed, within the budget
      const total = (await raw('', { ...HTML, 'Accept-Encoding': 'gzip' })).body.length + gz.body.length + css.body.length;
      assert.ok(total < 150 * 1024, `${total} B`);
    } finally {
      await r.close();
    }
  });

  it('ui.enabled: false (or REGISTRY_UI_ENABLED=false) turns the UI off', async () => {
    assert.equal(loadConfig({ env: { REGISTRY_UI_ENABLED: 'false' } }).ui.enabled, false);
    assert.equal(loadConfig({ env: {} }).ui.enabled, true);
    const r = await startRegistry({ overrides: { 'ui.enabled': false } });
    try {
      const page = await fetch(`${r.url}/`, { headers: HTML });
      assert.equal(page.status, 404);
      assert.match(await page.text(), /ui\.enabled: false/);
      assert.equal((await fetch(`${r.url}/ui/anything.js`)).status, 404);
      assert.equal((await fetch(`${r.url}/v2/`)).status, 200);
    } finally {
      await r.close();
    }
  });

  it('without a build of the UI, says how to make one', async () => {
    const assets = new UiAssets(tempDir('no-ui-'));
    await assert.rejects(assets.get('index.html'), (err: Error) => err instanceof UiAssetsMissing && /run npm run build/.test(err.message));
  });

  it('with http.prefix, the page is at the prefix with its slash', async () => {
    const r = await startRegistry({ overrides: { 'http.prefix': '/registry' } });
    try {
      const bare = await fetch(`${r.url}/registry`, { headers: HTML, redirect: 'manual' });
      assert.equal(bare.status, 301);
      assert.equal(bare.headers.get('location'), '/registry/');
      const page = await fetch(`${r.url}/registry/`, { headers: HTML });
      const script = /src="(ui\/[^"]+)"/.exec(await page.text())![1];
      assert.equal((await fetch(`${r.url}/registry/${script}`)).status, 200);
    } finally {
      await r.close();
    }
  });

  it('lists repositories filtered on the server and a page at a time, with the total', async () => {
    const r = await startRegistry();
    try {
      for (const name of ['apps/web', 'apps/api', 'tools/web-proxy', 'base']) await pushImage(r.url, name, 'v1', name);
      const list = async (query: string) => {
        const res = await fetch(`${r.url}/api/v1/repositories?${query}`);
        return { body: await res.json() as { repositories: { name: string }[]; total: number }, link: res.headers.get('link') };
      };
      const web = await list('q=WEB');
      assert.deepEqual(web.body.repositories.map((x) => x.name), ['apps/web', 'tools/web-proxy']);
      assert.equal(web.body.total, 2);
      const first = await list('q=web&n=1');
      assert.deepEqual(first.body.repositories.map((x) => x.name), ['apps/web']);
      assert.equal(first.link, '</api/v1/repositories?n=1&last=apps%2Fweb&q=web>; rel="next"');
      const second = await list('q=web&n=1&last=apps%2Fweb');
      assert.deepEqual(second.body.repositories.map((x) => x.name), ['tools/web-proxy']);
      assert.equal(second.link, null);
      assert.equal((await list('')).body.total, 4);
      assert.equal((await fetch(`${r.url}/api/v1/repositories?n=lots`)).status, 400);
    } finally {
      await r.close();
    }
  });

  it('describes a repository: tags newest first with digest, size and platform; untagged manifests and why they stay', async () => {
    const r = await startRegistry();
    try {
      const old = await pushImage(r.url, 'shop', 'old', 'a');
      await new Promise((resolve) => setTimeout(resolve, 20));
      const current = await pushImage(r.url, 'shop', 'new', 'b');
      const loose = await pushImage(r.url, 'shop', 'loose', 'c');
      assert.equal((await fetch(`${r.url}/v2/shop/manifests/loose`, { method: 'DELETE' })).status, 202);
      const layer = await pushBlob(r.url, 'shop', 'sbom');
      const empty = await pushBlob(r.url, 'shop', '{}');
      const referrer = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/spdx+json',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 },
        layers: [{ mediaType: 'application/spdx+json', digest: layer, size: 4 }],
        subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: current.digest, size: current.manifest.length },
      }));
      assert.equal((await fetch(`${r.url}/v2/shop/manifests/${sha256(referrer)}`, {
        method: 'PUT', body: referrer, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
      })).status, 201);
      const repo = await (await fetch(`${r.url}/api/v1/repositories/shop`)).json() as {
        tagList: { name: string; digest: string; size: number; platforms: string[]; kind: string; pushedAt: string }[];
        untagged: { digest: string; role: string; kind: string; subject?: string; artifactType?: string }[];
      };
      assert.deepEqual(repo.tagList.map((t) => t.name), ['new', 'old']);
      const newest = repo.tagList[0]!;
      assert.equal(newest.digest, current.digest);
      assert.deepEqual(newest.platforms, ['linux/amd64']);
      assert.equal(newest.kind, 'image');
      const configSize = Buffer.byteLength(JSON.stringify({ architecture: 'amd64', os: 'linux', seed: 'b' }));
      assert.equal(newest.size, current.manifest.length + configSize + Buffer.byteLength('layer for b'));
      assert.ok(Date.parse(newest.pushedAt) >= Date.parse(repo.tagList[1]!.pushedAt));
      assert.equal(repo.tagList[1]!.digest, old.digest);
      const byDigest = new Map(repo.untagged.map((u) => [u.digest, u]));
      assert.equal(byDigest.get(loose.digest)?.role, 'untagged');
      assert.equal(byDigest.get(sha256(referrer))?.role, 'referrer');
      assert.equal(byDigest.get(sha256(referrer))?.subject, current.digest);
      assert.equal(byDigest.get(sha256(referrer))?.kind, 'artifact');
      assert.equal(byDigest.get(sha256(referrer))?.artifactType, 'application/spdx+json');
    } finally {
      await r.close();
    }
  });

  it('reports the status: version, storage used, uploads in progress, the last collection', async () => {
    const r = await startRegistry();
    try {
      await pushImage(r.url, 'one', 'v1', 'x');
      await pushImage(r.url, 'two', 'v1', 'x'); // the same blobs: counted once
      await fetch(`${r.url}/v2/one/blobs/uploads/`, { method: 'POST' });
      const before = await (await fetch(`${r.url}/api/v1/status`)).json() as {
        version: string; repositories: number; storage: { bytes: number }; uploads: { count: number }; gc: { last: unknown; running: boolean };
      };
      assert.match(before.version, /^\d+\.\d+\.\d+/);
      assert.equal(before.repositories, 2);
      const one = await (await fetch(`${r.url}/api/v1/repositories/one`)).json() as { bytes: number };
      assert.equal(before.storage.bytes, one.bytes);
      assert.equal(before.uploads.count, 1);
      assert.equal(before.gc.last, null);
      assert.equal((await fetch(`${r.url}/api/v1/gc?wait=true`, { method: 'POST' })).status, 200);
      const after = await (await fetch(`${r.url}/api/v1/status`)).json() as { gc: { last: { finishedAt: string } | null } };
      assert.ok(after.gc.last?.finishedAt);
    } finally {
      await r.close();
    }
  });

  it('tells callers who they are and what they may do; a UI request gets its challenge without opening the browser dialog', { skip: needs('htpasswd') }, async () => {
    const dir = tempDir('ui-auth-');
    await makeHtpasswd(join(dir, 'htpasswd'), { alice: 'alice-pw', bob: 'bob-pw' });
    const r = await startRegistry({
      overrides: {
        'auth.htpasswd.path': join(dir, 'htpasswd'), 'auth.htpasswd.realm': 'berth',
        'access.rules': [{ repositories: ['**'], users: { alice: ['pull', 'push', 'delete'], bob: ['pull'] } }],
      },
    });
    const as = (user: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${user}-pw`).toString('base64')}` });
    try {
      const anonymous = await fetch(`${r.url}/api/v1/me`);
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.headers.get('www-authenticate'), 'Basic realm="berth"');
      const fromUi = await fetch(`${r.url}/api/v1/me`, { headers: { 'X-Berth-UI': '1' } });
      assert.equal(fromUi.status, 401);
      assert.equal(fromUi.headers.get('www-authenticate'), null, 'no native Basic dialog for the UI');
      assert.equal(fromUi.headers.get('x-berth-authenticate'), 'Basic realm="berth"');
      // the page itself needs no credentials: it holds no data
      assert.equal((await fetch(`${r.url}/`, { headers: HTML })).status, 200);
      const bob = await (await fetch(`${r.url}/api/v1/me?repository=shop`, { headers: as('bob') })).json() as
        { user: string; auth: string; gc: boolean; repository: { actions: string[] } };
      assert.deepEqual({ user: bob.user, auth: bob.auth, gc: bob.gc, actions: bob.repository.actions },
        { user: 'bob', auth: 'htpasswd', gc: false, actions: ['pull'] });
      const alice = await (await fetch(`${r.url}/api/v1/me?repository=shop`, { headers: as('alice') })).json() as
        { gc: boolean; repository: { actions: string[] } };
      assert.deepEqual(alice.repository.actions, ['pull', 'push', 'delete']);
      assert.equal(alice.gc, true);
      assert.equal((await fetch(`${r.url}/api/v1/me?repository=Bad..Name`, { headers: as('alice') })).status, 400);
    } finally {
      await r.close();
    }
  });

  it('refuses state changes a browser sends from another site, whatever credentials it holds', async () => {
    const r = await startRegistry();
    try {
      await pushImage(r.url, 'victim', 'v1');
      const host = new URL(r.url).host;
      const attempts: [string, Record<string, string>][] = [
        ['a form on another site', { Origin: 'https://evil.example', 'Content-Type': 'application/x-www-form-urlencoded' }],
        ['another site, even with the header', { Origin: 'https://evil.example', 'X-Berth-UI': '1' }],
        ['a same-site page', { 'Sec-Fetch-Site': 'same-site', 'X-Berth-UI': '1' }],
        ['an opaque origin', { Origin: 'null', 'X-Berth-UI': '1' }],
        ['this origin without the UI header', { Origin: `http://${host}`, 'Content-Type': 'text/plain' }],
      ];
      for (const [what, headers] of attempts) {
        const gc = await fetch(`${r.url}/api/v1/gc`, { method: 'POST', headers });
        assert.equal(gc.status, 403, what);
        const del = await fetch(`${r.url}/api/v1/repositories/victim`, { method: 'DELETE', headers });
        assert.equal(del.status, 403, what);
        assert.match(await del.text(), /Berth's own web UI/);
      }
      assert.equal((await fetch(`${r.url}/v2/victim/manifests/v1`, { method: 'HEAD' })).status, 200, 'nothing was deleted');
      // reading stays open to pages of any origin (CORS still keeps the answer from them), and the UI itself may act
      assert.equal((await fetch(`${r.url}/v2/victim/tags/list`, { headers: { Origin: 'https://evil.example' } })).status, 200);
      const ui = await fetch(`${r.url}/api/v1/repositories/victim`, {
        method: 'DELETE', headers: { Origin: `http://${host}`, 'Sec-Fetch-Site': 'same-origin', 'X-Berth-UI': '1' },
      });
      assert.equal(ui.status, 202);
      // clients that are not browsers (no Origin, no Sec-Fetch-Site) are unaffected
      assert.equal((await fetch(`${r.url}/api/v1/gc`, { method: 'POST' })).status, 202);
    } finally {
      await r.close();
    }
  });
});
