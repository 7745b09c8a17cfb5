// One suite, every driver: the contract the registry relies on, against memory, the filesystem
// and S3 (a real RADOS Gateway, test/support/s3.sh). A case a driver cannot run is skipped with
// the reason.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import { isNotFound, type StorageDriver } from '../../src/storage/driver.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { MemoryDriver } from '../../src/storage/memory.js';
import { MIN_PART, S3Driver } from '../../src/storage/s3.js';
import { tempDir } from '../helpers/registry.js';
import { needsS3, s3Bucket, s3Driver } from '../helpers/s3.js';

interface Candidate {
  name: string;
  skip?: string;
  /** Why a writer's bytes show before it finishes (undefined: a write appears whole, or not at all). */
  inPlace?: string;
  make: () => Promise<StorageDriver>;
}

const s3Skip = needsS3();
let s3Bucketed: Promise<Awaited<ReturnType<typeof s3Bucket>>> | undefined;
const s3Drivers: S3Driver[] = [];
after(() => { for (const d of s3Drivers) d.client.destroy(); });

const drivers: Candidate[] = [
  {
    name: 'filesystem', make: async () => new FilesystemDriver(tempDir('berth-driver-')),
    inPlace: 'the filesystem writes in place: bytes show as they arrive and a cut-off write keeps them (uploads re-read their size, one writer per path)',
  },
  {
    name: 'inmemory', make: async () => new MemoryDriver(),
    inPlace: 'memory writes in place, chunk by chunk: bytes show as they arrive (uploads re-read their size, one writer per path)',
  },
  {
    name: 's3', skip: s3Skip,
    make: async () => {
      s3Bucketed ??= s3Bucket('drivers');
      const { server, bucket } = await s3Bucketed;
      // each case in its own root directory; small parts so that multipart paths are exercised
      const d = s3Driver(server, bucket, {
        rootDirectory: `/case-${randomBytes(4).toString('hex')}`, chunkSize: MIN_PART,
        multipartCopyChunkSize: MIN_PART, multipartCopyThresholdSize: 6 << 20,
      });
      s3Drivers.push(d);
      return d;
    },
  },
];

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

const text = async (stream: Readable) => (await readAll(stream)).toString();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** `total` random bytes as a stream of `chunk`-sized pieces, and their hash. */
function randomStream(total: number, chunk: number): { stream: Readable; digest: Promise<string> } {
  const hash = createHash('sha256');
  let left = total;
  let resolveDigest!: (d: string) => void;
  const digest = new Promise<string>((r) => { resolveDigest = r; });
  const stream = new Readable({
    read() {
      if (left === 0) {
        resolveDigest(hash.digest('hex'));
        this.push(null);
        return;
      }
      const piece = randomBytes(Math.min(chunk, left));
      left -= piece.length;
      hash.update(piece);
      this.push(piece);
    },
  });
  return { stream, digest };
}

async function hashOf(stream: Readable): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const c of stream) {
    hash.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { digest: hash.digest('hex'), size };
}

async function write(d: StorageDriver, path: string, data: Buffer, append: boolean): Promise<void> {
  await pipeline(Readable.from([data]), await d.writer(path, append));
}

