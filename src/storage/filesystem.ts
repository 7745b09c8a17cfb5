// Filesystem driver: the embedded default, laid out exactly like distribution's so that a data
// directory moves freely between Berth and registry:2.
import { accessSync, createReadStream, createWriteStream, fdatasync, read, readFile, readdir, stat, statSync, type Stats, type WriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { checkPath, PathNotFoundError, type FileInfo, type PutOptions, type SmallFile, type StorageDriver } from './driver.js';
import { FolderWalker } from './folder-walk.js';
import { listEach, readEach, runInSlices } from './slices.js';

export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  readonly localStat = true;
  /** Blob sends in progress: their buffers share one memory budget. */
  private copies = 0;
  private readonly unflushed = new Unflushed();
  /** Files a durable writer finished, as they were then: moving one needs no second flush. */
  private readonly flushed = new Map<string, string>();
  private readonly walker = new FolderWalker();

  /** The root without a trailing separator: a checked path ("/…") is appended to it as it is. */
  private readonly base: string;

  constructor(private readonly root: string) {
    this.base = join(root, '/').replace(/\/+$/, '');
  }

  findFolders(path: string, marker: string, options?: { reuse?: boolean }): Promise<string[]> {
    return this.walker.find(this.full(path), marker, options);
  }

  // Many listings or reads: synchronous calls, a few milliseconds at a time (slices.ts)
  listMany(paths: string[]): Promise<(string[] | undefined)[]> {
    return runInSlices(listEach(paths.map((p) => this.full(p))));
  }

  readMany(paths: string[]): Promise<(SmallFile | undefined)[]> {
    return runInSlices(readEach(paths.map((p) => this.full(p))));
  }

  private full(path: string): string {
    checkPath(path); // absolute, with no empty, "." or ".." part: already normal
    return this.base + path;
  }

  // Small reads use the callback API: fs/promises' readFile costs three times the CPU per call,
  // which shows on every manifest GET and blob HEAD.
  getContent(path: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      readFile(this.full(path), (err, data) => (err ? reject(translate(err, path)) : resolve(data)));
    });
  }

  async putContent(path: string, content: Buffer | string, options: PutOptions = {}): Promise<void> {
    const target = this.full(path);
    await fs.mkdir(dirname(target), { recursive: true });
    if (options.inPlace && options.durable === false) {
      await fs.writeFile(target, content);
      return;
    }
    const temp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await fs.writeFile(temp, content, { flush: options.durable !== false }); // durable before it becomes visible
      await fs.rename(temp, target);
    } catch (err) {
      await fs.rm(temp, { force: true });
      throw err;
    }
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    const handle = await fs.open(this.full(path), 'r').catch((err) => { throw translate(err, path); });
    return createReadStream('', { fd: handle, start: offset, end, highWaterMark: 1 << 20 });
  }

  /**
   * Sends [offset, end] to `dest` through two buffers used in turn: one is read into while the
   * other is being written. Fresh buffers for every chunk cost a page fault per page, which on
   * large layers costs more than the copy itself.
   */
  async copyTo(path: string, dest: Writable, offset = 0, end?: number): Promise<void> {
    const handle = await fs.open(this.full(path), 'r').catch((err) => { throw translate(err, path); });
    let copying = false;
    try {
      const last = end ?? (await handle.stat()).size - 1;
      const size = Math.min(copyChunk(this.copies + 1), last - offset + 1);
      if (size <= 0) return;
      this.copies++;
      copying = true;
      const buffers = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)];
      let position = offset;
      let turn = 0;
      let writing: Promise<void> = Promise.resolve();
      while (position <= last) {
        const buffer = buffers[turn]!;
        turn ^= 1;
        const bytes = await readInto(handle.fd, buffer, Math.min(size, last - position + 1), position);
        if (bytes === 0) throw new Error(`${path} is shorter than expected`);
        await writing;
        const send = writeChunk(dest, buffer.subarray(0, bytes));
        // awaited on the next turn; a client that leaves meanwhile must not be an unhandled rejection
        send.catch(() => undefined);
        writing = send;
        position += bytes;
      }
      await writing;
    } finally {
      if (copying) this.copies--;
      await handle.close();
    }
  }

  async writer(path: string, append: boolean, options: { durable?: boolean } = {}): Promise<Writable> {
    const target = this.full(path);
    const durable = options.durable === true;
    this.flushed.delete(target);
    const open = async () => {
      const stream = flushWhileWriting(createWriteStream(target, { flags: append ? 'a' : 'w', highWaterMark: 1 << 20, flush: durable }),
        target, this.unflushed);
      await new Promise<void>((resolve, reject) => {
        stream.once('open', () => resolve());
        stream.once('error', reject);
      });
      if (durable) this.rememberFlushed(stream, target);
      return stream;
    };
    try {
      return await open(); // the folder is there nearly always (an upload's own): one call fewer
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await fs.mkdir(dirname(target), { recursive: true });
    return open();
  }

  async getContentWithInfo(path: string): Promise<{ content: Buffer; info: FileInfo }> {
    const handle = await fs.open(this.full(path), 'r').catch((err) => { throw translate(err, path); });
    try {
      const st = await handle.stat();
      const content = Buffer.allocUnsafe(st.size);
      let at = 0;
      while (at < st.size) {
        const { bytesRead } = await handle.read(content, at, st.size - at, at);
        if (bytesRead === 0) break;
        at += bytesRead;
      }
      return { content: content.subarray(0, at), info: { size: st.size, modTime: st.mtime, isDir: st.isDirectory(), version: `${st.ino}:${st.mtimeMs}` } };
    } finally {
      await handle.close();
    }
  }

  statNow(path: string): FileInfo | undefined {
    const st = statSync(this.full(path), { throwIfNoEntry: false });
    return st && { size: st.size, modTime: st.mtime, isDir: st.isDirectory(), version: `${st.ino}:${st.mtimeMs}` };
  }

  existsNow(path: string): boolean {
    try {
      accessSync(this.full(path));
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw err;
    }
  }

  stat(path: string): Promise<FileInfo> {
    return new Promise((resolve, reject) => {
      stat(this.full(path), (err, st) => (err ? reject(translate(err, path))
        : resolve({ size: st.size, modTime: st.mtime, isDir: st.isDirectory(), version: `${st.ino}:${st.mtimeMs}` })));
    });
  }

  list(path: string): Promise<string[]> {
    return new Promise((resolve, reject) => {
      readdir(this.full(path), (err, names) => (err ? reject(translate(err, path)) : resolve(names)));
    });
  }

  async move(source: string, dest: string): Promise<void> {
    const from = this.full(source);
    const to = this.full(dest);
    // the content reaches the disk before its new name does, so a power cut cannot leave a
    // short or empty file under a digest
    this.unflushed.forget(from);
    if (!this.stillFlushed(from)) {
      const handle = await fs.open(from, 'r+').catch((err) => { throw translate(err, source); });
      try {
        await handle.datasync();
      } finally {
        await handle.close();
      }
    }
    await fs.mkdir(dirname(to), { recursive: true });
    try {
      await fs.rename(this.full(source), to);
    } catch (err) {
      throw translate(err, source);
    }
  }

  async touch(path: string): Promise<void> {
    const now = new Date();
    await fs.utimes(this.full(path), now, now).catch((err) => {
      if (translate(err, path) instanceof PathNotFoundError) return;
      throw err;
    });
  }

  async delete(path: string): Promise<void> {
    await fs.rm(this.full(path), { recursive: true, force: true });
  }

  /** Notes a durable writer's file once it closed without error, with what identifies that state of it. */
  private rememberFlushed(stream: WriteStream, target: string): void {
    let failed = false;
    stream.once('error', () => { failed = true; });
    stream.once('close', () => {
      if (failed) return;
      const st = statSync(target, { throwIfNoEntry: false });
      if (!st) return;
      if (this.flushed.size >= 10_000) this.flushed.clear(); // uploads abandoned after their last chunk
      this.flushed.set(target, stateOf(st));
    });
  }

  /**
   * Whether a file is as a durable writer of this process left it. Another process may have
   * appended since (an upload's chunks can reach several), which the file's size and time show.
   */
  private stillFlushed(file: string): boolean {
    const was = this.flushed.get(file);
    if (was === undefined) return false;
    this.flushed.delete(file);
    const st = statSync(file, { throwIfNoEntry: false });
    return st !== undefined && stateOf(st) === was;
  }

  async ping(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true });
    await fs.access(this.root, fs.constants.R_OK | fs.constants.W_OK);
  }
}

