// Finding the folders of a tree that hold a marker entry (`_manifests`: the repositories of the
// catalog), for the filesystem driver. The walk lists every folder once; through the thread pool
// each listing costs the main thread a hand-off and a callback (about 20 µs, 0.2 s of the event
// loop for 10,000 repositories). Here one worker thread lists them with synchronous calls and
// sends back the sorted names: the event loop goes on serving meanwhile, and the walk itself is
// about twice as fast. The worker is started on the first walk and stopped when idle.
//
// A walk asked to `reuse` keeps a record of the folders it saw (their modification times and
// entries), and the next such walk of the same tree checks it instead of walking again: a stat
// of each folder, and a listing only of those changed since (folder-scan.ts says why that is
// exact). That checked walk runs on the main thread a slice at a time (about 6 µs a folder, a
// few milliseconds a slice), so it does not wait for a worker to start. The catalog walks this
// way. Collection does not: it lists every folder, every time.
import { Worker } from 'node:worker_threads';
import { scan, scanInSlices, type FolderRecord, type Walked } from './folder-scan.js';

/** How long an idle worker is kept for the next walk. */
const IDLE_MS = 60_000;
/** How long the record of a walk is kept for the next one. */
const RECORD_IDLE_MS = 15 * 60_000;

/** The last walk: how many folders it saw, and how many of them it listed. */
export interface WalkStats {
  folders: number;
  listed: number;
}

interface Pending {
  resolve(walked: Walked): void;
  reject(err: Error): void;
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
  async find(root: string, marker: string, options: { reuse?: boolean } = {}): Promise<string[]> {
    const key = options.reuse ? `${root}\0${marker}` : undefined;
    const kept = key === undefined ? undefined : this.records.get(key)?.record;
    const walked = kept ? await scanInSlices(scan(root, marker, true, kept)) : await this.onWorker(root, marker, key !== undefined);
    if (key !== undefined && walked.record) this.keep(key, walked.record);
    this.last = { folders: walked.record ? walked.record.parents.length : walked.listed, listed: walked.listed };
    return walked.names;
  }

  private onWorker(root: string, marker: string, keep: boolean): Promise<Walked> {
    const worker = this.start();
    worker.ref(); // a walk in progress keeps the process alive, as a listing through the thread pool would
    const id = this.next++;
    return new Promise<Walked>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, root, marker, keep });
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
      if (names) waiting.resolve({ names, listed: listed ?? 0, record });
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
