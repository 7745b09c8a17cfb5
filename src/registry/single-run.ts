// What collection and retention share: one run at a time, the last report kept in memory and in
// storage, and listeners told when a run finishes.
import { isNotFound, type StorageDriver } from '../storage/driver.js';

/** A report kept in storage as JSON, or undefined when there is none (or it is unreadable). */
export async function readReport<R>(driver: StorageDriver, path: string): Promise<R | undefined> {
  try {
    return JSON.parse((await driver.getContent(path)).toString('utf8')) as R;
  } catch (err) {
    if (isNotFound(err) || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/** Runs one at a time; keeps the last report and the count of failed runs. */
export class SingleRun<R> {
  private running: Promise<R> | undefined;
  private runningSince: Date | undefined;
  last: R | undefined;
  errors = 0;
  private readonly listeners: ((report: R) => void)[] = [];

  onFinished(listener: (report: R) => void): void {
    this.listeners.push(listener);
  }

  get state(): { running: boolean; startedAt?: string } {
    return { running: !!this.running, startedAt: this.runningSince?.toISOString() };
  }

  /**
   * Starts `launch`; while a run is under way, `join` joins it, and otherwise `again` is called
   * once it ended (a run asked with other settings waits for the current one).
   */
  protected single(join: boolean, launch: () => Promise<R>, again: () => Promise<R>): Promise<R> {
    if (this.running) return join ? this.running : this.running.catch(() => undefined).then(again);
    this.runningSince = new Date();
    const run = launch().then((report) => {
      this.last = report;
      for (const listener of this.listeners) listener(report);
      return report;
    }, (err) => {
      this.errors++;
      throw err;
    }).finally(() => {
      this.running = undefined;
      this.runningSince = undefined;
    });
    this.running = run;
    return run;
  }
}
