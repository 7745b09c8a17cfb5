// S3 storage on a real RADOS Gateway (test/support/s3.sh): skopeo pushes and pulls through Berth
// with and without redirects, the reference registry (registry:2's s3 driver, Debian's
// docker-registry) serves what Berth wrote on the same bucket and the reverse, chunked uploads
// carry their remainder in storage, continue on another process, and survive a cut-off request.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { S3Driver } from '../../src/storage/s3.js';
import { freePort, IMAGE_TOOLS, run, SUPPORT, testImages, type TestImages } from '../helpers/clients.js';
import { crossCheckImages, pullAndCheck, pushAll } from '../helpers/interop.js';
import { sha256, startRegistry, tempDir, type TestRegistry } from '../helpers/registry.js';
import { needsS3, s3Bucket, s3Driver, s3Overrides, type S3Server } from '../helpers/s3.js';
import { atExit } from '../helpers/scratch.js';
import { startBerthOnS3, streamPush } from '../helpers/s3-berth.js';
import { execFileSync } from 'node:child_process';

const REF = join(SUPPORT, 'ref-registry.sh');
const skip = needsS3('docker-registry', 'curl', ...IMAGE_TOOLS);

const IMAGES = crossCheckImages('s3');

/** The reference registry on a bucket of the test server. */
async function refOnBucket(dir: string, s: S3Server, bucket: string): Promise<string> {
  const port = await freePort();
  const env = { S3_ACCESS_KEY_ID: s.accessKey, S3_SECRET_ACCESS_KEY: s.secretKey };
  atExit(() => { execFileSync('bash', [REF, 'stop', dir], { stdio: 'ignore' }); });
  await run('bash', [REF, 'start', dir, String(port), '--s3', s.endpoint, bucket], env);
  return `127.0.0.1:${port}`;
}

/** A blob GET without following redirects. */
function getRaw(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject).end();
  });
}

