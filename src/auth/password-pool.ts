// bcrypt off the event loop: a small pool of worker threads with a bounded queue. A check costs
// milliseconds to tens of milliseconds of CPU by design; on the main thread a flood of logins
// would stall every other request. When the queue is full, the caller is told at once.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

export class PasswordChecksBusy extends Error {
  constructor(readonly queued: number) {
    super(`${queued} password checks are already waiting`);
    this.name = 'PasswordChecksBusy';
  }
}

interface Job {
  password: string;
  hash: string;
  resolve(ok: boolean): void;
  reject(err: Error): void;
}

interface Slot {
  worker: Worker;
  job?: Job;
}

const WORKER_URL = new URL('./password-worker.js', import.meta.url);

/** Workers by default: one core is left to the event loop; at most four. */
export function defaultPasswordWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

export class PasswordChecker {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];

  constructor(readonly workers = defaultPasswordWorkers(), readonly queueLimit = 64) {}

  /** Whether `password` matches the bcrypt `hash`; PasswordChecksBusy when the queue is full. */
  compare(password: string, hash: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const job = { password, hash, resolve, reject };
      const idle = this.slots.find((slot) => !slot.job) ?? (this.slots.length < this.workers ? this.spawn() : undefined);
      if (idle) this.run(idle, job);
      else if (this.queue.length >= this.queueLimit) reject(new PasswordChecksBusy(this.queue.length));
      else this.queue.push(job);
    });
  }

  /** Stops the workers; checks still queued are refused. */
  async close(): Promise<void> {
    for (const job of this.queue.splice(0)) job.reject(new Error('password checks stopped'));
    await Promise.all(this.slots.splice(0).map((slot) => slot.worker.terminate()));
  }

  private spawn(): Slot {
    const slot: Slot = { worker: new Worker(WORKER_URL) };
    slot.worker.unref(); // an idle pool does not keep the process alive
    slot.worker.on('message', (ok: boolean) => {
      const job = slot.job;
      slot.job = undefined;
      job?.resolve(ok === true);
      this.next(slot);
    });
    slot.worker.on('error', (err) => this.lose(slot, err));
    slot.worker.on('exit', (code) => this.lose(slot, new Error(`password worker exited with ${code}`)));
    this.slots.push(slot);
    return slot;
  }

  private run(slot: Slot, job: Job): void {
    slot.job = job;
    slot.worker.ref(); // a pending check does
    slot.worker.postMessage({ password: job.password, hash: job.hash });
  }

  private next(slot: Slot): void {
    const job = this.queue.shift();
    if (job) this.run(slot, job);
    else slot.worker.unref();
  }

  /** A worker that failed is replaced on demand; its check fails, the queue carries on. */
  private lose(slot: Slot, err: Error): void {
    const index = this.slots.indexOf(slot);
    if (index < 0) return;
    this.slots.splice(index, 1);
    slot.job?.reject(err);
    slot.job = undefined;
    const job = this.queue.shift();
    if (job) this.run(this.spawn(), job);
  }
}
