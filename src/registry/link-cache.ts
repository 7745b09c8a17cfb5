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
// The stat comes before the read, so a change between them makes the kept version stale, never
// the kept content.
import { isNotFound, type FileInfo, type StorageDriver } from '../storage/driver.js';

/** How long a file must have been unchanged before what was read of it is kept. */
export const STABLE_MS = 100;
const MAX_ENTRIES = 50_000;

export class ValidatedReads<V> {
  private readonly entries = new Map<string, { version: string; value: V }>();

  constructor(private readonly driver: StorageDriver, private readonly max = MAX_ENTRIES) {}

  /** Whether the driver can validate reads at all; without it every call reads. */
  get enabled(): boolean {
    return this.driver.localStat === true;
  }

  /**
   * What `read` answers for `path`, from memory while the file's version is unchanged. `read`
   * resolves undefined when there is nothing to keep (a missing or unreadable file); a value that
   * should not be kept (say, a listing that found a half-written entry) is returned with keep=false.
   */
  async get(path: string, read: () => Promise<{ value: V; keep: boolean } | undefined>): Promise<V | undefined> {
    if (!this.enabled) return (await read())?.value;
    const entry = this.entries.get(path);
    // a file read before is checked on this thread (its inode is in the kernel's cache); a new one on the pool
    const info = entry && this.driver.statNow ? this.driver.statNow(path) : await this.stat(path);
    if (!info) {
      if (entry) this.entries.delete(path);
      return (await read())?.value; // gone, or never there: the read decides what that means
    }
    const version = versionOf(info);
    if (entry) {
      if (entry.version === version) return entry.value;
      this.entries.delete(path);
    }
    const found = await read();
    if (found?.keep && info.modTime.getTime() < Date.now() - STABLE_MS) {
      if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(path, { version, value: found.value });
    }
    return found?.value;
  }

  forget(path: string): void {
    this.entries.delete(path);
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