async function keys(driver: S3Driver, prefix = ''): Promise<string[]> {
  const found: string[] = [];
  let token: string | undefined;
  do {
    const page = await driver.client.send(new ListObjectsV2Command({ Bucket: driver.options.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) found.push(o.Key!);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return found;
}

describe('S3 storage on a real RADOS Gateway', () => {
  let images: TestImages;
  let server: S3Server;
  const work = tempDir('berth-s3-');
  const registries: TestRegistry[] = [];
  const refs: string[] = [];

  const berthOn = async (bucket: string, more: Record<string, unknown> = {}) => {
    const r = await startRegistry({ overrides: s3Overrides(server, bucket, more) });
    registries.push(r);
    return r;
  };

  before(async () => {
    if (skip) return;
    images = await testImages(join(work, 'img'));
    ({ server } = await s3Bucket('warmup'));
  });
  after(async () => {
    for (const r of registries) await r.close();
    for (const dir of refs) await run('bash', [REF, 'stop', dir]).catch(() => undefined);
  });

  it('skopeo pushes to Berth on S3; registry:2 on the same bucket serves every image', { skip }, async () => {
    const { bucket } = await s3Bucket('berth-wrote');
    const berth = await berthOn(bucket);
    const host = berth.url.replace('http://', '');
    await pushAll(IMAGES, host, images);
    await pullAndCheck(IMAGES, host, images, work, true); // through Berth's redirects to presigned URLs
    const dir = join(work, 'ref-reader');
    refs.push(dir);
    const ref = await refOnBucket(dir, server, bucket);
    await pullAndCheck(IMAGES, ref, images, work, true);
    const tags = await (await fetch(`http://${ref}/v2/s3/small/tags/list`)).json() as { tags: string[] };
    assert.deepEqual(tags.tags, ['v1']);

    // the bucket holds registry:2's layout and nothing half-done: no upload folders, no open multipart uploads
    const driver = s3Driver(server, bucket);
    const all = await keys(driver);
    assert.ok(all.includes('docker/registry/v2/repositories/s3/small/_manifests/tags/v1/current/link'));
    assert.ok(all.some((k) => /^docker\/registry\/v2\/blobs\/sha256\/[a-f0-9]{2}\/[a-f0-9]{64}\/data$/.test(k)));
    assert.deepEqual(all.filter((k) => k.includes('/_uploads/')), []);
    const open = await driver.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    assert.deepEqual(open.Uploads ?? [], []);
  });

  it('Berth serves what registry:2 wrote on a bucket, redirecting to S3 or streaming itself', { skip }, async () => {
    const { bucket } = await s3Bucket('ref-wrote');
    const dir = join(work, 'ref-writer');
    refs.push(dir);
    const ref = await refOnBucket(dir, server, bucket);
    await pushAll(IMAGES, ref, images);
    const redirecting = await berthOn(bucket);
    const streaming = await berthOn(bucket, { 'storage.redirect.disable': true });
    for (const berth of [redirecting, streaming]) await pullAndCheck(IMAGES, berth.url.replace('http://', ''), images, work, true);

    const manifest = await (await fetch(`${redirecting.url}/v2/s3/small/manifests/v1`, {
      headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
    })).json() as { layers: { digest: string; size: number }[] };
    const layer = manifest.layers[0]!;
    const redirected = await getRaw(`${redirecting.url}/v2/s3/small/blobs/${layer.digest}`);
    assert.equal(redirected.status, 307);
    const location = String(redirected.headers.location);
    assert.ok(location.startsWith(`${server.endpoint}/${bucket}/docker/registry/v2/blobs/sha256/`), location);
    assert.match(location, /X-Amz-Signature=/);
    const fromS3 = await getRaw(location, { Range: 'bytes=1-4' }); // the client's range goes to S3 along with it
    assert.equal(fromS3.status, 206);

    const whole = await getRaw(`${streaming.url}/v2/s3/small/blobs/${layer.digest}`);
    assert.equal(whole.status, 200);
    assert.equal(sha256(whole.body), layer.digest);
    const ranged = await getRaw(`${streaming.url}/v2/s3/small/blobs/${layer.digest}`, { Range: 'bytes=1-4' });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers['content-range'], `bytes 1-4/${layer.size}`);
    assert.deepEqual(ranged.body, whole.body.subarray(1, 5));
    assert.deepEqual(fromS3.body, whole.body.subarray(1, 5));
    const head = await fetch(`${redirecting.url}/v2/s3/small/blobs/${layer.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200); // HEAD is answered by Berth itself
    assert.equal(head.headers.get('content-length'), String(layer.size));
  });

  it('a Berth process killed (-9) in the middle of a push leaves no blob; after a restart the push succeeds', { skip }, async () => {
    const { bucket } = await s3Bucket('killed');
    const dir = tempDir('berth-s3-kill-');
    const victim = await startBerthOnS3(dir, server, bucket, '', { quiet: true });
    const pushing = streamPush(victim.url, 'killed/app', 256 << 20).then(() => 'finished', () => 'cut off');
    const driver = s3Driver(server, bucket);
    // wait until parts are on their way to S3, then kill
    for (let i = 0; i < 100 && !(await driver.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads?.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    victim.child.kill('SIGKILL');
    assert.equal(await pushing, 'cut off');
    const blobs = (await keys(driver, 'docker/registry/v2/blobs/'));
    assert.deepEqual(blobs, [], 'no blob was written');
    // the upload is still there (its start mark), holding none of the cut-off request: no data, or none of it
    const kept = (await keys(driver)).filter((k) => k.includes('/_uploads/'));
    assert.equal(kept.filter((k) => k.endsWith('/startedat')).length, 1, JSON.stringify(kept));
    for (const data of kept.filter((k) => k.endsWith('/data'))) {
      assert.equal((await driver.stat(`/${data}`)).size, 0, 'the upload holds none of the cut-off request');
    }
    const again = await startBerthOnS3(dir, server, bucket, '', { quiet: true });
    try {
      const digest = await streamPush(again.url, 'killed/app', 12 << 20);
      const head = await fetch(`${again.url}/v2/killed/app/blobs/${digest}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(12 << 20));
    } finally {
      await again.stop();
      driver.client.destroy();
    }
  });

  it('chunked uploads keep their remainder in storage, continue on another process and survive a cut-off PATCH', { skip }, async () => {
    const { bucket } = await s3Bucket('chunks');
    const first = await berthOn(bucket);
    const second = await berthOn(bucket); // same bucket, same http.secret
    const pieces = [randomBytes(1000), randomBytes(3 << 20), randomBytes(7 << 20), randomBytes(10)];
    const blob = Buffer.concat(pieces);
    const start = await fetch(`${first.url}/v2/chunked/blobs/uploads/`, { method: 'POST' });
    assert.equal(start.status, 202);
    assert.equal(start.headers.get('oci-chunk-min-length'), null, 'any chunk size works: no minimum is announced');
    let location = new URL(start.headers.get('location')!, first.url).toString();
    let offset = 0;
    for (const [i, piece] of pieces.entries()) {
      const target = new URL(location);
      const on = i % 2 === 0 ? first : second; // alternate processes
      const url = `${on.url}${target.pathname}${target.search}`;
      const res = await fetch(url, {
        method: 'PATCH', body: new Uint8Array(piece),
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + piece.length - 1}` },
      });
      assert.equal(res.status, 202, await res.text());
      offset += piece.length;
      assert.equal(res.headers.get('range'), `0-${offset - 1}`);
      location = new URL(res.headers.get('location')!, on.url).toString();
    }

    // a PATCH cut off midway leaves the upload as it was
    const target = new URL(location);
    await new Promise<void>((resolve) => {
      const req = request(`${first.url}${target.pathname}${target.search}`, {
        method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(8 << 20) },
      });
      req.on('error', () => resolve());
      req.write(randomBytes(6 << 20), () => setTimeout(() => { req.destroy(); resolve(); }, 300));
    });
    await new Promise((r) => setTimeout(r, 500));
    const status = await fetch(`${second.url}${target.pathname}${target.search}`);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), `0-${blob.length - 1}`);
    const digest = sha256(blob);
    assert.equal((await fetch(`${first.url}/v2/chunked/blobs/${digest}`, { method: 'HEAD' })).status, 404, 'nothing is served before the commit');

    const put = new URL(`${second.url}${target.pathname}${target.search}`);
    put.searchParams.set('digest', digest);
    const done = await fetch(put, { method: 'PUT' });
    assert.equal(done.status, 201, await done.text());
    // pulled from a third process
    const third = await berthOn(bucket, { 'storage.redirect.disable': true });
    const got = Buffer.from(await (await fetch(`${third.url}/v2/chunked/blobs/${digest}`)).arrayBuffer());
    assert.equal(sha256(got), digest);
    const driver = s3Driver(server, bucket);
    assert.deepEqual((await keys(driver)).filter((k) => k.includes('/_uploads/')), []);
    const open = await driver.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    assert.deepEqual(open.Uploads ?? [], [], 'the cut-off PATCH left no multipart upload behind');
  });
});
