// Synchronous file-system calls on the event loop, a slice at a time. Through the thread pool each
// call costs a hand-off to another thread and a callback back, which for a stat or a short read
// is most of its cost (in a virtual machine, many times the call itself). Work made of many such
// calls (a walk of every repository) runs here as a generator that pauses every SLICE_MS or so:
// requests are served between slices, and no thread is kept for it.
import { closeSync, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import type { SmallFile } from './driver.js';

/** The work done between two pauses. */
const SLICE_MS = 4;
/** How many steps between two readings of the clock. */
const CLOCK_EVERY = 16;
/** A missing path, or one that is not of the kind asked (a file listed, a folder read). */
const MISSING = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);

/**
 * When the event loop last ran other work between slices. Shared by every walk, so that a chain
 * of short ones (each done before its own slice is up) still gives way every SLICE_MS.
 */
let resumed = performance.now();

async function giveWay(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  resumed = performance.now();
}

/** Tells a generator when its slice is used up: `if (slice.due()) yield;`. */
export class Slice {
  private steps = 0;

  due(): boolean {
    return ++this.steps % CLOCK_EVERY === 0 && performance.now() - resumed > SLICE_MS;
  }
}

/** Runs synchronous work a slice at a time, letting other work run between slices. */
export async function runInSlices<T>(work: Generator<void, T>): Promise<T> {
  for (;;) {
    if (performance.now() - resumed > SLICE_MS) await giveWay();
    const step = work.next();
    if (step.done) return step.value;
    await giveWay();
  }
}

function missing(err: unknown): boolean {
  return MISSING.has((err as NodeJS.ErrnoException).code ?? '');
}

/** Each folder's entries (undefined where missing); throws any other error. */
export function* listEach(folders: string[]): Generator<void, (string[] | undefined)[]> {
  const slice = new Slice();
  const out = new Array<string[] | undefined>(folders.length);
  for (let i = 0; i < folders.length; i++) {
    if (slice.due()) yield;
    try {
      out[i] = readdirSync(folders[i]!);
    } catch (err) {
      if (!missing(err)) throw err;
    }
  }
  return out;
}

/** Each small file's content and modification time, from the very file read (undefined where missing). */
export function* readEach(files: string[]): Generator<void, (SmallFile | undefined)[]> {
  const slice = new Slice();
  const out = new Array<SmallFile | undefined>(files.length);
  for (let i = 0; i < files.length; i++) {
    if (slice.due()) yield;
    let fd: number;
    try {
      fd = openSync(files[i]!, 'r');
    } catch (err) {
      if (missing(err)) continue;
      throw err;
    }
    try {
      const stats = fstatSync(fd);
      if (stats.isDirectory()) continue;
      const content = Buffer.allocUnsafe(stats.size);
      let at = 0;
      while (at < content.length) {
        const n = readSync(fd, content, at, content.length - at, at);
        if (n === 0) break;
        at += n;
      }
      out[i] = { content: content.subarray(0, at), modTime: stats.mtime };
    } catch (err) {
      if (!missing(err)) throw err;
    } finally {
      closeSync(fd);
    }
  }
  return out;
}
