// The catalog's cached walk: another process's repositories show within twice the TTL (a copy
// older than the TTL is served while a new walk runs behind it), and what this process creates
// or deletes while a walk runs is not undone by that walk's result. On disk, the walk runs on a
// worker thread and finds what the folder-by-folder walk finds.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CatalogService, walkRepositories, type WalkShare } from '../../src/registry/catalog.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { MemoryDriver } from '../../src/storage/memory.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const repo = (driver: MemoryDriver, name: string) =>
  driver.putContent(`/docker/registry/v2/repositories/${name}/_manifests/revisions/sha256/${'a'.repeat(64)}/link`, `sha256:${'a'.repeat(64)}`);

/** A driver whose listings wait for `release` while `held` is set. */
class GatedDriver extends MemoryDriver {
  held: Promise<void> | undefined;
  override async list(path: string): Promise<string[]> {
    const names = await super.list(path);
    await this.held;
    return names;
  }
}

/** The same storage as `driver`, counting the listings made through it. */
function counting(driver: MemoryDriver): { driver: MemoryDriver; listings: () => number } {
  let listings = 0;
  const list = (path: string) => { listings++; return driver.list(path); };
  return { driver: Object.create(driver, { list: { value: list } }) as MemoryDriver, listings: () => listings };
}

/** Walk shares joined the way the workers of one registry are: what one publishes reaches the others. */
function shares(count: number): WalkShare[] {
  const listeners: Parameters<WalkShare['onRemote']>[0][] = [];
  return Array.from({ length: count }, (_, me) => ({
    starting: () => listeners.forEach((l, i) => { if (i !== me) l.started(); }),
    publish: (names, startedAt) => listeners.forEach((l, i) => { if (i !== me) l.walked(names && [...names], startedAt); }),
    onRemote: (listener) => { listeners[me] = listener; },
  }));
}

describe('catalog', () => {
  it('serves a copy past its TTL while walking again, and waits once it is twice as old', async () => {
    const driver = new MemoryDriver();
    await repo(driver, 'one');
    const catalog = new CatalogService(driver, 500);
    assert.deepEqual(await catalog.list(), ['one']);
    await repo(driver, 'two'); // written by another process
    assert.deepEqual(await catalog.list(), ['one'], 'within the TTL: the copy');
    await sleep(600);
    assert.deepEqual(await catalog.list(), ['one'], 'past the TTL: the copy at once, a walk behind it');
    await sleep(50);
    assert.deepEqual(await catalog.list(), ['one', 'two']);
    await repo(driver, 'three');
    await sleep(1100);
    assert.deepEqual(await catalog.list(), ['one', 'three', 'two'], 'twice the TTL: the walk is awaited');
  });

  it('keeps what this process created and deleted while a walk ran', async () => {
    const driver = new GatedDriver();
    await repo(driver, 'kept');
    await repo(driver, 'gone');
    const catalog = new CatalogService(driver, 10);
    let release!: () => void;
    driver.held = new Promise((resolve) => { release = resolve; });
    const walking = catalog.list(); // the first walk: awaited, and held
    await sleep(10);
    await repo(driver, 'new');
    catalog.add('new'); // pushed here while the walk, which already listed the root, runs
    catalog.remove('gone');
    release();
    driver.held = undefined;
    assert.deepEqual(await walking, ['kept', 'new']);
    assert.deepEqual(await catalog.list(), ['kept', 'new']);
  });

  it('shares a walk between workers: one walks, the other waits for its result and keeps the changes it saw meanwhile', async () => {
    const driver = new GatedDriver();
    await repo(driver, 'a');
    await repo(driver, 'gone');
    const [shareA, shareB] = shares(2);
    const seen = counting(driver);
    const first = new CatalogService(driver, 10_000, undefined, shareA);
    const second = new CatalogService(seen.driver, 10_000, undefined, shareB);
    let release!: () => void;
    driver.held = new Promise((resolve) => { release = resolve; });
    const walking = first.list();
    await sleep(10);
    const waiting = second.list(); // the other worker's walk is running: this one waits for it
    await sleep(10);
    await repo(driver, 'b');
    second.add('b'); // a push the walk may have missed, told to both (as relayed events are)
    first.add('b');
    second.remove('gone');
    first.remove('gone');
    release();
    driver.held = undefined;
    assert.deepEqual(await walking, ['a', 'b']);
    assert.deepEqual(await waiting, ['a', 'b'], 'the shared walk, with the changes made meanwhile');
    assert.equal(seen.listings(), 0, 'the second worker did not walk');
    await repo(driver, 'c'); // written by another registry: neither copy has it yet
    assert.deepEqual(await second.list(), ['a', 'b'], 'the shared copy is current for the TTL');
  });

  it('walks itself when the shared walk failed', async () => {
    const driver = new GatedDriver();
    await repo(driver, 'a');
    const [shareA, shareB] = shares(2);
    const first = new CatalogService(driver, 10_000, undefined, shareA);
    const second = new CatalogService(driver, 10_000, undefined, shareB);
    let fail!: (err: Error) => void;
    driver.held = new Promise((_, reject) => { fail = reject; });
    const walking = first.list();
    await sleep(10);
    const waiting = second.list();
    await sleep(10);
    driver.held = undefined;
    fail(Object.assign(new Error('the disk is gone'), { code: 'EIO' }));
    await assert.rejects(walking, /the disk is gone/);
    assert.deepEqual(await waiting, ['a'], 'its own walk');
  });
});

describe('the filesystem walk on a worker thread (findFolders)', () => {
  it('finds what the folder-by-folder walk finds: nested names, no _ or . folders, files and a missing root skipped', async () => {
    const root = mkdtempSync(join(tmpdir(), 'berth-walk-'));
    const driver = new FilesystemDriver(root);
    const base = '/docker/registry/v2/repositories';
    assert.deepEqual(await driver.findFolders(base, '_manifests'), [], 'no repositories folder yet');
    const put = (path: string) => driver.putContent(`${base}/${path}`, 'x', { durable: false });
    await put(`web/_manifests/tags/v1/current/link`);
    await put(`library/alpine/_manifests/revisions/link`);
    await put(`library/alpine/sub/_manifests/x`); // a repository below another one's name
    await put(`org/team/deep/app/_manifests/x`);
    await put(`org/_hidden/_manifests/x`);
    await put(`org/.tmp/_manifests/x`);
    await put(`uploads-only/_uploads/u/startedat`);
    await put(`stray-file`);
    const walked = await driver.findFolders(base, '_manifests');
    assert.deepEqual(walked, ['library/alpine', 'library/alpine/sub', 'org/team/deep/app', 'web']);
    // the generic walk (any driver without findFolders) agrees
    const generic = Object.create(driver, { findFolders: { value: undefined } }) as FilesystemDriver;
    assert.deepEqual(await walkRepositories(generic, '_manifests'), walked);
    assert.deepEqual(await driver.findFolders(base, '_uploads'), ['uploads-only']);
    // many walks at once share the one worker
    const many = await Promise.all(Array.from({ length: 8 }, () => driver.findFolders(base, '_manifests')));
    for (const names of many) assert.deepEqual(names, walked);
  });
});
