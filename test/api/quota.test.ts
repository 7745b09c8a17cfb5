// Tag immutability and quotas against a real Berth: skopeo pushes that reach each limit (the
// refusal names the quota, the limit and the usage, at blob commit for bytes and new repositories,
// at manifest PUT for tags), racing pushes that never take a repository past its limit, and the
// figures in /api/v1/ and /metrics.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IMAGE_TOOLS, needs, run, testImages, type TestImages } from '../helpers/clients.js';
import { pushImage, startRegistry, tempDir, type TestRegistry } from '../helpers/registry.js';

const OCI = 'application/vnd.oci.image.manifest.v1+json';

interface Problem { code: string; message: string; detail: Record<string, unknown> }

async function problem(res: Response): Promise<Problem> {
  return ((await res.json()) as { errors: Problem[] }).errors[0]!;
}

/** Bytes an image of the OCI layout takes in a repository: manifest, config and layers, each once. */
function imageBytes(images: TestImages, tag: string): number {
  const hex = images.digests[tag]!.slice('sha256:'.length);
  const manifest = readFileSync(join(images.dir, 'oci/small/blobs/sha256', hex));
  const doc = JSON.parse(manifest.toString()) as { config: { size: number }; layers: { size: number }[] };
  return manifest.length + doc.config.size + doc.layers.reduce((n, l) => n + l.size, 0);
}

async function repository(r: TestRegistry, name: string): Promise<{ tags: number; bytes: number; policies?: any }> {
  const res = await fetch(`${r.url}/api/v1/repositories/${name}`);
  assert.equal(res.status, 200);
  return (await res.json()) as { tags: number; bytes: number; policies?: any };
}

