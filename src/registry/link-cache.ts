// What this process has read of small files on storage whose `stat` is a local system call and
// tells when a file changed (the filesystem driver): a link or a folder listing, once read, is
// answered again after one `stat` instead of an open, read and close (or a whole listing),
// and every answer is still checked against storage, so another process's writes are seen at
// once, as without the cache.
//
// A file's version is its inode, size and modification time. File times come from a coarse
// clock (a few milliseconds), so two changes within one tick can carry the same time; a read is
// therefore kept only when the file had not changed for STABLE_MS before it was read (as git
// does with its "racily clean" entries): any later change is then stamped with a later time.
// A file is read with the stat of the very inode read (links are replaced by a rename, never
// rewritten in place); a folder's stat comes before its listing, so a change between them makes
// the kept version stale, never the kept listing.
//
// A file whose content its path names (a layer or revision link holds the digest in its own
// path) cannot change while it exists: any file there holds the same content. Such a file is
// checked for existence alone, which is cheaper than a stat and is not upset by a new
// modification time (a revision link is touched when its manifest is pushed again).
import { isNotFound, type FileInfo, type StorageDriver } from '../storage/driver.js';

/** How long a file must have been unchanged before what was read of it is kept. */
export const STABLE_MS = 100;
const MAX_ENTRIES = 20_000;

export class ValidatedReads<V> {
  private readonly entries = new Map<string, { version: string; value: V; named: boolean }>();

  constructor(private readonly driver: StorageDriver, private readonly max = MAX_ENTRIES) {}

  /** Whether the driver can validate reads at all; without it every call reads. */
  get enabled(): boolean {
    return this.driver.localStat === true;
  }

  /**
   * A small file's value (`parse` of its content; undefined: nothing to keep), from memory
   * while the file's version is unchanged. A miss costs what a plain read costs: the file is
   * read with the stat of the very inode read. `named`: the path names the content (a digest's
   * link), so a kept value holds while the file exists.
   */
  async file(path: string, parse: (content: Buffer) => V | undefined, named = false): Promise<V | undefined> {
    const known = this.known(path);
    if (known) return known.value;
    if (known === null) return undefined;
    const { getContentWithInfo } = this.driver;
    if (!this.enabled || !getContentWithInfo) return this.read(path, parse);
    let got: { content: Buffer; info: FileInfo };
    try {
      got = await getContentWithInfo.call(this.driver, path);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const value = parse(got.content);
    if (value !== undefined) this.keep(path, got.info, value, named);
    return value;
  }

  /**
   * What `read` answers for `path` (a folder, say), from memory while its version is unchanged.
   * `read` resolves undefined when there is nothing there; a value that should not be kept (a
   * listing that found a half-written entry) comes with keep=false. The stat comes first.
   */
  async get(path: string, read: () => Promise<{ value: V; keep: boolean } | undefined>): Promise<V | undefined> {
    if (!this.enabled) return (await read())?.value;
    const known = this.known(path);
    if (known) return known.value;
    if (known === null) return undefined;
    const info = await this.stat(path);
    if (!info) return undefined;
    const found = await read();
    if (found?.keep) this.keep(path, info, found.value);
    return found?.value;
  }

  forget(path: string): void {
    this.entries.delete(path);
  }

  /** The kept entry if the file is unchanged; null when the file is gone; undefined: read it. */
  private known(path: string): { value: V } | null | undefined {
    const entry = this.entries.get(path);
    if (!entry || !this.driver.statNow) return undefined;
    // a file read before is checked on this thread (its inode is in the kernel's cache)
    if (entry.named && this.driver.existsNow) {
      if (this.driver.existsNow(path)) return entry;
      this.entries.delete(path);
      return null;
    }
    const info = this.driver.statNow(path);
    if (info && versionOf(info) === entry.version) return entry;
    this.entries.delete(path);
    return info ? undefined : null;
  }

  private keep(path: string, info: FileInfo, value: V, named = false): void {
    // changed moments ago: read it again next time (a file its path names cannot have changed)
    if (!named && info.modTime.getTime() >= Date.now() - STABLE_MS) return;
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(path, { version: versionOf(info), value, named });
  }

  private async read(path: string, parse: (content: Buffer) => V | undefined): Promise<V | undefined> {
    try {
      return parse(await this.driver.getContent(path));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private async stat(path: string): Promise<FileInfo | undefined> {
    try {
      return await this.driver.stat(path);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
}

function versionOf(info: FileInfo): string {
  return `${info.version ?? ''}:${info.size}:${info.modTime.getTime()}`;
}
