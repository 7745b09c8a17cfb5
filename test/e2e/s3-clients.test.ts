// The real clients against Berth on S3 (a RADOS Gateway): docker (a private dockerd), podman
// and buildah push, and pull back through redirects to presigned S3 URLs (the default) and from
// a Berth that streams blobs itself (storage.redirect.disable) on the same bucket.
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/registry.js';
import { DOCKER_TOOLS, IMAGE_TOOLS, testImages, type TestImages } from '../helpers/clients.js';
import { buildahClient, clientEnvs, dockerClient, podmanClient, stopDocker, type ClientEnvs, type ImageClient } from '../helpers/image-clients.js';
import { needsS3, s3Bucket } from '../helpers/s3.js';
import { startBerthOnS3, type S3Berth } from '../helpers/s3-berth.js';

const skip = needsS3(...DOCKER_TOOLS, 'podman', 'buildah', 'busybox', ...IMAGE_TOOLS);

/** Blob GETs a Berth answered with `status`, from its access log. */
function blobGets(berth: S3Berth, repo: string, status: number): number {
  return berth.log().split('\n').filter((l) => l.includes('"method":"GET"') && l.includes('"route":"blob"') &&
    l.includes(`"repository":"${repo}"`) && l.includes(`"status":${status}`)).length;
}

describe('real clients against Berth on S3', () => {
  const work = tempDir('berth-s3-clients-');
  const clientsDir = tempDir('clients-');
  let redirecting: S3Berth;
  let streaming: S3Berth;
  let images: TestImages;
  let envs: ClientEnvs;
  let clients: ImageClient[];

  before(async () => {
    if (skip) return;
    images = await testImages(join(work, 'img'));
    envs = await clientEnvs(clientsDir);
    clients = [dockerClient(envs.docker), podmanClient(envs.containers), buildahClient(envs.containers)];
    const { server, bucket } = await s3Bucket('clients');
    redirecting = await startBerthOnS3(work, server, bucket);
    streaming = await startBerthOnS3(work, server, bucket, '  redirect:\n    disable: true\n');
  });
  after(async () => {
    await redirecting?.stop();
    await streaming?.stop();
    if (envs) await stopDocker(clientsDir);
  });

  for (const name of ['docker', 'podman', 'buildah']) {
    it(`${name}: push, rmi, pull through S3 redirects, rmi, pull from the streaming process`, { skip }, async () => {
      const client = clients.find((c) => c.name === name)!;
      const repo = `s3clients/${name}`;
      const loaded = await client.load(join(images.dir, 'archives/web.docker.tar'));
      const pushed = `${redirecting.host}/${repo}:v1`;
      await client.tag(loaded, pushed);
      await client.push(pushed);
      await client.rmi(pushed, loaded);
      await client.pull(pushed);
      assert.equal(await client.has(pushed), true);
      assert.ok(blobGets(redirecting, repo, 307) > 0, 'the layers came from S3 through redirects');
      assert.equal(blobGets(redirecting, repo, 200), 0);

      const other = `${streaming.host}/${repo}:v1`;
      await client.rmi(pushed);
      await client.pull(other);
      assert.equal(await client.has(other), true);
      assert.ok(blobGets(streaming, repo, 200) > 0, 'the layers came from Berth itself');
      assert.equal(blobGets(streaming, repo, 307), 0);
      await client.rmi(other);
    });
  }
});
