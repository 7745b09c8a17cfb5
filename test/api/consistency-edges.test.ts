// Edges of the consistency model: storage faults and slow steps at the worst moment.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { pushBlob, pushImage, sha256, startRegistry, tempDir } from '../helpers/registry.js';

const V2 = 'docker/registry/v2';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A real filesystem driver whose chosen operations fail or slow down when `when` says so. */
function faulty(root: string, hooks: Partial<Record<keyof StorageDriver, (path: string) => Promise<void> | void>>): StorageDriver {
  const fs: StorageDriver = new FilesystemDriver(root);
  return new Proxy(fs, {
    get(target, prop: keyof StorageDriver) {
      const value = target[prop];
      if (typeof value !== 'function') return value;
      const hook = hooks[prop];
      if (!hook) return value.bind(target); // unhooked calls stay as they are (statNow is synchronous)
      return async (...args: unknown[]) => {
        await hook(args[0] as string);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as StorageDriver;
}

describe('consistency at the edges', () => {
  it('a read error on a repository\'s tags stops collection instead of sweeping its tagged images', async () => {
    const root = tempDir();
    let fail = false;
    const driver = faulty(root, { list: (path) => {
      if (fail && path.endsWith('/_manifests/tags')) {
        fail = false;
        throw Object.assign(new Error('EIO: i/o error, scandir'), { code: 'EIO' });
      }
    } });
    const r = await startRegistry({ root, driver });
    try {
      await pushImage(r.url, 'team/app', 'v1');
      await sleep(20);
      fail = true;
      await assert.rejects(r.app.services.collector.run({ deleteUntagged: true, graceMs: 0 }), /EIO/);
      assert.equal((await fetch(`${r.url}/v2/team/app/manifests/v1`)).status, 200);
    } finally {
      await r.close();
    }
  });

  it('a committed upload counts as used now, whatever its last PATCH\'s age, also for another process', async () => {
    const r = await startRegistry({ overrides: { 'storage.maintenance.gc.grace': '10m' } });
    try {
      const data = Buffer.from('uploaded a while ago');
      const start = await fetch(`${r.url}/v2/slow/app/blobs/uploads/`, { method: 'POST' });
      const patch = await fetch(new URL(start.headers.get('location')!, r.url), { method: 'PATCH', body: data });
      const uploads = join(r.root, V2, 'repositories/slow/app/_uploads');
      const old = new Date(Date.now() - 50 * 60_000);
      for (const id of readdirSync(uploads)) utimesSync(join(uploads, id, 'data'), old, old);
      const put = new URL(patch.headers.get('location')!, r.url);
      put.searchParams.set('digest', sha256(data));
      assert.equal((await fetch(put, { method: 'PUT' })).status, 201);
      const hex = sha256(data).slice(7);
      assert.ok(Date.now() - statSync(join(r.root, V2, 'blobs/sha256', hex.slice(0, 2), hex, 'data')).mtimeMs < 60_000);
    } finally {
      await r.close();
    }
  });

  it('completing an upload while its repository is deleted answers 201 or 404, never 5xx', async () => {
    const r = await startRegistry();
    try {
      const statuses = new Set<number>();
      for (let i = 0; i < 100; i++) {
        const name = `race/r${i}`;
        const data = Buffer.from(`blob ${i} ${'y'.repeat(1000)}`);
        const start = await fetch(`${r.url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
        const patch = await fetch(new URL(start.headers.get('location')!, r.url), { method: 'PATCH', body: data });
        const put = new URL(patch.headers.get('location')!, r.url);
        put.searchParams.set('digest', sha256(data));
        const [a, b] = await Promise.all([
          fetch(put, { method: 'PUT' }),
          sleep(i % 5).then(() => fetch(`${r.url}/api/v1/repositories/${name}`, { method: 'DELETE' })),
        ]);
        statuses.add(a.status);
        statuses.add(b.status);
        await a.arrayBuffer();
        await b.arrayBuffer();
      }
      assert.deepEqual([...statuses].filter((s) => s >= 500), []);
    } finally {
      await r.close();
    }
  });

  it('reading a manifest while its repository is deleted does not bring the repository back', async () => {
    const root = tempDir();
    let slow = false;
    const driver = faulty(root, { getContent: async (path) => { if (slow && path.endsWith('/mediatype')) await sleep(100); } });
    const r = await startRegistry({ root, driver });
    try {
      const image = await pushImage(r.url, 'gone/app', 'v1');
      // as for data registry:2 wrote: no recorded media type yet
      const { rmSync } = await import('node:fs');
      rmSync(join(root, V2, 'repositories/gone/app/_manifests/revisions/sha256', image.digest.slice(7), 'mediatype'));
      slow = true;
      const fresh = (await import('../../src/app.js')).createServices(r.config, driver);
      const [, del] = await Promise.all([
        fresh.manifests.get('gone/app', image.digest).catch(() => undefined),
        sleep(30).then(() => fetch(`${r.url}/api/v1/repositories/gone/app`, { method: 'DELETE' })),
      ]);
      assert.equal(del.status, 202);
      await sleep(150);
      assert.equal(existsSync(join(root, V2, 'repositories/gone/app/_manifests')), false);
    } finally {
      await r.close();
    }
  });

  it('a HEAD during the sweep of its blob answers 404, or the blob stays: HEAD 200 means the manifest put works', async () => {
    const root = tempDir();
    const driver = faulty(root, { delete: async (path) => { if (path.includes('/blobs/sha256/')) await sleep(200); } });
    const r = await startRegistry({ root, driver });
    try {
      const layer = 'a layer uploaded long ago that no manifest references yet';
      const digest = await pushBlob(r.url, 'app', layer);
      const config = await pushBlob(r.url, 'app', '{"os":"linux"}');
      const old = new Date(Date.now() - 2 * 3600_000);
      utimesSync(join(root, V2, 'blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data'), old, old);
      // a new process: no use of the blob remembered in memory
      await r.close();
      const again = await startRegistry({ root, driver });
      try {
        const gc = again.app.services.collector.run({ graceMs: 3600_000 });
        await sleep(50);
        const head = await fetch(`${again.url}/v2/app/blobs/${digest}`, { method: 'HEAD' });
        await gc;
        const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 14 },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: layer.length }] });
        const put = await fetch(`${again.url}/v2/app/manifests/v1`, { method: 'PUT', body: manifest, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
        assert.equal(put.status === 201, head.status === 200, `HEAD ${head.status} then PUT ${put.status}`);
      } finally {
        await again.close();
      }
    } finally {
      await r.close().catch(() => undefined);
    }
  });

  it('overlapping usage rebuilds lose no event and keep answering', async () => {
    const r = await startRegistry();
    try {
      const { usage } = r.app.services;
      await pushImage(r.url, 'a/one', 'v1', 'one');
      await usage.ready();
      const results = await Promise.allSettled([usage.rebuild(), usage.rebuild(), pushImage(r.url, 'a/two', 'v1', 'two'), usage.rebuild()]);
      assert.deepEqual(results.map((x) => x.status), ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
      await usage.rebuild();
      assert.deepEqual(usage.names(), ['a/one', 'a/two']);
      assert.equal((await fetch(`${r.url}/api/v1/repositories`)).status, 200);
    } finally {
      await r.close();
    }
  });
});
