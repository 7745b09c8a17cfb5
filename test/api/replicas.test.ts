// Several Berth processes on one storage, restarts, and garbage collection.
import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { purgeUploads } from '../../src/app.js';
import { collectOffline as collectGarbage } from '../../src/registry/maintenance.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { afterTheWrites, errorCodes, pushImage, sha256, startRegistry, tempDir } from '../helpers/registry.js';

const OCTET = { 'Content-Type': 'application/octet-stream' };

describe('replicas and restarts', () => {
  it('continues an upload on another process sharing the storage and http.secret', async () => {
    const root = tempDir();
    const a = await startRegistry({ root });
    const b = await startRegistry({ root });
    try {
      const data = Buffer.alloc(300_000);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 251;
      const start = await fetch(`${a.url}/v2/rep/x/blobs/uploads/`, { method: 'POST' });
      // follow the Location path on alternating processes
      let location = new URL(start.headers.get('location')!);
      const chunks = [data.subarray(0, 100_000), data.subarray(100_000, 200_000), data.subarray(200_000)];
      let offset = 0;
      for (const [i, chunk] of chunks.entries()) {
        const target = new URL(location.pathname + location.search, i % 2 === 0 ? b.url : a.url);
        const res = await fetch(target, {
          method: 'PATCH', body: chunk, headers: { ...OCTET, 'Content-Range': `${offset}-${offset + chunk.length - 1}` },
        });
        assert.equal(res.status, 202);
        offset += chunk.length;
        location = new URL(res.headers.get('location')!);
      }
      const done = new URL(location.pathname + location.search, b.url);
      done.searchParams.set('digest', sha256(data));
      assert.equal((await fetch(done, { method: 'PUT' })).status, 201);
      const get = await fetch(`${a.url}/v2/rep/x/blobs/${sha256(data)}`);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), data);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('an upload survives a restart of the process', async () => {
    const root = tempDir();
    const first = await startRegistry({ root });
    const start = await fetch(`${first.url}/v2/restart/x/blobs/uploads/`, { method: 'POST' });
    const location = new URL(start.headers.get('location')!);
    const patch = await fetch(location, { method: 'PATCH', body: 'first half, ', headers: OCTET });
    const after = new URL(patch.headers.get('location')!);
    await first.close();
    const second = await startRegistry({ root });
    try {
      const target = new URL(after.pathname + after.search, second.url);
      const status = await fetch(target);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get('range'), '0-11');
      target.searchParams.set('digest', sha256('first half, second half'));
      const put = await fetch(target, { method: 'PUT', body: 'second half', headers: OCTET });
      assert.equal(put.status, 201);
    } finally {
      await second.close();
    }
  });

  it('a process with another http.secret refuses the upload token, naming the setting', async () => {
    const root = tempDir();
    const a = await startRegistry({ root });
    const b = await startRegistry({ root, overrides: { 'http.secret': 'different' } });
    try {
      const start = await fetch(`${a.url}/v2/secret/x/blobs/uploads/`, { method: 'POST' });
      const location = new URL(start.headers.get('location')!);
      const res = await fetch(new URL(location.pathname + location.search, b.url));
      assert.equal(res.status, 400);
      assert.deepEqual(await errorCodes(res), ['BLOB_UPLOAD_INVALID']);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('upload purging', () => {
  it('removes uploads older than the configured age and keeps newer ones', async () => {
    const r = await startRegistry();
    try {
      const old = await fetch(`${r.url}/v2/purge/x/blobs/uploads/`, { method: 'POST' });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const fresh = await fetch(`${r.url}/v2/purge/y/blobs/uploads/`, { method: 'POST' });
      const { pino } = await import('pino');
      const removed = await purgeUploads(r.app.services, 500, false, pino({ level: 'silent' }));
      assert.equal(removed, 1);
      assert.equal((await fetch(new URL(old.headers.get('location')!))).status, 404);
      assert.equal((await fetch(new URL(fresh.headers.get('location')!))).status, 204);
    } finally {
      await r.close();
    }
  });
});

describe('garbage collection', () => {
  it('deletes blobs no manifest references and keeps the rest', async () => {
    const root = tempDir();
    const r = await startRegistry({ root });
    try {
      const kept = await pushImage(r.url, 'gc/app', 'v1', 'kept');
      const gone = await pushImage(r.url, 'gc/app', 'v2', 'gone');
      const untagged = await pushImage(r.url, 'gc/app', 'v3', 'untagged');
      await fetch(`${r.url}/v2/gc/app/manifests/${gone.digest}`, { method: 'DELETE' });
      await fetch(`${r.url}/v2/gc/app/manifests/v3`, { method: 'DELETE' });
      const blobPath = (digest: string) => join(root, 'docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');
      await afterTheWrites();
      const dry = await collectGarbage(new FilesystemDriver(root), { dryRun: true, deleteUntagged: false });
      assert.equal(dry.blobsDeleted, 3);
      assert.ok(existsSync(blobPath(gone.layers[0]!)));
      const result = await collectGarbage(new FilesystemDriver(root), { dryRun: false, deleteUntagged: true });
      assert.equal(result.manifestsDeleted, 1);
      for (const d of [kept.digest, kept.config, ...kept.layers]) assert.ok(existsSync(blobPath(d)), d);
      for (const d of [gone.digest, gone.config, ...gone.layers, untagged.digest, ...untagged.layers]) assert.ok(!existsSync(blobPath(d)), d);
      const pull = await fetch(`${r.url}/v2/gc/app/manifests/v1`);
      assert.equal(pull.status, 200);
    } finally {
      await r.close();
    }
  });
});
