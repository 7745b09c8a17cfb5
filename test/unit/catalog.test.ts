// The catalog's cached walk: another process's repositories show within twice the TTL (a copy
// older than the TTL is served while a new walk runs behind it), and what this process creates
// or deletes while a walk runs is not undone by that walk's result. On disk, the walk runs on the
// event loop in slices and finds what the folder-by-folder walk finds, and a walk from a record
// lists only what changed.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CatalogService, walkRepositories, type WalkShare } from '../../src/registry/catalog.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { MemoryDriver } from '../../src/storage/memory.js';
import { instrumentDriver, Metrics } from '../../src/ops/metrics.js';

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

describe('the filesystem walk on the event loop, in slices (findFolders)', () => {
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
    // many walks at once, their slices interleaved
    const many = await Promise.all(Array.from({ length: 8 }, () => driver.findFolders(base, '_manifests')));
    for (const names of many) assert.deepEqual(names, walked);
  });

  it('with reuse, lists only the folders changed since the last walk, and finds what a full walk finds', async () => {
    const root = mkdtempSync(join(tmpdir(), 'berth-walk-'));
    const driver = new FilesystemDriver(root);
    const base = '/docker/registry/v2/repositories';
    const disk = (path: string) => join(root, base, path);
    const put = (path: string) => driver.putContent(`${base}/${path}`, 'x', { durable: false });
    for (let i = 0; i < 20; i++) await put(`ns/r${i}/_manifests/x`);
    await put(`other/app/_layers/x`); // a namespace without a repository yet
    // every folder written long ago: none is "recent", so none must be listed again for that reason
    const old = new Date(Date.now() - 60_000);
    const age = (path: string) => utimesSync(disk(path), old, old);
    const ageAll = () => {
      for (const path of ['', 'ns', 'other', 'other/app', ...Array.from({ length: 20 }, (_, i) => `ns/r${i}`)]) {
        if (existsSync(disk(path))) age(path);
      }
    };
    ageAll();
    const full = () => driver.findFolders(base, '_manifests');
    const reuse = () => driver.findFolders(base, '_manifests', { reuse: true });
    const walker = (driver as unknown as { walker: { last?: { folders: number; listed: number } } }).walker;

    const first = await reuse();
    assert.equal(first.length, 20);
    assert.deepEqual(walker.last, { folders: 24, listed: 24 }, 'the first walk lists every folder');
    assert.deepEqual(await reuse(), first);
    assert.deepEqual(walker.last, { folders: 24, listed: 0 }, 'nothing changed: nothing listed');

    // a repository below another one's name, a namespace that becomes a repository, a removed one
    mkdirSync(disk('ns/r3/sub/_manifests'), { recursive: true });
    mkdirSync(disk('other/app/_manifests'));
    rmSync(disk('ns/r7'), { recursive: true });
    let walked = await reuse();
    assert.deepEqual(walker.last, { folders: 24, listed: 4 }, 'ns (r7 gone), ns/r3, ns/r3/sub and other/app were listed');
    assert.deepEqual(walked, await full());
    assert.ok(walked.includes('ns/r3/sub') && walked.includes('other/app') && !walked.includes('ns/r7'), walked.join(' '));

    // changed again within the same tick of the clock, after the walk listed it: the folder's time
    // was recent at the walk, so it is listed again whatever its time is now
    ageAll();
    const tick = Math.floor(Date.now() / 1000);
    utimesSync(disk('ns/r3'), tick, tick);
    await reuse();
    renameSync(disk('ns/r3/sub'), disk('ns/r3/moved'));
    utimesSync(disk('ns/r3'), tick, tick); // the same time as the walk saw
    walked = await reuse();
    assert.ok(walked.includes('ns/r3/moved') && !walked.includes('ns/r3/sub'), walked.join(' '));
    assert.deepEqual(walked, await full());

    // a folder replaced by another of the same name and time (a new inode) is listed again
    ageAll();
    await reuse();
    mkdirSync(disk('ns/r5-new/deeper/_manifests'), { recursive: true });
    rmSync(disk('ns/r5'), { recursive: true });
    renameSync(disk('ns/r5-new'), disk('ns/r5'));
    ageAll();
    walked = await reuse();
    assert.ok(walked.includes('ns/r5/deeper') && !walked.includes('ns/r5'), walked.join(' '));
    assert.deepEqual(walked, await full());

    // the walks collection makes never use the record: a full walk lists all
    await full();
    assert.equal(walker.last?.listed, walker.last?.folders);
  });

  it('the catalog walks this way on the driver as the registry builds it (with metrics)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'berth-walk-'));
    const disk = new FilesystemDriver(root);
    for (let i = 0; i < 5; i++) await disk.putContent(`/docker/registry/v2/repositories/r${i}/_manifests/x`, 'x', { durable: false });
    const walker = (disk as unknown as { walker: { last?: { folders: number; listed: number } } }).walker;
    const catalog = new CatalogService(instrumentDriver(disk, new Metrics(async () => undefined)), 0);
    assert.deepEqual(await catalog.list(), ['r0', 'r1', 'r2', 'r3', 'r4']);
    assert.equal(walker.last?.folders, 6, 'walked by the driver, keeping a record');
  });
});
