// The usage figures read from link files in batches (usage-walk.ts) are those read one repository
// at a time through the metadata store, on the filesystem's batch calls, through the metrics
// wrapper, and on a driver with no batch calls; a later walk keeps the entries of manifests it
// has seen. Batches run on the event loop in slices, and a chain of short batches still gives way.
import { strict as assert } from 'node:assert';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { instrumentDriver, Metrics } from '../../src/ops/metrics.js';
import { LinkMetadataStore } from '../../src/registry/link-store.js';
import { parseDigest } from '../../src/registry/names.js';
import { paths } from '../../src/registry/paths.js';
import type { RepoEntry } from '../../src/registry/usage.js';
import { LinkUsageSource } from '../../src/registry/usage-walk.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { listMany } from '../../src/storage/many.js';
import { sha256, tempDir } from '../helpers/registry.js';

const V2 = 'docker/registry/v2';

/** The storage a registry leaves, with the damage a crash or a hand can leave in it. */
async function seed(root: string): Promise<{ manifests: Record<string, string> }> {
  const disk = new FilesystemDriver(root);
  const blob = async (content: string) => {
    const digest = sha256(content);
    await disk.putContent(paths.blobData(parseDigest(digest)), content, { durable: false });
    return digest;
  };
  const manifest = async (label: string, layers: number[]) => blob(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(`config ${label}`), size: 10 + label.length },
    layers: layers.map((size, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(`layer ${label} ${i}`), size })),
  }));
  const link = (name: string, digest: string) => disk.putContent(paths.revisionLink(name, parseDigest(digest)), digest, { durable: false });
  const tag = (name: string, t: string, content: string) => disk.putContent(paths.tagCurrentLink(name, t), content, { durable: false });
  const manifests: Record<string, string> = {
    a: await manifest('a', [100, 200]),
    b: await manifest('b', [300]),
    shared: await manifest('shared', [5000]),
  };
  await link('app/web', manifests.a!);
  await link('app/web', manifests.shared!);
  await tag('app/web', 'v1', manifests.a!);
  await tag('app/web', 'latest', manifests.shared!);
  await link('app/web/nested', manifests.b!); // a repository below a repository
  await tag('app/web/nested', 'b', manifests.b!);
  await link('other', manifests.shared!);
  await tag('other', 'junk', 'not a digest'); // an unreadable tag is not a tag
  mkdirSync(join(root, V2, 'repositories/other/_manifests/tags/empty/current'), { recursive: true }); // a tag with no link
  // a revision link naming another digest, one whose content is gone, and a folder that is no digest
  await disk.putContent(paths.revisionLink('other', parseDigest(manifests.b!)), manifests.a!, { durable: false });
  await link('other', sha256('content gone'));
  mkdirSync(join(root, V2, 'repositories/other/_manifests/revisions/sha256/not-a-digest'), { recursive: true });
  await link('untagged', manifests.b!); // no tags folder at all
  mkdirSync(join(root, V2, 'repositories/empty/_manifests'), { recursive: true });
  return { manifests };
}

/** The figures read one repository at a time through the metadata store. */
async function oneByOne(driver: StorageDriver): Promise<Map<string, RepoEntry>> {
  const store = new LinkMetadataStore(driver, 0);
  const repos = new Map<string, RepoEntry>();
  for (const name of await store.repositories()) {
    const repo: RepoEntry = { tags: new Map(), manifests: new Map(), lastPush: 0 };
    for (const digest of await store.revisions(name)) {
      const content = await driver.getContent(paths.blobData(digest)).catch(() => undefined);
      if (!content) continue;
      const doc = JSON.parse(content.toString('utf8')) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
      const blobs = new Map([[doc.config.digest, doc.config.size], ...doc.layers.map((l) => [l.digest, l.size] as [string, number])]);
      blobs.set(digest.toString(), content.length);
      repo.manifests.set(digest.toString(), { size: content.length, blobs });
    }
    for (const tag of await store.tags(name).catch(() => [] as string[])) {
      const at = (await driver.stat(paths.tagCurrentLink(name, tag))).modTime.getTime();
      repo.tags.set(tag, at);
      repo.lastPush = Math.max(repo.lastPush, at);
    }
    repos.set(name, repo);
  }
  return repos;
}

