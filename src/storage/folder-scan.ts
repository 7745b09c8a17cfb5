// One walk of a tree for the folders holding a marker entry, with synchronous calls, as a
// generator that pauses every few milliseconds: the event loop runs it a slice at a time, with
// other work between slices.
//
// A walk may be handed the record of the previous one (a FolderRecord). Each folder is then
// stat'ed before it is listed, and a folder whose modification time and inode are those recorded
// is not listed again: its entries are the recorded ones. POSIX updates a folder's modification
// time whenever an entry is created, removed or renamed in it, so only the folders that changed
// are listed. The stat comes before the listing, so a change made in between is listed now and
// seen as a change next time. A folder modified within RECENT_MS of the walk is listed again next
// time whatever its time then: two changes within one tick of the file system's clock can leave
// the same time, and the second may have come after the listing.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Slice } from './slices.js';

/** Missing or not a folder: nothing below it (it may have been removed during the walk). */
const SKIP = new Set(['ENOENT', 'ENOTDIR']);
/** A folder modified this recently is listed again by the next walk, whatever its time then. */
const RECENT_MS = 2_000;

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

export interface Walked {
  /** The folders holding the marker, relative to the root, sorted. */
  names: string[];
  /** Folders listed (the others were known from the record). */
  listed: number;
  /** With `keep`: what this walk saw, for the next one. */
  record?: FolderRecord;
}

interface Previous {
  record: FolderRecord;
  paths: string[];
  byPath: Map<string, number>;
  children: number[][];
}

function open(record: FolderRecord): Previous {
  const paths = record.paths.split('\0');
  const byPath = new Map<string, number>();
  const children: number[][] = paths.map(() => []);
  for (let i = 0; i < paths.length; i++) {
    byPath.set(paths[i]!, i);
    const parent = record.parents[i]!;
    if (parent >= 0) children[parent]!.push(i);
  }
  return { record, paths, byPath, children };
}

/**
 * Walks `root` for folders holding `marker`, not entering entries that start with `_` or `.`.
 * With `keep` the result has a record of the walk; with `previous` (a record), folders unchanged
 * since are not listed. Yields every few milliseconds (slices.ts); throws what a listing throws, except for a
 * folder missing or no longer a folder (skipped).
 */
export function* scan(root: string, marker: string, keep: boolean, previous?: FolderRecord): Generator<void, Walked> {
  const before = previous && open(previous);
  const recent = Date.now() - RECENT_MS;
  const found: string[] = [];
  const paths: string[] = [];
  const times: number[] = [];
  const inodes: number[] = [];
  const parents: number[] = [];
  const marks: number[] = [];
  let listed = 0;
  const slice = new Slice();
  const stack: { prefix: string; parent: number }[] = [{ prefix: '', parent: -1 }];
  while (stack.length > 0) {
    if (slice.due()) yield;
    const { prefix, parent } = stack.pop()!;
    const path = prefix ? join(root, prefix) : root;
    let time = Number.NaN;
    let inode = 0;
    if (keep || before) {
      const stats = statSync(path, { throwIfNoEntry: false });
      if (!stats?.isDirectory()) continue;
      time = stats.mtimeMs;
      inode = stats.ino;
    }
    const was = before?.byPath.get(prefix);
    let marked: boolean;
    let below: string[];
    if (before && was !== undefined && before.record.times[was] === time && before.record.inodes[was] === inode) {
      marked = before.record.marks[was] === 1;
      below = before.children[was]!.map((i) => before.paths[i]!);
    } else {
      let entries: string[];
      try {
        entries = readdirSync(path);
      } catch (err) {
        if (SKIP.has((err as NodeJS.ErrnoException).code ?? '')) continue;
        throw err;
      }
      listed++;
      marked = false;
      below = [];
      for (const entry of entries) {
        if (entry === marker) marked = true;
        else if (!entry.startsWith('_') && !entry.startsWith('.')) below.push(prefix ? `${prefix}/${entry}` : entry);
      }
    }
    if (marked) found.push(prefix);
    if (keep) {
      paths.push(prefix);
      times.push(time > recent ? Number.NaN : time); // NaN equals nothing: listed again next time
      inodes.push(inode);
      parents.push(parent);
      marks.push(marked ? 1 : 0);
    }
    const me = paths.length - 1;
    for (const child of below) stack.push({ prefix: child, parent: me });
  }
  const walked: Walked = { names: found.sort(), listed };
  if (keep) {
    walked.record = {
      paths: paths.join('\0'),
      times: Float64Array.from(times),
      inodes: Float64Array.from(inodes),
      parents: Int32Array.from(parents),
      marks: Uint8Array.from(marks),
    };
  }
  return walked;
}