describe('tag immutability and quotas', () => {
  const skip = needs(...IMAGE_TOOLS);
  let r: TestRegistry;
  let images: TestImages;
  let host: string;
  let v1Bytes = 0;
  const copy = (tag: string, dest: string) => run('skopeo', ['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false',
    `oci:${images.dir}/oci/small:${tag}`, `docker://${host}/${dest}`]);
  /** A push that must fail: the client's error output. */
  const refused = async (tag: string, dest: string): Promise<string> => {
    const err = await copy(tag, dest).then(() => undefined, (e: Error) => e.message);
    assert.ok(err, `pushing ${tag} to ${dest} should have been refused`);
    return err;
  };

  before(async () => {
    if (!skip) images = await testImages(join(tempDir('quota-images-'), 'img'));
    v1Bytes = skip ? 1000 : imageBytes(images, 'small:v1');
    r = await startRegistry({
      overrides: {
        policies: {
          rules: [
            { repositories: ['prod/**'], immutable: ['v*'] },
            { repositories: ['quota/bytes', 'race/bytes'], quota: { bytes: String(v1Bytes + 10) } },
            { repositories: ['quota/tags'], quota: { tags: 2 } },
            { repositories: ['race/tags'], quota: { tags: 3 } },
            { repositories: ['ns', 'race'], quota: { repositories: 2 } },
          ],
        },
      },
    });
    host = new URL(r.url).host;
  });
  after(async () => { await r?.close(); });

  it('an immutable tag cannot be moved or deleted; the same digest pushes again', { skip }, async () => {
    await copy('v1', 'prod/app:v1');
    const moved = await refused('v2', 'prod/app:v1');
    assert.match(moved, /denied: tag v1 of prod\/app is immutable \(it matches v\* in policies\.rules\[0\]\.immutable\): it points at sha256:[0-9a-f]{64} and cannot be moved/);
    await copy('v1', 'prod/app:v1'); // the same digest: fine
    await copy('v1', 'prod/app:dev');
    await copy('v2', 'prod/app:dev'); // not protected: moves
    const digest = images.digests['small:v1']!;
    for (const path of ['manifests/v1', `manifests/${digest}`]) {
      const res = await fetch(`${r.url}/v2/prod/app/${path}`, { method: 'DELETE' });
      assert.equal(res.status, 403, path);
      const p = await problem(res);
      assert.equal(p.code, 'DENIED');
      assert.match(p.message, /tag v1 of prod\/app is immutable .* cannot be deleted/);
    }
    const repo = await fetch(`${r.url}/api/v1/repositories/prod/app`, { method: 'DELETE' });
    assert.equal(repo.status, 403);
    const res = await fetch(`${r.url}/v2/prod/app/manifests/v1`, { method: 'HEAD', headers: { Accept: OCI } });
    assert.equal(res.headers.get('docker-content-digest'), digest);
    assert.deepEqual((await repository(r, 'prod/app')).policies, { immutable: ['v*'] });
  });

  it('a bytes quota refuses the blob that would pass it, naming the limit and the usage', { skip }, async () => {
    await copy('v1', 'quota/bytes:v1');
    const err = await refused('v2', 'quota/bytes:v2');
    assert.match(err, new RegExp(`denied: quota exceeded: quota/bytes may store (?:[0-9.]+ KiB \\()?${v1Bytes + 10} bytes\\)? \\(policies\\.rules\\[1\\]\\.quota\\.bytes\\) ` +
      `and stores ${v1Bytes} bytes; blob sha256:[0-9a-f]{64} needs \\d+ bytes more`));
    const after = await repository(r, 'quota/bytes');
    assert.equal(after.tags, 1);
    assert.deepEqual(after.policies, { quota: { bytes: { limit: v1Bytes + 10, used: v1Bytes } } });
    await copy('v1', 'quota/bytes:again'); // nothing new: no bytes needed
  });

  it('a tag quota refuses the manifest PUT of one tag too many', { skip }, async () => {
    await copy('v1', 'quota/tags:a');
    await copy('v2', 'quota/tags:b');
    const err = await refused('v1', 'quota/tags:c');
    assert.match(err, /denied: quota exceeded: quota\/tags may hold 2 tags \(policies\.rules\[2\]\.quota\.tags\) and holds 2; tag c would be one more/);
    await copy('v1', 'quota/tags:b'); // moving an existing tag adds none
    assert.deepEqual((await repository(r, 'quota/tags')).policies, { quota: { tags: { limit: 2, used: 2 } } });
    const res = await fetch(`${r.url}/v2/quota/tags/manifests/c`, { method: 'PUT', headers: { 'Content-Type': OCI },
      body: readFileSync(join(images.dir, 'oci/small/blobs/sha256', images.digests['small:v1']!.slice(7))) });
    assert.equal(res.status, 403);
    assert.deepEqual((await problem(res)).detail, { quota: 'tags', repository: 'quota/tags', limit: 2, used: 2, rule: 'policies.rules[2].quota.tags' });
  });

  it('a namespace quota refuses the first blob of one repository too many', { skip }, async () => {
    await copy('v1', 'ns/one:v1');
    await copy('v1', 'ns/two:v1');
    const err = await refused('v1', 'ns/three:v1');
    assert.match(err, /denied: quota exceeded: namespace ns may hold 2 repositories \(policies\.rules\[4\]\.quota\.repositories\) and holds 2; ns\/three would be one more/);
    await copy('v2', 'ns/one:v2'); // an existing repository takes more
    const catalog = (await (await fetch(`${r.url}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.deepEqual(catalog.repositories.filter((n) => n.startsWith('ns/')), ['ns/one', 'ns/two']);
    const status = await fetch(`${r.url}/v2/ns/three/blobs/uploads/`, { method: 'POST' });
    assert.equal(status.status, 202, 'an upload may start; only its commit is refused');
    assert.deepEqual((await repository(r, 'ns/one')).policies, { quota: { repositories: { limit: 2, used: 2 } } });
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    assert.match(metrics, /berth_quota_used\{scope="ns",quota="repositories"\} 2/);
    assert.match(metrics, /berth_quota_limit\{scope="ns",quota="repositories"\} 2/);
    assert.match(metrics, new RegExp(`berth_quota_used\\{scope="quota/bytes",quota="bytes"\\} ${v1Bytes}`));
  });

  it('racing pushes never take a repository past its bytes, tags or repositories quota', async () => {
    const pushes = (n: number, push: (i: number) => Promise<unknown>) =>
      Promise.allSettled(Array.from({ length: n }, (_, i) => push(i)));
    const outcome = (results: PromiseSettledResult<unknown>[]) => {
      for (const res of results) if (res.status === 'rejected') assert.match(String(res.reason), /: 403 .*DENIED/);
      return results.filter((res) => res.status === 'fulfilled').length;
    };
    // bytes: each image is about 470 bytes, the limit a little more than one small:v1
    const bytes = outcome(await pushes(8, (i) => pushImage(r.url, 'race/bytes', `t${i}`, `race-bytes-${i}`)));
    const used = (await repository(r, 'race/bytes')).policies.quota.bytes;
    assert.ok(used.used <= used.limit, JSON.stringify(used));
    assert.ok(bytes >= 1 && bytes < 8, `${bytes} of 8 pushes fit`);
    // tags: exactly the limit, also while the usage figures are rebuilt from storage meanwhile
    let rebuilding = true;
    const rebuilds = (async () => { while (rebuilding) await r.app.services.usage.rebuild(); })();
    const tagged = outcome(await pushes(8, (i) => pushImage(r.url, 'race/tags', `t${i}`, `race-tags-${i}`)));
    rebuilding = false;
    await rebuilds;
    assert.equal(tagged, 3);
    assert.equal((await repository(r, 'race/tags')).tags, 3);
    // repositories under race/: race/bytes and race/tags hold two already, so none of these fits
    assert.equal(outcome(await pushes(4, (i) => pushImage(r.url, `race/new${i}`, 'v1', `race-new-${i}`))), 0);
    const catalog = (await (await fetch(`${r.url}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.deepEqual(catalog.repositories.filter((n) => n.startsWith('race/')), ['race/bytes', 'race/tags']);
  });
});

describe('repositories quota under racing pushes to new repositories', () => {
  it('lets exactly the limit of new repositories in', async () => {
    const r = await startRegistry({ overrides: { policies: { rules: [{ repositories: ['team'], quota: { repositories: 3 } }] } } });
    try {
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => pushImage(r.url, `team/app${i}`, 'v1', `team-${i}`)));
      assert.equal(results.filter((res) => res.status === 'fulfilled').length, 3);
      const catalog = (await (await fetch(`${r.url}/v2/_catalog`)).json()) as { repositories: string[] };
      assert.equal(catalog.repositories.filter((n) => n.startsWith('team/')).length, 3);
      const ns = (await (await fetch(`${r.url}/api/v1/repositories/team`)).status);
      assert.equal(ns, 404, 'the namespace itself is no repository');
    } finally {
      await r.close();
    }
  });
});