for (const { name, skip, make, inPlace } of drivers) {
  describe(`storage driver: ${name}`, { skip }, () => {
    it('puts, gets, stats and lists content', async () => {
      const d = await make();
      await d.putContent('/a/b/c', 'hello');
      assert.equal((await d.getContent('/a/b/c')).toString(), 'hello');
      assert.equal((await d.stat('/a/b/c')).size, 5);
      assert.equal((await d.stat('/a/b')).isDir, true);
      assert.deepEqual(await d.list('/a'), ['b']);
      await d.putContent('/a/b/c', 'replaced');
      assert.equal((await d.getContent('/a/b/c')).toString(), 'replaced');
      await d.putContent('/a/empty', '');
      assert.equal((await d.getContent('/a/empty')).length, 0);
      assert.deepEqual((await d.list('/a')).sort(), ['b', 'empty']);
    });

    it('reports missing paths as PathNotFoundError', async () => {
      const d = await make();
      for (const op of [() => d.getContent('/x'), () => d.stat('/x'), () => d.list('/x'), () => d.reader('/x'),
        () => d.move('/x', '/y'), () => d.copyTo('/x', new (class extends Readable { override _read() {} })() as never)]) {
        await assert.rejects(op(), (err) => isNotFound(err));
      }
      await d.delete('/x'); // deleting nothing is fine
      await d.touch('/x'); // nor is touching it
      await d.putContent('/dir/file', 'x');
      await assert.rejects(d.getContent('/dir'), (err) => isNotFound(err)); // a directory has no content
      await assert.rejects(d.list('/dir/fil'), (err) => isNotFound(err)); // a prefix of a name is not a directory
    });

    it('appends through writers and reads ranges', async () => {
      const d = await make();
      await write(d, '/f', Buffer.from('0123'), false);
      await write(d, '/f', Buffer.from('456789'), true);
      assert.equal(await text(await d.reader('/f')), '0123456789');
      assert.equal(await text(await d.reader('/f', 3, 5)), '345');
      assert.equal(await text(await d.reader('/f', 7)), '789');
      assert.equal(await text(await d.reader('/f', 10)), ''); // at the end: nothing
      await write(d, '/f', Buffer.from('new'), false);
      assert.equal(await text(await d.reader('/f')), 'new');
      await write(d, '/g', Buffer.from('created by an append'), true);
      assert.equal(await text(await d.reader('/g')), 'created by an append');
    });

    it('streams a large write in pieces and reads it back, whole and from offsets', async () => {
      const d = await make();
      const total = 23 * (1 << 20) + 12345; // several parts and a ragged tail
      const { stream, digest } = randomStream(total, 1 << 20);
      await pipeline(stream, await d.writer('/big', false));
      assert.equal((await d.stat('/big')).size, total);
      assert.equal((await hashOf(await d.reader('/big'))).digest, await digest);
      const offset = 11 * (1 << 20) + 7;
      const whole = await readAll(await d.reader('/big'));
      const tail = await readAll(await d.reader('/big', offset));
      assert.equal(sha(tail), sha(whole.subarray(offset)));
      const middle = await readAll(await d.reader('/big', offset, offset + 999));
      assert.deepEqual(middle, whole.subarray(offset, offset + 1000));
    });

    it('resumes appends across writers: small, across a part boundary, and onto a large file', async () => {
      const d = await make();
      const pieces = [randomBytes(1000), randomBytes(3 << 20), randomBytes(4 << 20), randomBytes(7 << 20), randomBytes(10)];
      for (const [i, piece] of pieces.entries()) await write(d, '/up', piece, i > 0);
      const expected = Buffer.concat(pieces);
      assert.equal((await d.stat('/up')).size, expected.length);
      assert.equal(sha(await readAll(await d.reader('/up'))), sha(expected));
    });

    it('copies ranges to a destination with copyTo', async () => {
      const d = await make();
      const data = randomBytes(3 << 20);
      await write(d, '/c', data, false);
      const got: Buffer[] = [];
      const { Writable } = await import('node:stream');
      const sink = new Writable({ write(chunk: Buffer, _e, done) { got.push(chunk); done(); } });
      await d.copyTo('/c', sink, 100, 200);
      await d.copyTo('/c', sink, (3 << 20) - 5);
      assert.deepEqual(Buffer.concat(got), Buffer.concat([data.subarray(100, 201), data.subarray((3 << 20) - 5)]));
    });

    it('lists more than 1000 entries (pagination) and deletes them as a tree', async () => {
      const d = await make();
      const names = Array.from({ length: 1100 }, (_, i) => `e${String(i).padStart(4, '0')}`);
      let next = 0;
      await Promise.all(Array.from({ length: 32 }, async () => {
        while (next < names.length) {
          const n = names[next++]!;
          await d.putContent(`/many/${n}/link`, n, { durable: false });
        }
      }));
      await d.putContent('/many-sibling/x', 'not listed under /many');
      const listed = await d.list('/many');
      assert.equal(listed.length, 1100);
      assert.deepEqual(listed.sort(), names);
      await d.delete('/many');
      await assert.rejects(d.list('/many'), (err) => isNotFound(err));
      assert.equal((await d.getContent('/many-sibling/x')).toString(), 'not listed under /many');
    });

    it('moves atomically, large files too, and deletes trees', async () => {
      const d = await make();
      await d.putContent('/src/file', 'data');
      await d.putContent('/dst/file', 'old');
      await d.move('/src/file', '/dst/file');
      assert.equal((await d.getContent('/dst/file')).toString(), 'data');
      await assert.rejects(d.getContent('/src/file'), (err) => isNotFound(err));
      const big = randomBytes(13 << 20); // above the S3 case's multipart copy threshold
      await write(d, '/src/big', big, false);
      await d.move('/src/big', '/moved/deep/big');
      assert.equal(sha(await readAll(await d.reader('/moved/deep/big'))), sha(big));
      await assert.rejects(d.stat('/src/big'), (err) => isNotFound(err));
      await d.putContent('/tree/x/y', '1');
      await d.delete('/tree');
      await assert.rejects(d.stat('/tree/x/y'), (err) => isNotFound(err));
    });

    it('lets concurrent writers of one path leave one whole version, never a mix', { skip: inPlace }, async () => {
      const d = await make();
      const versions = Array.from({ length: 4 }, () => randomBytes(6 << 20));
      await Promise.all(versions.map((v) => write(d, '/race', v, false)));
      const final = sha(await readAll(await d.reader('/race')));
      assert.ok(versions.some((v) => sha(v) === final), 'the file is one of the versions written');
      // concurrent writers of different paths do not disturb each other
      await Promise.all(versions.map((v, i) => write(d, `/each/${i}`, v, false)));
      for (const [i, v] of versions.entries()) assert.equal(sha(await readAll(await d.reader(`/each/${i}`))), sha(v));
    });

    it('keeps the previous content when a writer is cut off', { skip: inPlace }, async () => {
      const d = await make();
      await d.putContent('/keep', 'previous');
      const sink = await d.writer('/keep', true);
      const source = new Readable({ read() {} });
      const done = pipeline(source, sink);
      source.push(randomBytes(6 << 20));
      await new Promise((r) => setTimeout(r, 200));
      source.destroy(new Error('client went away'));
      await assert.rejects(done, /client went away/);
      assert.equal((await d.getContent('/keep')).toString(), 'previous');
    });

    it('touch renews a file\'s modification time', async () => {
      const d = await make();
      await d.putContent('/t', 'x');
      const before = (await d.stat('/t')).modTime.getTime();
      await new Promise((r) => setTimeout(r, 2100)); // S3 keeps whole seconds, and renews nothing written in the last two
      await d.touch('/t');
      assert.ok((await d.stat('/t')).modTime.getTime() > before);
      assert.equal((await d.getContent('/t')).toString(), 'x');
    });

    it('refuses paths that could escape the root', async () => {
      const d = await make();
      for (const bad of ['relative', '/a/../b', '/a//b', '/./a']) {
        await assert.rejects(d.putContent(bad, 'x'), /invalid storage path/);
      }
    });

    it('gives presigned download URLs that serve the bytes and ranges',
      { skip: name === 's3' ? undefined : `${name} serves bytes itself: it has no URL to redirect downloads to` }, async () => {
        const d = await make() as S3Driver;
        const data = randomBytes(100_000);
        await write(d, '/blob', data, false);
        const url = await d.downloadUrl('/blob');
        const res = await fetch(url);
        assert.equal(res.status, 200);
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
        const ranged = await fetch(url, { headers: { Range: 'bytes=10-19' } });
        assert.equal(ranged.status, 206);
        assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), data.subarray(10, 20));
        const forged = new URL(url);
        forged.searchParams.set('X-Amz-Signature', '0'.repeat(64));
        assert.equal((await fetch(forged)).status, 403);
      });
  });
}
