// Regressions of the consistency model: each of these failed before repository metadata had
// locks, ordered writes, stored media types and collection inside the registry.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { pino } from 'pino';
import { pushBlob, pushImage, sha256, startRegistry, tempDir } from '../helpers/registry.js';

const V2 = 'docker/registry/v2';
const DOCKER_V2 = 'application/vnd.docker.distribution.manifest.v2+json';

describe('consistency', () => {
  it('a tag PUT racing a DELETE of its digest never leaves a tag without its revision (200 tries)', async () => {
    const r = await startRegistry();
    try {
      let dangling = 0;
      for (let i = 0; i < 200; i++) {
        const config = await pushBlob(r.url, 'race/tag', `{"i":${i}}`);
        const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: `{"i":${i}}`.length }, layers: [] });
        const digest = sha256(manifest);
        await Promise.all([
          fetch(`${r.url}/v2/race/tag/manifests/t${i}`, { method: 'PUT', body: manifest, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } }).then((x) => x.arrayBuffer()),
          // the DELETE lands at a different moment of the PUT on each try
          new Promise((resolve) => setTimeout(resolve, i % 7)).then(() => fetch(`${r.url}/v2/race/tag/manifests/${digest}`, { method: 'DELETE' })).then((x) => x.arrayBuffer()),
        ]);
        const byTag = await fetch(`${r.url}/v2/race/tag/manifests/t${i}`, { method: 'HEAD' });
        const byDigest = await fetch(`${r.url}/v2/race/tag/manifests/${digest}`, { method: 'HEAD' });
        if (byTag.status === 200 && byDigest.status !== 200) dangling++;
      }
      assert.equal(dangling, 0);
    } finally {
      await r.close();
    }
  });

  it('racing tag PUT/DELETE and blob upload/DELETE never answer 5xx', async () => {
    const r = await startRegistry();
    try {
      const statuses: number[] = [];
      const image = await pushImage(r.url, 'race/five', 'v1');
      for (let i = 0; i < 50; i++) {
        const answers = await Promise.all([
          fetch(`${r.url}/v2/race/five/manifests/v1`, { method: 'PUT', body: image.manifest, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } }),
          fetch(`${r.url}/v2/race/five/manifests/v1`, { method: 'DELETE' }),
          pushBlob(r.url, 'race/five', 'same blob').then(() => ({ status: 201, arrayBuffer: async () => undefined }), () => ({ status: 0, arrayBuffer: async () => undefined })),
          fetch(`${r.url}/v2/race/five/blobs/${sha256('same blob')}`, { method: 'DELETE' }),
        ]);
        for (const a of answers) {
          statuses.push(a.status);
          await a.arrayBuffer();
        }
      }
      assert.deepEqual(statuses.filter((s) => s >= 500 || s === 0), []);
    } finally {
      await r.close();
    }
  });

  it('collection in the serving process is seen at once: no HEAD 200 for a removed blob', async () => {
    const r = await startRegistry({ overrides: { 'storage.maintenance.gc.grace': '0s' } });
    try {
      const digest = await pushBlob(r.url, 'gc/now', 'unreferenced');
      assert.equal((await fetch(`${r.url}/v2/gc/now/blobs/${digest}`, { method: 'HEAD' })).status, 200);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const report = await (await fetch(`${r.url}/api/v1/gc?wait=true`, { method: 'POST' })).json() as { blobsDeleted: number };
      assert.equal(report.blobsDeleted, 1);
      assert.equal((await fetch(`${r.url}/v2/gc/now/blobs/${digest}`, { method: 'HEAD' })).status, 404);
    } finally {
      await r.close();
    }
  });

  it('keeps what a push in progress uploaded, mounted or checked, for the grace period', async () => {
    const r = await startRegistry({ overrides: { 'storage.maintenance.gc.grace': '1h' } });
    try {
      const config = await pushBlob(r.url, 'gc/push', '{"os":"linux"}');
      const report = await (await fetch(`${r.url}/api/v1/gc?wait=true`, { method: 'POST' })).json() as { blobsDeleted: number };
      assert.equal(report.blobsDeleted, 0);
      const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 14 }, layers: [] });
      const put = await fetch(`${r.url}/v2/gc/push/manifests/v1`, { method: 'PUT', body: manifest, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(put.status, 201);
    } finally {
      await r.close();
    }
  });

  it('serves the media type a manifest was pushed with, from every process', async () => {
    const root = tempDir();
    const r = await startRegistry({ root });
    const second = createApp(loadConfig({ env: {}, overrides: { 'storage.filesystem.rootdirectory': root, 'log.level': 'error' } }), pino({ level: 'silent' }));
    try {
      const config = await pushBlob(r.url, 'types/app', '{"os":"linux"}');
      // schema2 without its mediaType field: only the Content-Type says what it is
      const manifest = JSON.stringify({ schemaVersion: 2,
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: config, size: 14 }, layers: [] });
      assert.equal((await fetch(`${r.url}/v2/types/app/manifests/v1`, { method: 'PUT', body: manifest, headers: { 'Content-Type': DOCKER_V2 } })).status, 201);
      const fresh = await second.services.manifests.get('types/app', 'v1');
      assert.equal(fresh.mediaType, DOCKER_V2);
      const res = await fetch(`${r.url}/v2/types/app/manifests/v1`, { headers: { Accept: DOCKER_V2 } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), DOCKER_V2);
    } finally {
      await r.close();
    }
  });

  it('an unreadable stored referrer fails neither the referrers list nor collection', async () => {
    const r = await startRegistry({ overrides: { 'storage.maintenance.gc.grace': '0s', 'storage.maintenance.gc.deleteuntagged': true } });
    try {
      const subject = await pushImage(r.url, 'refs/app', 'v1');
      const referrer = await pushImage(r.url, 'refs/app', 'sig', 'sig', {
        artifactType: 'application/example', junk: { deeply: ['odd'] },
        subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject.digest, size: subject.manifest.length },
      });
      const list = await fetch(`${r.url}/v2/refs/app/referrers/${subject.digest}`);
      assert.equal(list.status, 200);
      assert.equal(((await list.json()) as { manifests: unknown[] }).manifests.length, 1);
      // the stored bytes of the referrer go bad (a disk fault, a foreign writer)
      const hex = referrer.digest.slice(7);
      writeFileSync(join(r.root, V2, 'blobs/sha256', hex.slice(0, 2), hex, 'data'), `{"subject": not json ${subject.layers[0]}`);
      const fresh = createApp(loadConfig({ env: {}, overrides: { 'storage.filesystem.rootdirectory': r.root, 'log.level': 'error' } }), pino({ level: 'silent' }));
      const descriptors = await fresh.services.referrers.list('refs/app', (await import('../../src/registry/names.js')).parseDigest(subject.digest));
      assert.deepEqual(descriptors, []);
      const orphan = await pushBlob(r.url, 'refs/app', 'orphan');
      await new Promise((resolve) => setTimeout(resolve, 20));
      const gc = await fetch(`${r.url}/api/v1/gc?wait=true`, { method: 'POST' });
      assert.equal(gc.status, 200);
      const report = await gc.json() as { unreadableManifests: number; blobsDeleted: number };
      assert.equal(report.unreadableManifests, 1);
      // the orphan goes, and so do the referrer's own config and layer, which its damaged bytes no longer name
      assert.equal(report.blobsDeleted, 3);
      assert.equal((await fetch(`${r.url}/v2/refs/app/blobs/${orphan}`, { method: 'HEAD' })).status, 404);
      assert.equal((await fetch(`${r.url}/v2/refs/app/blobs/${subject.layers[0]}`, { method: 'HEAD' })).status, 200);
    } finally {
      await r.close();
    }
  });

  it('a tag folder a crash left without its link is neither listed nor served', async () => {
    const r = await startRegistry();
    try {
      await pushImage(r.url, 'crash/app', 'v1');
      const phantom = join(r.root, V2, 'repositories/crash/app/_manifests/tags/v2/current');
      mkdirSync(phantom, { recursive: true });
      writeFileSync(join(phantom, 'link.1a2b3c.tmp'), 'sha256:');
      const list = await (await fetch(`${r.url}/v2/crash/app/tags/list`)).json() as { tags: string[] };
      assert.deepEqual(list.tags, ['v1']);
      assert.equal((await fetch(`${r.url}/v2/crash/app/manifests/v2`)).status, 404);
      // collection removes the folder once it is older than the grace period
      utimesSync(join(r.root, V2, 'repositories/crash/app/_manifests/tags/v2'), new Date(0), new Date(0));
      await r.app.services.collector.run({ graceMs: 1000 });
      assert.equal(existsSync(join(r.root, V2, 'repositories/crash/app/_manifests/tags/v2')), false);
      assert.equal(existsSync(join(r.root, V2, 'repositories/crash/app/_manifests/tags/v1')), true);
    } finally {
      await r.close();
    }
  });

  it('deletes a repository: it leaves the catalog at once, a nested one stays, its blobs are collected', async () => {
    const r = await startRegistry({ overrides: { 'storage.maintenance.gc.grace': '0s' } });
    try {
      const image = await pushImage(r.url, 'team/app', 'v1', 'gone');
      await pushImage(r.url, 'team/app/nested', 'v1', 'stays');
      assert.deepEqual(((await (await fetch(`${r.url}/v2/_catalog`)).json()) as { repositories: string[] }).repositories, ['team/app', 'team/app/nested']);
      const del = await fetch(`${r.url}/api/v1/repositories/team/app`, { method: 'DELETE' });
      assert.equal(del.status, 202);
      assert.deepEqual(((await (await fetch(`${r.url}/v2/_catalog`)).json()) as { repositories: string[] }).repositories, ['team/app/nested']);
      assert.equal((await fetch(`${r.url}/v2/team/app/tags/list`)).status, 404);
      assert.equal((await fetch(`${r.url}/api/v1/repositories/team/app`, { method: 'DELETE' })).status, 404);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const report = await (await fetch(`${r.url}/api/v1/gc?wait=true`, { method: 'POST' })).json() as { blobsDeleted: number };
      assert.equal(report.blobsDeleted, 3);
      assert.equal((await fetch(`${r.url}/v2/team/app/nested/manifests/v1`)).status, 200);
      const hex = image.layers[0]!.slice(7);
      assert.equal((await import('node:fs')).existsSync(join(r.root, V2, 'blobs/sha256', hex.slice(0, 2), hex)), false);
    } finally {
      await r.close();
    }
  });

  it('GET /api/v1/repositories reports tags, total and unique bytes and last push, kept up to date', async () => {
    const r = await startRegistry();
    try {
      const a = await pushImage(r.url, 'usage/a', 'v1', 'one');
      await pushImage(r.url, 'usage/a', 'v2', 'two');
      const layerOf = (seed: string) => Buffer.byteLength(`layer for ${seed}`);
      const configOf = (seed: string) => Buffer.byteLength(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
      // the same image in another repository: nothing of it is unique to either
      await fetch(`${r.url}/v2/usage/b/blobs/uploads/?mount=${a.config}&from=usage/a`, { method: 'POST' });
      await fetch(`${r.url}/v2/usage/b/blobs/uploads/?mount=${a.layers[0]}&from=usage/a`, { method: 'POST' });
      assert.equal((await fetch(`${r.url}/v2/usage/b/manifests/v1`, { method: 'PUT', body: a.manifest, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })).status, 201);
      const page = await (await fetch(`${r.url}/api/v1/repositories`)).json() as { repositories: { name: string; tags: number; bytes: number; uniqueBytes: number; lastPush: string }[] };
      const [ua, ub] = page.repositories;
      assert.equal(ua!.name, 'usage/a');
      assert.equal(ua!.tags, 2);
      const oneBytes = layerOf('one') + configOf('one') + a.manifest.length;
      assert.equal(ub!.bytes, oneBytes);
      assert.equal(ub!.uniqueBytes, 0);
      assert.ok(ua!.bytes > oneBytes);
      assert.equal(ua!.uniqueBytes, ua!.bytes - oneBytes);
      assert.ok(Date.now() - Date.parse(ua!.lastPush) < 60_000);
      await fetch(`${r.url}/v2/usage/a/manifests/v2`, { method: 'DELETE' });
      const after = await (await fetch(`${r.url}/api/v1/repositories/usage/a`)).json() as { tags: number; tagList: { name: string }[] };
      assert.equal(after.tags, 1);
      assert.deepEqual(after.tagList.map((t) => t.name), ['v1']);
      const uploads = await (await fetch(`${r.url}/api/v1/uploads`)).json() as { count: number };
      assert.equal(typeof uploads.count, 'number');
    } finally {
      await r.close();
    }
  });

  it('counts open uploads in the API and metrics, and collection purges those idle past the grace period', async () => {
    const r = await startRegistry({ overrides: { 'storage.maintenance.gc.grace': '0s' } });
    try {
      const start = await fetch(`${r.url}/v2/idle/app/blobs/uploads/`, { method: 'POST' });
      const location = new URL(start.headers.get('location')!, r.url);
      const patch = await fetch(location, { method: 'PATCH', body: Buffer.alloc(1000, 7), headers: { 'Content-Type': 'application/octet-stream' } });
      assert.equal(patch.status, 202);
      const figures = await (await fetch(`${r.url}/api/v1/uploads`)).json() as { count: number; bytes: number };
      assert.deepEqual([figures.count, figures.bytes], [1, 1000]);
      const metrics = await (await fetch(`${r.url}/metrics`)).text();
      assert.match(metrics, /^berth_uploads_open_bytes 1000$/m);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const report = await (await fetch(`${r.url}/api/v1/gc?wait=true`, { method: 'POST' })).json() as { uploadsDeleted: number };
      assert.equal(report.uploadsDeleted, 1);
      assert.equal((await fetch(new URL(patch.headers.get('location')!, r.url))).status, 404);
      const after = await (await fetch(`${r.url}/metrics`)).text();
      assert.match(after, /^berth_gc_runs_total\{outcome="ok"\} 1$/m);
      const status = await (await fetch(`${r.url}/api/v1/gc`)).json() as { running: boolean; last: { uploadsDeleted: number } };
      assert.equal(status.running, false);
      assert.equal(status.last.uploadsDeleted, 1);
    } finally {
      await r.close();
    }
  });

  it('deleteuntagged keeps the platform manifests of a tagged index and the referrers of kept manifests', async () => {
    const r = await startRegistry({ overrides: { 'storage.maintenance.gc.grace': '0s', 'storage.maintenance.gc.deleteuntagged': true } });
    try {
      const amd = await pushImage(r.url, 'multi/app', 'tmp-amd', 'amd');
      const arm = await pushImage(r.url, 'multi/app', 'tmp-arm', 'arm');
      const index = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [amd, arm].map((m, i) => ({
        mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: m.digest, size: m.manifest.length,
        platform: { os: 'linux', architecture: i ? 'arm64' : 'amd64' } })) });
      assert.equal((await fetch(`${r.url}/v2/multi/app/manifests/v1`, { method: 'PUT', body: index, headers: { 'Content-Type': 'application/vnd.oci.image.index.v1+json' } })).status, 201);
      const signature = await pushImage(r.url, 'multi/app', 'tmp-sig', 'sig', {
        subject: { mediaType: 'application/vnd.oci.image.index.v1+json', digest: sha256(index), size: index.length } });
      const lone = await pushImage(r.url, 'multi/app', 'tmp-lone', 'lone');
      for (const tag of ['tmp-amd', 'tmp-arm', 'tmp-sig', 'tmp-lone']) {
        assert.equal((await fetch(`${r.url}/v2/multi/app/manifests/${tag}`, { method: 'DELETE' })).status, 202);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      const report = await (await fetch(`${r.url}/api/v1/gc?wait=true`, { method: 'POST' })).json() as { manifestsDeleted: number };
      assert.equal(report.manifestsDeleted, 1);
      for (const kept of [amd, arm, signature]) {
        assert.equal((await fetch(`${r.url}/v2/multi/app/manifests/${kept.digest}`, { method: 'HEAD' })).status, 200);
        assert.equal((await fetch(`${r.url}/v2/multi/app/blobs/${kept.layers[0]}`, { method: 'HEAD' })).status, 200);
      }
      assert.equal((await fetch(`${r.url}/v2/multi/app/manifests/${lone.digest}`, { method: 'HEAD' })).status, 404);
      assert.equal((await fetch(`${r.url}/v2/multi/app/blobs/${lone.layers[0]}`, { method: 'HEAD' })).status, 404);
    } finally {
      await r.close();
    }
  });
});