/**
 * Makes a write stream start flushing to disk every FLUSH_EVERY bytes while writing goes on, so
 * that the flush a commit needs (see move) finds little left to write: disk and network overlap.
 */
const FLUSH_EVERY = 32 << 20;
type WriteCallback = (error?: Error | null) => void;
interface StreamInternals {
  fd: number | null;
  _write(chunk: Buffer, encoding: BufferEncoding, callback: WriteCallback): void;
  _writev(chunks: { chunk: Buffer; encoding: BufferEncoding }[], callback: WriteCallback): void;
}

/** Bytes written but not yet flushed, per file: counted across the streams of one upload (chunked PATCHes). */
class Unflushed {
  private readonly bytes = new Map<string, number>();

  add(file: string, n: number): boolean {
    const total = (this.bytes.get(file) ?? 0) + n;
    if (total >= FLUSH_EVERY) {
      this.bytes.delete(file);
      return true;
    }
    if (!this.bytes.has(file) && this.bytes.size >= 10_000) this.bytes.clear(); // abandoned uploads
    this.bytes.set(file, total);
    return false;
  }

  forget(file: string): void {
    this.bytes.delete(file);
  }
}

function flushWhileWriting(stream: WriteStream, file: string, unflushed: Unflushed): WriteStream {
  const inner = stream as unknown as StreamInternals;
  const write = inner._write.bind(stream);
  const writev = inner._writev.bind(stream);
  let flushing = false;
  const written = (bytes: number) => {
    if (!unflushed.add(file, bytes) || flushing || typeof inner.fd !== 'number') return;
    flushing = true;
    fdatasync(inner.fd, () => { flushing = false; }); // best effort; move() flushes for real
  };
  inner._write = (chunk, encoding, callback) => write(chunk, encoding, (err) => {
    if (!err) written(chunk.length);
    callback(err);
  });
  inner._writev = (chunks, callback) => writev(chunks, (err) => {
    if (!err) written(chunks.reduce((n, c) => n + c.chunk.length, 0));
    callback(err);
  });
  return stream;
}

function stateOf(st: Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** Buffers for blob sends: 1 MiB for a lone download, shrinking so that all together stay near 16 MiB. */
const COPY_BUDGET = 16 << 20;
function copyChunk(concurrent: number): number {
  return Math.max(64 << 10, Math.min(1 << 20, 2 ** Math.floor(Math.log2(COPY_BUDGET / 2 / concurrent))));
}

function readInto(fd: number, buffer: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, 0, length, position, (err, bytes) => (err ? reject(err) : resolve(bytes)));
  });
}

function writeChunk(dest: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (dest.destroyed) {
      reject(Object.assign(new Error('destination closed'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
      return;
    }
    const onClose = () => reject(Object.assign(new Error('destination closed'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    dest.once('close', onClose);
    dest.write(chunk, (err) => {
      dest.off('close', onClose);
      if (err) reject(err); else resolve();
    });
  });
}

function translate(err: unknown, path: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR' ? new PathNotFoundError(path) : err;
}
