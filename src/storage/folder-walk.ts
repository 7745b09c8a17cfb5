// Finding the folders of a tree that hold a marker entry (`_manifests`: the repositories of the
// catalog), for the filesystem driver. The walk lists every folder once; through the thread pool
// each listing costs the main thread a hand-off and a callback (about 20 µs, 0.2 s of the event
// loop for 10,000 repositories). Here one worker thread lists them with synchronous calls and
// sends back the sorted names: the event loop goes on serving meanwhile, and the walk itself is
// about twice as fast. The worker is started on the first walk and stopped when idle.
//
// A walk asked to `reuse` keeps a record of the folders it saw (their modification times and
// entries), and the next such walk of the same tree lists only the folders changed since: a
// stat of each folder instead of a listing (folder-walk-worker.ts says why that is exact). The
// catalog walks this way. Collection does not: it lists every folder, every time.
import { Worker } from 'node:worker_threads';

/** How long an idle worker is kept for the next walk. */
const IDLE_MS = 60_000;
/** How long the record of a walk is kept for the next one. */
const RECORD_IDLE_MS = 15 * 60_000;

/**
 * What a walk saw, for the next walk of the same tree: the folders in the order walked (their
 * paths relative to the root, joined by NUL), each one's modification time (NaN: list it again),
 * inode, parent (an index; -1 for the root) and whether it holds the marker (1).
 */
export interface FolderRecord {
  paths: string;
  times: Float64Array;
  inodes: Float64Array;
  parents: Int32Array;
  marks: Uint8Array;
}

/** The buffers of a record, moved rather than copied between threads. */
export function transfers(record: FolderRecord): ArrayBuffer[] {
  return [record.times, record.inodes, record.parents, record.marks].map((array) => array.buffer as ArrayBuffer);
}

/** The last walk: how many folders it saw, and how many of them it listed. */
export interface WalkStats {
  folders: number;
  listed: number;
}

interface Pending {
  resolve(names: string[]): void;
  reject(err: Error): void;
  key?: string;
}

interface Kept {
  record: FolderRecord;
  timer: NodeJS.Timeout;
}

export class FolderWalker {
  private worker: Worker | undefined;
  private idle: NodeJS.Timeout | undefined;
  private next = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly records = new Map<string, Kept>();
  /** The last walk that finished. */
  last: WalkStats | undefined;

  /**
   * Folders below `root` (relative to it, sorted) that hold an entry named `marker`; entries
   * starting with `_` or `.` are not entered. With `reuse`, folders unchanged since the last
   * such walk of the same tree are not listed again.
   */
  find(root: string, marker: string, options: { reuse?: boolean } = {}): Promise<string[]> {
    const worker = this.start();
    worker.ref(); // a walk in progress keeps the process alive, as a listing through the thread pool would
    const id = this.next++;
    const key = options.reuse ? `${root}\0${marker}` : undefined;
    // a record goes to one walk at a time (its arrays move to the worker); a walk alongside lists all
    const kept = key === undefined ? undefined : this.records.get(key);
    if (kept) {
      clearTimeout(kept.timer);
      this.records.delete(key!);
    }
    const previous = kept?.record;
    return new Promise<string[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, key });
      worker.postMessage({ id, root, marker, keep: key !== undefined, previous },
        previous ? transfers(previous) : []);
    });
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

  private start(): Worker {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./folder-walk-worker.js', import.meta.url));
    worker.on('message', ({ id, names, listed, record, error }: { id: number; names?: string[]; listed?: number; record?: FolderRecord; error?: { message: string; code?: string } }) => {
      const waiting = this.pending.get(id);
      if (!waiting) return;
      this.pending.delete(id);
      if (names && waiting.key !== undefined && record) this.keep(waiting.key, record);
      if (names) this.last = { folders: record ? record.parents.length : listed ?? 0, listed: listed ?? 0 };
      if (names) waiting.resolve(names);
      else waiting.reject(Object.assign(new Error(error?.message ?? 'the walk failed'), { code: error?.code }));
      this.settle();
    });
    worker.on('error', (err) => this.stop(err));
    worker.on('exit', () => this.stop(new Error('the folder walk stopped')));
    this.worker = worker;
    return worker;
  }

  /** No walk waiting: the worker is stopped after IDLE_MS. */
  private settle(): void {
    if (this.pending.size > 0 || !this.worker) return;
    const worker = this.worker;
    worker.unref(); // an idle worker does not keep the process alive
    this.idle = setTimeout(() => {
      if (this.worker === worker && this.pending.size === 0) {
        this.worker = undefined;
        void worker.terminate();
      }
    }, IDLE_MS);
    this.idle.unref();
  }

  private stop(err: Error): void {
    this.worker = undefined;
    for (const waiting of this.pending.values()) waiting.reject(err);
    this.pending.clear();
  }
}
