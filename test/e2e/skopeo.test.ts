// skopeo, a real client, pushes every kind of image to a berth process and pulls it back.
// One scenario body runs for each image: OCI image, OCI index, Docker schema2, Docker list.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/registry.js';
import { IMAGE_TOOLS, needs, run, startBerth, testImages, type BerthProcess, type TestImages } from '../helpers/clients.js';

interface Case {
  title: string;
  source: (images: TestImages) => string;
  repo: string;
  expected: (images: TestImages) => string;
  all: boolean;
}

const CASES: Case[] = [
  { title: 'OCI image', source: (i) => `oci:${i.dir}/oci/small:v1`, repo: 'web:v1', expected: (i) => i.digests['small:v1']!, all: false },
  { title: 'OCI multi-platform index', source: (i) => `oci:${i.dir}/oci/multi:latest`, repo: 'multi/oci:latest', expected: (i) => i.digests['multi:latest']!, all: true },
  { title: 'Docker schema2 image', source: (i) => `dir:${i.dir}/docker/small`, repo: 'docker/small:v1', expected: (i) => i.digests['docker-small']!, all: false },
  { title: 'Docker manifest list', source: (i) => `dir:${i.dir}/docker/list`, repo: 'docker/list:v1', expected: (i) => i.digests['docker-list']!, all: true },
];

function sha256File(path: string): string {
  return `sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
}

describe('skopeo against berth', () => {
  let berth: BerthProcess;
  let images: TestImages;
  const work = tempDir('berth-e2e-');

  const skip = needs(...IMAGE_TOOLS);

  before(async () => {
    if (skip) return;
    images = await testImages(join(work, 'img'));
    berth = await startBerth(join(work, 'data'));
  });
  after(async () => { await berth?.stop(); });

  for (const c of CASES) {
    it(`${c.title}: push, then pull back byte-identical`, { skip }, async () => {
      const dest = `docker://${berth.host}/${c.repo}`;
      const allFlag = c.all ? ['--all'] : [];
      await run('skopeo', ['copy', '--quiet', '--preserve-digests', ...allFlag, '--dest-tls-verify=false', c.source(images), dest]);
      const raw = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', dest]);
      assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, c.expected(images));
      const out = join(work, 'pulled', c.repo.replace(/[/:]/g, '_'));
      await run('mkdir', ['-p', out]);
      await run('skopeo', ['copy', '--quiet', '--preserve-digests', ...allFlag, '--src-tls-verify=false', dest, `dir:${out}`]);
      assert.equal(sha256File(join(out, 'manifest.json')), c.expected(images));
      // every blob pulled is byte-identical: its name is the hex of its digest
      for (const file of readdirSync(out).filter((f) => /^[a-f0-9]{64}$/.test(f))) {
        assert.equal(sha256File(join(out, file)), `sha256:${file}`);
      }
      const [name, tag] = c.repo.split(':');
      const tags = await (await fetch(`${berth.url}/v2/${name}/tags/list`)).json() as { tags: string[] };
      assert.deepEqual(tags.tags, [tag]);
    });
  }

  it('lists every pushed repository in the catalog and in the data directory', { skip }, async () => {
    const catalog = await (await fetch(`${berth.url}/v2/_catalog`)).json() as { repositories: string[] };
    assert.deepEqual(catalog.repositories, ['docker/list', 'docker/small', 'multi/oci', 'web']);
    const repos = readdirSync(join(work, 'data/docker/registry/v2/repositories')).sort();
    assert.deepEqual(repos, ['docker', 'multi', 'web']);
  });

  it('re-pushing an existing image uploads no blob again', { skip }, async () => {
    const before = berth.log().split('\n').filter((l) => l.includes('"method":"PATCH"') || l.includes('"method":"POST"')).length;
    await run('skopeo', ['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `oci:${images.dir}/oci/small:v1`, `docker://${berth.host}/web:v1`]);
    const after = berth.log().split('\n').filter((l) => l.includes('"method":"PATCH"') || l.includes('"method":"POST"')).length;
    assert.equal(after, before);
  });

  it('deletes a manifest with skopeo delete', { skip }, async () => {
    await run('skopeo', ['delete', '--tls-verify=false', `docker://${berth.host}/docker/small:v1`]);
    const res = await fetch(`${berth.url}/v2/docker/small/manifests/v1`);
    assert.equal(res.status, 404);
  });
});
