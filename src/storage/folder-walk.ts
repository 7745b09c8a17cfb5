// Finding the folders of a tree that hold a marker entry (`_manifests`: the repositories of the
// catalog), for the filesystem driver. The walk lists every folder once; through the thread pool
// each listing costs the main thread a hand-off and a callback (about 20 µs, 0.2 s of the event
// loop for 10,000 repositories). Here one worker thread lists them with synchronous calls and
// sends back the sorted names: the event loop goes on serving meanwhile, and the walk itself is
// about twice as fast. The worker is started on the first walk and stopped when idle.
import { Worker } from 'node:worker_threads';

/** How long an idle worker is kept for the next walk. */
const IDLE_MS = 60_000;

interface Pending {
  resolve(names: string[]): void;
  reject(err: Error): void;
}

export class FolderWalker {
  private worker: Worker | undefined;
  private idle: NodeJS.Timeout | undefined;
  private next = 0;
  private readonly pending = new Map<number, Pending>();

  /** Folders below `root` (relative to it, sorted) that hold an entry named `marker`; entries starting with `_` or `.` are not entered. */
  find(root: string, marker: string): Promise<string[]> {
    const worker = this.start();
    worker.ref(); // a walk in progress keeps the process alive, as a listing through the thread pool would
    const id = this.next++;
    return new Promise<string[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, root, marker });
    });
  }

  private start(): Worker {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./folder-walk-worker.js', import.meta.url));
    worker.on('message', ({ id, names, error }: { id: number; names?: string[]; error?: { message: string; code?: string } }) => {
      const waiting = this.pending.get(id);
      if (!waiting) return;
      this.pending.delete(id);
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
