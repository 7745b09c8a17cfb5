// The data directory is distribution's, byte for byte: the reference registry (registry:2's
// distribution 2.8) serves what berth wrote, and berth serves what the reference wrote.
import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/registry.js';
import { crossCheckImages, pullAndCheck, pushAll } from '../helpers/interop.js';
import { freePort, IMAGE_TOOLS, needs, run, startBerth, SUPPORT, testImages, waitForRegistry, type TestImages } from '../helpers/clients.js';

const REF = join(SUPPORT, 'ref-registry.sh');
const skip = needs('docker-registry', 'curl', ...IMAGE_TOOLS);

const IMAGES = crossCheckImages('layout');

describe('data directory compatibility with the reference registry', () => {
  let images: TestImages;
  const work = tempDir('berth-layout-');
  const writer = join(work, 'writer');
  const reader = join(work, 'reader');

  before(async () => {
    if (skip) return;
    images = await testImages(join(work, 'img'));
  });
  after(async () => {
    if (skip) return;
    await run('bash', [REF, 'stop', writer]);
    await run('bash', [REF, 'stop', reader]);
  });

  it('berth serves a data directory the reference registry wrote', { skip }, async () => {
    const port = await freePort();
    await run('bash', [REF, 'start', writer, String(port)]);
    await pushAll(IMAGES, `127.0.0.1:${port}`, images);
    await run('bash', [REF, 'stop', writer]);
    const berth = await startBerth(join(writer, 'data'));
    try {
      await pullAndCheck(IMAGES, berth.host, images, work);
      const catalog = await (await fetch(`${berth.url}/v2/_catalog`)).json() as { repositories: string[] };
      assert.deepEqual(catalog.repositories, ['layout/dlist', 'layout/multi', 'layout/small']);
      const tags = await (await fetch(`${berth.url}/v2/layout/small/tags/list`)).json() as { tags: string[] };
      assert.deepEqual(tags.tags, ['v1']);
    } finally {
      await berth.stop();
    }
  });

  it('the reference registry serves a data directory berth wrote', { skip }, async () => {
    const root = join(reader, 'data');
    mkdirSync(root, { recursive: true });
    const berth = await startBerth(root);
    try {
      await pushAll(IMAGES, berth.host, images);
    } finally {
      await berth.stop();
    }
    assert.ok(existsSync(join(root, 'docker/registry/v2/repositories/layout/small/_manifests/tags/v1/current/link')));
    const port = await freePort();
    await run('bash', [REF, 'start', reader, String(port)]);
    await waitForRegistry(`http://127.0.0.1:${port}`);
    await pullAndCheck(IMAGES, `127.0.0.1:${port}`, images, work);
    const catalog = await (await fetch(`http://127.0.0.1:${port}/v2/_catalog`)).json() as { repositories: string[] };
    assert.deepEqual(catalog.repositories, ['layout/dlist', 'layout/multi', 'layout/small']);
  });
});
