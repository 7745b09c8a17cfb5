// What registry requests cost in S3 requests, counted by the driver (an SDK middleware) on a
// real RADOS Gateway: served from cache, a manifest GET by digest and a blob HEAD cost none, a
// GET by tag one (the tag's link: tags move); a cold read costs one round of two parallel reads
// (a link and a document, or a link and a size), a cold GET by tag the link and then the document.
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import type { S3Driver } from '../../src/storage/s3.js';
import { pushImage, startRegistry, type PushedImage, type TestRegistry } from '../helpers/registry.js';
import { freshDatabase, needsPostgres } from '../helpers/postgres.js';
import { needsS3, s3Bucket, s3Driver, s3Overrides, type S3Server } from '../helpers/s3.js';

const skip = needsS3();
const ACCEPT = { Accept: 'application/vnd.oci.image.manifest.v1+json' };

describe('S3 requests per registry request', { skip }, () => {
  let server: S3Server;
  let bucket: string;
  let image: PushedImage;
  const opened: { registry: TestRegistry; driver: S3Driver }[] = [];

  /** A registry process on the bucket with its own driver, so that only its requests are counted. */
  async function fresh(): Promise<{ registry: TestRegistry; driver: S3Driver }> {
    const driver = s3Driver(server, bucket);
    const registry = await startRegistry({ driver, overrides: s3Overrides(server, bucket) });
    await registry.app.services.usage.ready(); // startup's own reads are done
    opened.push({ registry, driver });
    return { registry, driver };
  }

  /**
   * S3 requests that `work` caused, by operation. The process's own housekeeping meanwhile (its
   * lease and collection report under berth/, the storage health check) is not counted.
   */
  async function cost(driver: S3Driver, work: () => Promise<void>): Promise<{ total: number; ops: Record<string, number> }> {
    const ops: Record<string, number> = {};
    let total = 0;
    driver.onRequest = (op, key) => {
      if (op === 'HeadBucketCommand' || key.startsWith('berth/')) return;
      ops[op] = (ops[op] ?? 0) + 1;
      total++;
    };
    try {
      await work();
    } finally {
      driver.onRequest = undefined;
    }
    return { total, ops };
  }

  const expectStatus = async (url: string, status: number, init: RequestInit = {}) => {
    const res = await fetch(url, init);
    await res.arrayBuffer();
    assert.equal(res.status, status, url);
  };

  before(async () => {
    ({ server, bucket } = await s3Bucket('cost'));
    const { registry } = await fresh();
    image = await pushImage(registry.url, 'cost/app', 'v1', 'cost');
  });
  after(async () => {
    for (const { registry, driver } of opened) {
      await registry.close();
      driver.client.destroy();
    }
  });

  it('a blob HEAD costs at most two parallel reads cold and none from cache', async () => {
    const { registry, driver } = await fresh();
    const url = `${registry.url}/v2/cost/app/blobs/${image.layers[0]}`;
    const cold = await cost(driver, () => expectStatus(url, 200, { method: 'HEAD' }));
    assert.ok(cold.total <= 2, JSON.stringify(cold)); // the repository's link and the blob's size
    for (let i = 0; i < 5; i++) {
      const warm = await cost(driver, () => expectStatus(url, 200, { method: 'HEAD' }));
      assert.equal(warm.total, 0, JSON.stringify(warm));
    }
    const missing = `${registry.url}/v2/cost/app/blobs/sha256:${'0'.repeat(64)}`;
    const unknown = await cost(driver, () => expectStatus(missing, 404, { method: 'HEAD' }));
    assert.ok(unknown.total <= 3, JSON.stringify(unknown)); // and, for a missing object, whether it is a folder
  });

  it('a manifest GET by digest costs two parallel reads cold and none from cache; by tag, the tag\'s link', async () => {
    const { registry, driver } = await fresh();
    const byDigest = `${registry.url}/v2/cost/app/manifests/${image.digest}`;
    const cold = await cost(driver, () => expectStatus(byDigest, 200, { headers: ACCEPT }));
    // the revision link and the document, read at once; the document declares its media type
    assert.deepEqual(cold.ops, { GetObjectCommand: 2 });
    for (let i = 0; i < 5; i++) {
      const warm = await cost(driver, () => expectStatus(byDigest, 200, { headers: ACCEPT }));
      assert.equal(warm.total, 0, JSON.stringify(warm));
    }
    const byTag = `${registry.url}/v2/cost/app/manifests/v1`;
    const tagged = await cost(driver, () => expectStatus(byTag, 200, { headers: ACCEPT }));
    assert.equal(tagged.total, 1, JSON.stringify(tagged)); // the tag's link; the manifest is cached
    assert.deepEqual(tagged.ops, { GetObjectCommand: 1 });
    const head = await cost(driver, () => expectStatus(byTag, 200, { method: 'HEAD', headers: ACCEPT }));
    assert.deepEqual(head.ops, { GetObjectCommand: 1 });
  });

  it('a cold manifest GET by tag costs the tag\'s link and the document, and then only the link', async () => {
    const { registry, driver } = await fresh();
    const byTag = `${registry.url}/v2/cost/app/manifests/v1`;
    const cold = await cost(driver, () => expectStatus(byTag, 200, { headers: ACCEPT }));
    assert.deepEqual(cold.ops, { GetObjectCommand: 2 });
    const warm = await cost(driver, () => expectStatus(byTag, 200, { headers: ACCEPT }));
    assert.deepEqual(warm.ops, { GetObjectCommand: 1 });
    const missing = await cost(driver, () => expectStatus(`${registry.url}/v2/cost/app/manifests/nope`, 404, { headers: ACCEPT }));
    assert.deepEqual(missing.ops, { GetObjectCommand: 1 });
  });

  it('with the database, a cold manifest GET, by tag or digest, and a blob HEAD cost no S3 request', { skip: needsPostgres() }, async () => {
    const db = await freshDatabase();
    const { server: s, bucket: dbBucket } = await s3Bucket('costdb');
    const overrides = s3Overrides(s, dbBucket);
    const writer = await startRegistry({ overrides, database: db.overrides });
    const readerDriver = s3Driver(s, dbBucket);
    let reader: TestRegistry | undefined;
    try {
      const pushed = await pushImage(writer.url, 'cost/db', 'v1', 'cost-db');
      reader = await startRegistry({ driver: readerDriver, overrides, database: db.overrides }); // a fresh process: nothing cached
      const base = `${reader.url}/v2/cost/db`;
      const byTag = await cost(readerDriver, () => expectStatus(`${base}/manifests/v1`, 200, { headers: ACCEPT }));
      assert.equal(byTag.total, 0, JSON.stringify(byTag));
      const byDigest = await cost(readerDriver, () => expectStatus(`${base}/manifests/${pushed.digest}`, 200, { headers: ACCEPT }));
      assert.equal(byDigest.total, 0, JSON.stringify(byDigest));
      for (const blob of [pushed.config, ...pushed.layers]) {
        const head = await cost(readerDriver, () => expectStatus(`${base}/blobs/${blob}`, 200, { method: 'HEAD' }));
        assert.equal(head.total, 0, JSON.stringify(head));
      }
      const tags = await cost(readerDriver, () => expectStatus(`${base}/tags/list`, 200));
      assert.equal(tags.total, 0, JSON.stringify(tags));
      const catalog = await cost(readerDriver, () => expectStatus(`${reader!.url}/v2/_catalog`, 200));
      assert.equal(catalog.total, 0, JSON.stringify(catalog));
    } finally {
      await reader?.close();
      await writer.close();
      readerDriver.client.destroy();
      await db.drop();
    }
  });

  it('the catalog of 1,500 repositories costs one listing per repository cold and none while cached', async () => {
    const { registry, driver } = await fresh();
    const names = Array.from({ length: 1500 }, (_, i) => `many/r${String(i).padStart(4, '0')}`);
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => { // as registry:2 lays out a repository with one manifest
      while (next < names.length) {
        const name = names[next++]!;
        await driver.putContent(`/docker/registry/v2/repositories/${name}/_manifests/revisions/sha256/${'a'.repeat(64)}/link`,
          `sha256:${'a'.repeat(64)}`);
      }
    }));
    const listAll = async () => {
      const seen: string[] = [];
      let url: string | undefined = `${registry.url}/v2/_catalog?n=1000`;
      while (url) {
        const res: Response = await fetch(url);
        assert.equal(res.status, 200);
        seen.push(...((await res.json()) as { repositories: string[] }).repositories);
        const link = res.headers.get('link');
        url = link ? new URL(/<([^>]+)>/.exec(link)![1]!, registry.url).toString() : undefined;
      }
      return seen;
    };
    const started = Date.now();
    let seen: string[] = [];
    const cold = await cost(driver, async () => { seen = await listAll(); });
    const coldMs = Date.now() - started;
    assert.deepEqual(seen.filter((n) => n.startsWith('many/')), names);
    // the root, each level of names, and one listing per repository; every page after the first from the same walk
    assert.ok(cold.total <= names.length + 10, JSON.stringify(cold));
    assert.deepEqual(Object.keys(cold.ops), ['ListObjectsV2Command']);
    const warm = await cost(driver, async () => { seen = await listAll(); });
    assert.equal(warm.total, 0, JSON.stringify(warm));
    console.log(`catalog of ${seen.length} repositories on S3: ${coldMs} ms and ${cold.total} listings cold, none warm`);
  });

  it('collection on S3 removes what nothing references, and HEAD answers 404 at once despite the cache', async () => {
    const { server: s, bucket: gcBucket } = await s3Bucket('gc');
    const driver = s3Driver(s, gcBucket);
    const registry = await startRegistry({ driver, overrides: s3Overrides(s, gcBucket, { 'storage.maintenance.gc.grace': '0s' }) });
    opened.push({ registry, driver });
    const kept = await pushImage(registry.url, 'gc/kept', 'v1', 'kept');
    const gone = await pushImage(registry.url, 'gc/gone', 'v1', 'gone');
    for (const layer of [...kept.layers, ...gone.layers]) {
      await expectStatus(`${registry.url}/v2/${layer === kept.layers[0] ? 'gc/kept' : 'gc/gone'}/blobs/${layer}`, 200, { method: 'HEAD' });
    }
    await expectStatus(`${registry.url}/v2/gc/gone/manifests/${gone.digest}`, 202, { method: 'DELETE' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const report = await (await fetch(`${registry.url}/api/v1/gc?wait=true`, { method: 'POST' })).json() as { blobsDeleted: number };
    assert.equal(report.blobsDeleted, 3); // the deleted image's config, layer and manifest
    await expectStatus(`${registry.url}/v2/gc/gone/blobs/${gone.layers[0]}`, 404, { method: 'HEAD' });
    await expectStatus(`${registry.url}/v2/gc/kept/blobs/${kept.layers[0]}`, 200, { method: 'HEAD' });
    await expectStatus(`${registry.url}/v2/gc/kept/manifests/v1`, 200, { headers: ACCEPT });
    const hex = gone.layers[0]!.slice('sha256:'.length);
    await assert.rejects(driver.stat(`/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`), /path not found/);
  });

  it('a deletion through the process is seen at once, despite the cache', async () => {
    const { registry } = await fresh();
    const other = await pushImage(registry.url, 'cost/gone', 'v1', 'gone');
    const url = `${registry.url}/v2/cost/gone/manifests/${other.digest}`;
    await expectStatus(url, 200, { headers: ACCEPT });
    await expectStatus(`${registry.url}/v2/cost/gone/blobs/${other.layers[0]}`, 200, { method: 'HEAD' });
    await expectStatus(url, 202, { method: 'DELETE' });
    await expectStatus(url, 404, { headers: ACCEPT });
    await expectStatus(`${registry.url}/v2/cost/gone/blobs/${other.layers[0]}`, 202, { method: 'DELETE' });
    await expectStatus(`${registry.url}/v2/cost/gone/blobs/${other.layers[0]}`, 404, { method: 'HEAD' });
  });
});
