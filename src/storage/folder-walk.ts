// Finding the folders of a tree that hold a marker entry (`_manifests`: the repositories of the
// catalog), for the filesystem driver. The walk lists every folder once. Through the thread pool
// each listing costs the event loop a hand-off and a callback (about 20 µs, 0.2 s for 10,000
// repositories) on top of the listing itself. Here the event loop lists with synchronous calls,
// a few milliseconds at a time with other work between (folder-scan.ts): the walk takes about
// half as long, and no thread or worker is kept for it.
//
// A walk asked to `reuse` keeps a record of the folders it saw (their modification times and
// entries), and the next such walk of the same tree checks it instead of walking again: a stat
// of each folder, and a listing only of those changed since (folder-scan.ts says why that is
// exact). The catalog walks this way. Collection does not: it lists every folder, every time.
import { scan, type FolderRecord } from './folder-scan.js';
import { runInSlices } from './slices.js';

/** How long the record of a walk is kept for the next one. */
const RECORD_IDLE_MS = 15 * 60_000;

/** The last walk: how many folders it saw, and how many of them it listed. */
export interface WalkStats {
  folders: number;
  listed: number;
}

interface Kept {
  record: FolderRecord;
  timer: NodeJS.Timeout;
}

export class FolderWalker {
  private readonly records = new Map<string, Kept>();
  /** The last walk that finished. */
  last: WalkStats | undefined;

  /**
   * Folders below `root` (relative to it, sorted) that hold an entry named `marker`; entries
   * starting with `_` or `.` are not entered. With `reuse`, folders unchanged since the last
   * such walk of the same tree are not listed again.
   */
  async find(root: string, marker: string, options: { reuse?: boolean } = {}): Promise<string[]> {
    const key = options.reuse ? `${root}\0${marker}` : undefined;
    const kept = key === undefined ? undefined : this.records.get(key)?.record;
    const walked = await runInSlices(scan(root, marker, key !== undefined, kept));
    if (key !== undefined && walked.record) this.keep(key, walked.record);
    this.last = { folders: walked.record ? walked.record.parents.length : walked.listed, listed: walked.listed };
    return walked.names;
  }

  private keep(key: string, record: FolderRecord): void {
    const old = this.records.get(key);
    if (old) clearTimeout(old.timer);
    const timer = setTimeout(() => {
      if (this.records.get(key)?.record === record) this.records.delete(key);
    }, RECORD_IDLE_MS);
    timer.unref();
    this.records.set(key, { record, timer });
  }
}
