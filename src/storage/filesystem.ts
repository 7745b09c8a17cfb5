// Filesystem driver: the embedded default, laid out exactly like distribution's so that a data
// directory moves freely between Berth and registry:2.
import { createReadStream, createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { checkPath, PathNotFoundError, type FileInfo, type StorageDriver } from './driver.js';

export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';

  constructor(private readonly root: string) {}

  private full(path: string): string {
    checkPath(path);
    return join(this.root, path);
  }

  async getContent(path: string): Promise<Buffer> {
    try {
      return await fs.readFile(this.full(path));
    } catch (err) {
      throw translate(err, path);
    }
  }

  async putContent(path: string, content: Buffer | string): Promise<void> {
    const target = this.full(path);
    const temp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
    await fs.mkdir(dirname(target), { recursive: true });
    try {
      await fs.writeFile(temp, content);
      await fs.rename(temp, target);
    } catch (err) {
      await fs.rm(temp, { force: true });
      throw err;
    }
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    const handle = await fs.open(this.full(path), 'r').catch((err) => { throw translate(err, path); });
    // A large highWaterMark keeps syscalls and per-chunk overhead low on big layers.
    return createReadStream('', { fd: handle, start: offset, end, highWaterMark: 1 << 20 });
  }

  async writer(path: string, append: boolean): Promise<Writable> {
    const target = this.full(path);
    await fs.mkdir(dirname(target), { recursive: true });
    const stream = createWriteStream(target, { flags: append ? 'a' : 'w', highWaterMark: 1 << 20 });
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
    return stream;
  }

  async stat(path: string): Promise<FileInfo> {
    try {
      const st = await fs.stat(this.full(path));
      return { size: st.size, modTime: st.mtime, isDir: st.isDirectory() };
    } catch (err) {
      throw translate(err, path);
    }
  }

  async list(path: string): Promise<string[]> {
    try {
      return await fs.readdir(this.full(path));
    } catch (err) {
      throw translate(err, path);
    }
  }

  async move(source: string, dest: string): Promise<void> {
    const to = this.full(dest);
    await fs.mkdir(dirname(to), { recursive: true });
    try {
      await fs.rename(this.full(source), to);
    } catch (err) {
      throw translate(err, source);
    }
  }

  async delete(path: string): Promise<void> {
    await fs.rm(this.full(path), { recursive: true, force: true });
  }

  async ping(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true });
    await fs.access(this.root, fs.constants.R_OK | fs.constants.W_OK);
  }
}

function translate(err: unknown, path: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR' ? new PathNotFoundError(path) : err;
}
