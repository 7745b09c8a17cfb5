// Link files and tag listings answered from memory after a stat, on a local filesystem: what
// another process writes to the same storage is seen at once, including changes made within
// one tick of the file clock, and the same file replaced by a new inode.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { ValidatedReads, STABLE_MS } from '../../src/registry/link-cache.js';
import { LinkMetadataStore } from '../../src/registry/link-store.js';
import { parseDigest, type Digest } from '../../src/registry/names.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { tempDir } from '../helpers/registry.js';

const dirOf = (path: string) => path.slice(0, path.lastIndexOf('/'));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const digestOf = (s: string): Digest => parseDigest(`sha256:${createHash('sha256').update(s).digest('hex')}`);

describe('validated reads of link files', () => {
  it('sees every rewrite by another driver, however fast, and reads a stable file with one stat', async () => {
    const root = tempDir();
    const mine = new FilesystemDriver(root);
    const theirs = new FilesystemDriver(root); // another process on the same storage
    const reads = new ValidatedReads<string>(mine);
    let fileReads = 0;
    const read = () => reads.get('/x/link', async () => {
      fileReads++;
      const content = (await mine.getContent('/x/link').catch(() => undefined))?.toString();
      return content === undefined ? undefined : { value: content, keep: true };
    });
    await theirs.putContent('/x/link', 'v0');
    await sleep(STABLE_MS + 20);
    assert.equal(await read(), 'v0');
    const before = fileReads;
    for (let i = 0; i < 5; i++) assert.equal(await read(), 'v0');
    assert.equal(fileReads, before, 'a stable file is not read again');
    // rewrites of the same size, many within one tick of the file clock, each replacing the inode
    for (let i = 1; i <= 200; i++) {
      await theirs.putContent('/x/link', `v${i % 10}`, { durable: false });
      assert.equal(await read(), `v${i % 10}`, `rewrite ${i}`);
    }
    await sleep(STABLE_MS + 20);
    assert.equal(await read(), 'v0');
    await theirs.delete('/x/link');
    assert.equal(await read(), undefined);
    await theirs.putContent('/x/link', 'v7');
    assert.equal(await read(), 'v7');
  });

  it('another store on the same root sees a moved tag, a new tag and a deleted tag at once', async () => {
    const root = tempDir();
    const a = new LinkMetadataStore(new FilesystemDriver(root));
    const b = new LinkMetadataStore(new FilesystemDriver(root));
    const put = (store: LinkMetadataStore, content: string, tag: string) => store.putManifest('team/app', {
      digest: digestOf(content), mediaType: 'application/vnd.oci.image.manifest.v1+json', content: Buffer.from(content),
      blobs: [], children: [], deferReferences: true,
    }, tag);
    await put(b, 'one', 'v1');
    await put(b, 'two', 'v2');
    await sleep(STABLE_MS + 20);
    assert.equal((await a.tag('team/app', 'v1'))?.toString(), digestOf('one').toString());
    assert.deepEqual(await a.tags('team/app'), ['v1', 'v2']);
    assert.deepEqual(await a.tags('team/app'), ['v1', 'v2']);
    for (let i = 0; i < 20; i++) {
      const content = `moved ${i}`;
      await put(b, content, 'v1');
      assert.equal((await a.tag('team/app', 'v1'))?.toString(), digestOf(content).toString(), `move ${i}`);
    }
    await put(b, 'three', 'v3');
    assert.deepEqual(await a.tags('team/app'), ['v1', 'v2', 'v3']);
    assert.ok(await b.deleteTag('team/app', 'v2'));
    assert.deepEqual(await a.tags('team/app'), ['v1', 'v3']);
    assert.equal(await a.tag('team/app', 'v2'), undefined);
    assert.ok(await b.deleteManifest('team/app', digestOf('three')));
    assert.equal(await a.hasRevision('team/app', digestOf('three')), false);
    assert.deepEqual(await a.tags('team/app'), ['v1']);
  });

  it('a layer link is checked for existence alone: unlinked, linked again or holding another digest, each read is right', async () => {
    const root = tempDir();
    const theirs = new FilesystemDriver(root);
    let contentReads = 0;
    let stats = 0;
    const mine = new FilesystemDriver(root);
    const counted = Object.assign(Object.create(mine) as FilesystemDriver, {
      getContentWithInfo: (path: string) => { contentReads++; return mine.getContentWithInfo(path); },
      statNow: (path: string) => { stats++; return mine.statNow(path); },
    });
    const a = new LinkMetadataStore(counted);
    const digest = digestOf('layer');
    const link = `/docker/registry/v2/repositories/team/app/_layers/sha256/${digest.hex}/link`;
    await theirs.putContent(link, digest.toString());
    assert.equal(await a.blobLinked('team/app', digest), true, 'kept at once: the path names the content');
    for (let i = 0; i < 5; i++) {
      await theirs.touch(link);
      assert.equal(await a.blobLinked('team/app', digest), true);
    }
    assert.equal(contentReads, 1, 'a link its path names is read once, whatever its modification time');
    assert.equal(stats, 0, 'and checked without a stat');
    for (let i = 0; i < 20; i++) {
      await theirs.delete(dirOf(link));
      assert.equal(await a.blobLinked('team/app', digest), false, `unlinked ${i}`);
      await theirs.putContent(link, digest.toString(), { durable: false });
      assert.equal(await a.blobLinked('team/app', digest), true, `linked again ${i}`);
    }
    // a link holding another digest (only a hand could write it) is not the blob's, and is read each time
    const other = digestOf('other layer');
    const otherLink = link.replace(digest.hex, other.hex);
    await theirs.putContent(otherLink, digest.toString());
    const readsBefore = contentReads;
    assert.equal(await a.blobLinked('team/app', other), false);
    assert.equal(await a.blobLinked('team/app', other), false);
    assert.equal(contentReads, readsBefore + 2, 'a link that does not hold its digest is not kept');
    await theirs.putContent(otherLink, other.toString());
    assert.equal(await a.blobLinked('team/app', other), true);
  });
});
