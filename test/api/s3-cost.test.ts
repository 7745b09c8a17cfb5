// What registry requests cost in S3 requests, counted by the driver (an SDK middleware) on a
// real RADOS Gateway: served from cache, a manifest GET by digest and a blob HEAD cost none, a
// GET by tag one (the tag's link: tags move); a cold read costs one round of parallel reads.
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import type { S3Driver } from '../../src/storage/s3.js';
import { pushImage, startRegistry, type PushedImage, type TestRegistry } from '../helpers/registry.js';
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

  /** S3 requests that `work` caused, by operation. */
  async function cost(driver: S3Driver, work: () => Promise<void>): Promise<{ total: number; ops: Record<string, number> }> {
    const before = new Map(driver.requests);
    await work();
    const ops: Record<string, number> = {};
    let total = 0;
    for (const [op, n] of driver.requests) {
      const d = n - (before.get(op) ?? 0);
      if (d > 0) { ops[op] = d; total += d; }
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

  it('a manifest GET by digest costs one round of reads cold and none from cache; by tag, one', async () => {
    const { registry, driver } = await fresh();
    const byDigest = `${registry.url}/v2/cost/app/manifests/${image.digest}`;
    const cold = await cost(driver, () => expectStatus(byDigest, 200, { headers: ACCEPT }));
    assert.ok(cold.total <= 3, JSON.stringify(cold)); // revision link, media type and content, read in parallel
    for (let i = 0; i < 5; i++) {
      const warm = await cost(driver, () => expectStatus(byDigest, 200, { headers: ACCEPT }));
      assert.equal(warm.total, 0, JSON.stringify(warm));
    }
    const byTag = `${registry.url}/v2/cost/app/manifests/v1`;
    const tagged = await cost(driver, () => expectStatus(byTag, 200, { headers: ACCEPT }));
    assert.equal(tagged.total, 1, JSON.stringify(tagged)); // the tag's link; the manifest is cached
    assert.deepEqual(tagged.ops, { GetObjectCommand: 1 });
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
