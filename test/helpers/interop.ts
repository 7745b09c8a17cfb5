// The images both registries must serve alike in the cross-checks against the reference registry
// (a data directory, an S3 bucket): pushed by skopeo to one, pulled and checked from the other.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { run, type TestImages } from './clients.js';

interface Pushed { repo: string; source: (i: TestImages) => string; digest: (i: TestImages) => string; all: boolean }

/** An image, a multi-arch index and a Docker manifest list, under `prefix/`. */
export function crossCheckImages(prefix: string): Pushed[] {
  return [
    { repo: `${prefix}/small:v1`, source: (i) => `oci:${i.dir}/oci/small:v1`, digest: (i) => i.digests['small:v1']!, all: false },
    { repo: `${prefix}/multi:latest`, source: (i) => `oci:${i.dir}/oci/multi:latest`, digest: (i) => i.digests['multi:latest']!, all: true },
    { repo: `${prefix}/dlist:v2`, source: (i) => `dir:${i.dir}/docker/list`, digest: (i) => i.digests['docker-list']!, all: true },
  ];
}

export async function pushAll(set: Pushed[], host: string, images: TestImages): Promise<void> {
  for (const image of set) {
    await run('skopeo', ['copy', '--quiet', '--preserve-digests', ...(image.all ? ['--all'] : []), '--dest-tls-verify=false',
      image.source(images), `docker://${host}/${image.repo}`]);
  }
}

/** Pulls every image from `host` and checks the manifest's digest (and, with `blobs`, every blob's bytes). */
export async function pullAndCheck(set: Pushed[], host: string, images: TestImages, work: string, blobs = false): Promise<void> {
  for (const image of set) {
    const out = join(work, `pull-${host.replace(/\W/g, '_')}-${image.repo.replace(/\W/g, '_')}-${randomBytes(3).toString('hex')}`);
    mkdirSync(out, { recursive: true });
    await run('skopeo', ['copy', '--quiet', '--preserve-digests', ...(image.all ? ['--all'] : []), '--src-tls-verify=false',
      `docker://${host}/${image.repo}`, `dir:${out}`]);
    const manifest = readFileSync(join(out, 'manifest.json'));
    assert.equal(`sha256:${createHash('sha256').update(manifest).digest('hex')}`, image.digest(images), image.repo);
    if (!blobs) continue;
    for (const file of readdirSync(out).filter((f) => /^[a-f0-9]{64}$/.test(f))) {
      assert.equal(createHash('sha256').update(readFileSync(join(out, file))).digest('hex'), file, `${image.repo}: blob ${file}`);
    }
  }
}