/** The same storage with no batch calls: one call at a time. */
function withoutBatches(driver: StorageDriver): StorageDriver {
  return Object.create(driver, { listMany: { value: undefined }, readMany: { value: undefined } }) as StorageDriver;
}

const plain = (repos: Map<string, RepoEntry>) => [...repos].map(([name, r]) => ({
  name, lastPush: r.lastPush, tags: [...r.tags], manifests: [...r.manifests].map(([d, m]) => [d, m.size, [...m.blobs].sort()]).sort(),
}));

describe('usage figures read in batches', () => {
  it('are those read one repository at a time, on every kind of driver', async () => {
    const root = tempDir();
    const { manifests } = await seed(root);
    const disk = new FilesystemDriver(root);
    const expected = plain(await oneByOne(disk));
    assert.deepEqual(expected.map((r) => r.name), ['app/web', 'app/web/nested', 'empty', 'other', 'untagged']);
    assert.deepEqual(expected.find((r) => r.name === 'other')?.manifests.map(([d]) => d), [manifests.shared]);
    assert.deepEqual(expected.find((r) => r.name === 'other')?.tags, []);

    const metrics = new Metrics(async () => undefined);
    for (const driver of [disk, withoutBatches(disk), instrumentDriver(disk, metrics), instrumentDriver(withoutBatches(disk), metrics)]) {
      const store = new LinkMetadataStore(driver, 0);
      assert.deepEqual(plain(await new LinkUsageSource(store, driver).load()), expected);
    }
    assert.match(await metrics.registry.metrics(), /operation="readmany"/, 'the metrics wrapper passes the batch calls through');
  });

  it('keeps the entries of manifests it has seen, and reads the new ones', async () => {
    const root = tempDir();
    const { manifests } = await seed(root);
    const disk = new FilesystemDriver(root);
    const source = new LinkUsageSource(new LinkMetadataStore(disk, 0), disk);
    const first = await source.load();
    const entry = first.get('app/web')!.manifests.get(manifests.a!)!;
    const fresh = JSON.stringify({ schemaVersion: 2, config: { digest: sha256('c2'), size: 2 }, layers: [] });
    await disk.putContent(paths.blobData(parseDigest(sha256(fresh))), fresh, { durable: false });
    await disk.putContent(paths.revisionLink('untagged', parseDigest(sha256(fresh))), sha256(fresh), { durable: false });
    rmSync(join(root, V2, 'repositories/app/web/_manifests/revisions/sha256', manifests.shared!.slice(7)), { recursive: true });
    const second = await source.load(first);
    assert.equal(second.get('app/web')!.manifests.get(manifests.a!), entry, 'the same entry, not read again');
    assert.deepEqual([...second.get('app/web')!.manifests.keys()], [manifests.a]);
    assert.deepEqual(second.get('untagged')!.manifests.get(sha256(fresh))?.blobs, new Map([[sha256('c2'), 2], [sha256(fresh), fresh.length]]));
    assert.deepEqual(plain(second), plain(await oneByOne(disk)));
  });

  it('give way to other work between slices, even as a chain of short batches', async () => {
    const root = tempDir();
    const folders = Array.from({ length: 40 }, (_, i) => join(root, `f${i}`));
    for (const folder of folders) {
      mkdirSync(folder);
      writeFileSync(join(folder, 'x'), 'x');
    }
    const disk = new FilesystemDriver(root);
    let ticks = 0;
    let on = true;
    const tick = () => { ticks++; if (on) setTimeout(tick, 0); };
    setTimeout(tick, 0);
    const started = performance.now();
    // each batch is done well within one slice; only the chain is long
    while (performance.now() - started < 200) {
      const listed = await listMany(disk, folders.slice(0, 8).map((f) => `/${f.slice(root.length + 1)}`));
      assert.deepEqual(listed[0], ['x']);
    }
    on = false;
    assert.ok(ticks >= 10, `timers ran ${ticks} times in 200 ms of batches`);
  });
});
