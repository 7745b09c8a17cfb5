// In-memory driver: the reference implementation of the contract, used by tests and by
// `storage.inmemory` (data is lost on exit, as with registry:2).
import { Readable, Writable } from 'node:stream';
import { checkPath, PathNotFoundError, type FileInfo, type StorageDriver } from './driver.js';

interface Entry { content: Buffer; modTime: Date }

export class MemoryDriver implements StorageDriver {
  readonly name = 'inmemory';
  private readonly files = new Map<string, Entry>();

  async getContent(path: string): Promise<Buffer> {
    return this.entry(path).content;
  }

  async putContent(path: string, content: Buffer | string): Promise<void> {
    checkPath(path);
    this.files.set(path, { content: Buffer.from(content), modTime: new Date() });
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    const { content } = this.entry(path);
    return Readable.from([content.subarray(offset, end === undefined ? undefined : end + 1)]);
  }

  async copyTo(path: string, dest: Writable, offset = 0, end?: number): Promise<void> {
    const { content } = this.entry(path);
    const chunk = content.subarray(offset, end === undefined ? undefined : end + 1);
    await new Promise<void>((resolve, reject) => dest.write(chunk, (err) => (err ? reject(err) : resolve())));
  }

  async writer(path: string, append: boolean): Promise<Writable> {
    checkPath(path);
    if (!append || !this.files.has(path)) this.files.set(path, { content: Buffer.alloc(0), modTime: new Date() });
    return new Writable({
      write: (chunk: Buffer, _enc, done) => {
        const current = this.files.get(path) ?? { content: Buffer.alloc(0), modTime: new Date() };
        this.files.set(path, { content: Buffer.concat([current.content, chunk]), modTime: new Date() });
        done();
      },
    });
  }

  async stat(path: string): Promise<FileInfo> {
    checkPath(path);
    const file = this.files.get(path);
    if (file) return { size: file.content.length, modTime: file.modTime, isDir: false };
    const prefix = `${path}/`;
    for (const [key, entry] of this.files) {
      if (key.startsWith(prefix)) return { size: 0, modTime: entry.modTime, isDir: true };
    }
    throw new PathNotFoundError(path);
  }

  async list(path: string): Promise<string[]> {
    checkPath(path);
    const prefix = path === '/' ? '/' : `${path}/`;
    const names = new Set<string>();
    for (const key of this.files.keys()) {
      if (key.startsWith(prefix)) names.add(key.slice(prefix.length).split('/')[0]!);
    }
    if (names.size === 0) throw new PathNotFoundError(path);
    return [...names];
  }

  async move(source: string, dest: string): Promise<void> {
    const entry = this.entry(source);
    checkPath(dest);
    this.files.set(dest, entry);
    this.files.delete(source);
  }

  async touch(path: string): Promise<void> {
    const file = this.files.get(path);
    if (file) file.modTime = new Date();
  }

  async delete(path: string): Promise<void> {
    checkPath(path);
    const prefix = `${path}/`;
    for (const key of [...this.files.keys()]) {
      if (key === path || key.startsWith(prefix)) this.files.delete(key);
    }
  }

  async ping(): Promise<void> {}

  private entry(path: string): Entry {
    checkPath(path);
    const entry = this.files.get(path);
    if (!entry) throw new PathNotFoundError(path);
    return entry;
  }
}
