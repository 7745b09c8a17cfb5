// The kernel's floor under small pushes: the file operations one manifest push or one small blob
// push makes in registry:2's layout, done in one thread with synchronous calls: no HTTP, no
// thread pool, no registry code. What a registry can store per second on this disk, and the CPU
// each item costs the kernel, whatever the registry (docs/operations.md, "Small writes").
//
//   manifest: the content (flushed), the revision's media type and link (flushed), the tag's
//             index entry and its `current` link (flushed); FLUSH=0 flushes nothing
//   blob:     an upload folder with `startedat`, the data (flushed), its move under blobs/, the
//             repository's layer link (flushed), the upload folder removed; 4-64 KiB each
//
//   npm run build && node dist/test/bench/file-floor.js manifest|blob [COUNT=1000] [DIR] [FLUSH=1]
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { closeSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tempDir } from '../helpers/scratch.js';

const kind = process.argv[2];
const count = Number(process.argv[3] ?? 1000);
const root = process.argv[4] || join(tempDir('file-floor-'), 'data');
const flush = (process.argv[5] ?? '1') !== '0';
if (kind !== 'manifest' && kind !== 'blob') {
  console.error('usage: node dist/test/bench/file-floor.js manifest|blob [COUNT] [DIR] [FLUSH=1|0]');
  process.exit(2);
}

/** Writes a whole file, flushing it with `sync` (fsync or fdatasync) when flushing is on. */
function write(path: string, content: Buffer, sync?: (fd: number) => void): void {
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, content);
    if (sync && flush) sync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Written to a temporary name, flushed when asked, then renamed: as Berth writes a small file. */
function put(path: string, content: Buffer | string, durable: boolean): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}`;
  write(temp, Buffer.from(content), durable ? fsyncSync : undefined);
  renameSync(temp, path);
}

function manifest(i: number): void {
  const content = randomBytes(700);
  const hex = createHash('sha256').update(content).digest('hex');
  const repo = join(root, 'repositories', `r${i % 50}`, '_manifests');
  put(join(root, 'blobs/sha256', hex.slice(0, 2), hex, 'data'), content, true);
  put(join(repo, 'revisions/sha256', hex, 'mediatype'), 'application/vnd.oci.image.manifest.v1+json', false);
  put(join(repo, 'revisions/sha256', hex, 'link'), `sha256:${hex}`, true);
  put(join(repo, 'tags', `t${i}`, 'index/sha256', hex, 'link'), `sha256:${hex}`, false);
  put(join(repo, 'tags', `t${i}`, 'current/link'), `sha256:${hex}`, true);
}

function blob(): void {
  const content = randomBytes(4096 + Math.floor(Math.random() * 61_440));
  const hex = createHash('sha256').update(content).digest('hex');
  const repo = join(root, 'repositories', 'small');
  const upload = join(repo, '_uploads', randomUUID());
  put(join(upload, 'startedat'), new Date().toISOString(), false);
  write(join(upload, 'data'), content, fdatasyncSync); // the upload's data, flushed before it is moved
  const target = join(root, 'blobs/sha256', hex.slice(0, 2), hex, 'data');
  mkdirSync(dirname(target), { recursive: true });
  renameSync(join(upload, 'data'), target);
  put(join(repo, '_layers/sha256', hex, 'link'), `sha256:${hex}`, true);
  rmSync(upload, { recursive: true });
}

const cpu = process.cpuUsage();
const start = performance.now();
for (let i = 0; i < count; i++) {
  if (kind === 'manifest') manifest(i); else blob();
}
const seconds = (performance.now() - start) / 1000;
const used = process.cpuUsage(cpu);
const us = (v: number) => (v / count).toFixed(0);
const where = process.argv[4] ? ` in ${root}` : '';
console.log(`${count} ${kind} pushes' files${flush ? '' : ' (nothing flushed)'}${where}: ${(count / seconds).toFixed(0)} a second; ` +
  `CPU ${us(used.user + used.system)} µs each (user ${us(used.user)}, kernel ${us(used.system)})`);
