// One suite, every driver: the contract the registry relies on.
import { strict as assert } from 'node:assert';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { isNotFound, type StorageDriver } from '../../src/storage/driver.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { MemoryDriver } from '../../src/storage/memory.js';
import { tempDir } from '../helpers/registry.js';

const drivers: [string, () => StorageDriver][] = [
  ['filesystem', () => new FilesystemDriver(tempDir('berth-driver-'))],
  ['inmemory', () => new MemoryDriver()],
];

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks).toString();
}

for (const [name, make] of drivers) {
  describe(`storage driver: ${name}`, () => {
    it('puts, gets, stats and lists content', async () => {
      const d = make();
      await d.putContent('/a/b/c', 'hello');
      assert.equal((await d.getContent('/a/b/c')).toString(), 'hello');
      assert.equal((await d.stat('/a/b/c')).size, 5);
      assert.equal((await d.stat('/a/b')).isDir, true);
      assert.deepEqual(await d.list('/a'), ['b']);
      await d.putContent('/a/b/c', 'replaced');
      assert.equal((await d.getContent('/a/b/c')).toString(), 'replaced');
    });

    it('reports missing paths as PathNotFoundError', async () => {
      const d = make();
      for (const op of [() => d.getContent('/x'), () => d.stat('/x'), () => d.list('/x'), () => d.reader('/x'), () => d.move('/x', '/y')]) {
        await assert.rejects(op(), (err) => isNotFound(err));
      }
      await d.delete('/x'); // deleting nothing is fine
    });

    it('appends through writers and reads ranges', async () => {
      const d = make();
      await pipeline(Readable.from([Buffer.from('0123')]), await d.writer('/f', false));
      await pipeline(Readable.from([Buffer.from('456789')]), await d.writer('/f', true));
      assert.equal(await readAll(await d.reader('/f')), '0123456789');
      assert.equal(await readAll(await d.reader('/f', 3, 5)), '345');
      await pipeline(Readable.from([Buffer.from('new')]), await d.writer('/f', false));
      assert.equal(await readAll(await d.reader('/f')), 'new');
    });

    it('moves atomically and deletes trees', async () => {
      const d = make();
      await d.putContent('/src/file', 'data');
      await d.putContent('/dst/file', 'old');
      await d.move('/src/file', '/dst/file');
      assert.equal((await d.getContent('/dst/file')).toString(), 'data');
      await assert.rejects(d.getContent('/src/file'), (err) => isNotFound(err));
      await d.putContent('/tree/x/y', '1');
      await d.delete('/tree');
      await assert.rejects(d.stat('/tree/x/y'), (err) => isNotFound(err));
    });

    it('refuses paths that could escape the root', async () => {
      const d = make();
      for (const bad of ['relative', '/a/../b', '/a//b', '/./a']) {
        await assert.rejects(d.putContent(bad, 'x'), /invalid storage path/);
      }
    });
  });
}
