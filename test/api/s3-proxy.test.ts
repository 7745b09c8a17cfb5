// The pull-through cache with its storage on S3 (a real RADOS Gateway): a cold pull streams the
// upstream's bytes to the clients while they are written into multipart parts, and commits them
// only once verified; concurrent cold pulls make one upstream fetch; corrupted bytes leave
// nothing in the bucket; a new process on the bucket serves the cache with the upstream gone.
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { S3Driver } from '../../src/storage/s3.js';
import { sha256, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { needsS3, s3Bucket, s3Driver, s3Overrides, type S3Server } from '../helpers/s3.js';
import { pushImageTo, tinyUpstream, type Image, type TinyUpstream } from '../helpers/upstreams.js';

const skip = needsS3();
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const open = async () => ({});

describe('pull-through cache on S3', { skip }, () => {
  let server: S3Server;
  let bucket: string;
  let driver: S3Driver;
  let upstream: TestRegistry;
  let tiny: TinyUpstream;
  let cache: TestRegistry;
  let image: Image;
  const tinyLayer = Buffer.from('a layer the upstream will corrupt '.repeat(200));
  const blobRequests: string[] = [];

  const start = (upstreamUrl: string) => startRegistry({
    overrides: {
      ...s3Overrides(server, bucket),
      proxy: { upstreams: [{ prefix: 'up', remoteurl: upstreamUrl }, { prefix: 'tiny', remoteurl: tiny.url }] },
    },
  });

  /** The keys under a prefix of the bucket. */
  async function keys(prefix: string): Promise<string[]> {
    const res = await driver.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    return (res.Contents ?? []).map((o) => o.Key!);
  }

  /** Waits (up to 10 s) until `list` answers nothing. */
  async function settled(list: () => Promise<string[]>): Promise<void> {
    const until = Date.now() + 10_000;
    let left = await list();
    while (left.length > 0 && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      left = await list();
    }
    assert.deepEqual(left, []);
  }

  before(async () => {
    ({ server, bucket } = await s3Bucket('proxy'));
    driver = s3Driver(server, bucket);
    upstream = await startRegistry();
    // one layer above the 10 MiB part size, so that the cache's copy is a multipart upload
    image = await pushImageTo(upstream.url, 'team/app', 'v1', open, [24 << 20, 4096]);
    // count the upstream's blob requests
    upstream.app.server.prependListener('request', (req) => {
      if (req.url?.includes('/blobs/')) blobRequests.push(`${req.method} ${req.url}`);
    });
    tiny = await tinyUpstream(new Map([[`blobs/${sha256(tinyLayer)}`, ['application/octet-stream', tinyLayer]]]));
    cache = await start(upstream.url);
  });

  after(async () => {
    await cache?.close();
    await upstream?.close();
    await tiny?.close();
    driver?.client.destroy();
  });

  it('streams a cold pull to eight clients at once with one upstream fetch, and commits it to the bucket', async () => {
    const manifest = await fetch(`${cache.url}/v2/up/team/app/manifests/v1`, { headers: { Accept: MANIFEST } });
    assert.equal(manifest.status, 200);
    assert.equal(sha256(Buffer.from(await manifest.arrayBuffer())), image.digest);
    const big = image.layers[0]!;
    const bodies = await Promise.all(Array.from({ length: 8 }, async () => {
      const res = await fetch(`${cache.url}/v2/up/team/app/blobs/${big}`);
      assert.equal(res.status, 200);
      return sha256(Buffer.from(await res.arrayBuffer()));
    }));
    assert.deepEqual(bodies, Array(8).fill(big));
    assert.equal(blobRequests.filter((r) => r.startsWith('GET') && r.includes(big)).length, 1, blobRequests.join('\n'));
    for (const digest of [image.config, image.layers[1]!]) {
      const res = await fetch(`${cache.url}/v2/up/team/app/blobs/${digest}`);
      assert.equal(sha256(Buffer.from(await res.arrayBuffer())), digest);
    }
    // the clients had their last bytes once the digest matched; the commit (a copy on S3) follows
    await settled(() => keys('docker/registry/v2/repositories/up/team/app/_uploads/'));
    // in the bucket: the content at its registry:2 key with its size, nothing half-done left
    const hex = big.slice('sha256:'.length);
    const stat = await driver.stat(`/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`);
    assert.equal(stat.size, 24 << 20);
    const uploads = await driver.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    assert.deepEqual(uploads.Uploads ?? [], []);
    assert.deepEqual(await keys('docker/registry/v2/repositories/up/team/app/_uploads/'), []);
  });

  it('keeps nothing in the bucket when the upstream corrupts the bytes', async () => {
    const layer = sha256(tinyLayer);
    const hex = layer.slice('sha256:'.length);
    tiny.mode = 'corrupt';
    try {
      const res = await fetch(`${cache.url}/v2/tiny/x/blobs/${layer}`);
      await assert.rejects(res.arrayBuffer()); // the answer is cut short: the client's copy fails
    } finally {
      tiny.mode = 'ok';
    }
    await settled(() => keys('docker/registry/v2/repositories/tiny/x/_uploads/'));
    assert.deepEqual(await keys(`docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/`), []);
    const uploads = await driver.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    assert.deepEqual(uploads.Uploads ?? [], []);
    const again = await fetch(`${cache.url}/v2/tiny/x/blobs/${layer}`);
    assert.equal(sha256(Buffer.from(await again.arrayBuffer())), layer);
  });

  it('a new process on the bucket serves the cached image with the upstream gone, and says it is stale', async () => {
    await cache.close();
    const gone = upstream.url;
    await upstream.close();
    upstream = undefined as unknown as TestRegistry;
    cache = await start(gone);
    const res = await fetch(`${cache.url}/v2/up/team/app/manifests/v1`, { headers: { Accept: MANIFEST } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('berth-cache'), 'stale');
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), image.digest);
    for (const digest of [image.config, ...image.layers]) {
      const blob = await fetch(`${cache.url}/v2/up/team/app/blobs/${digest}`);
      assert.equal(blob.status, 200);
      assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), digest);
    }
  });
});
