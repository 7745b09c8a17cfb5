// The worker thread of folder-walk.ts: walks a tree with synchronous listings (blocking this
// thread only) and answers with the folders holding the marker, sorted.
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
import { parentPort } from 'node:worker_threads';
import { transfers, type FolderRecord } from './folder-walk.js';

/** Missing or not a folder: nothing below it (it may have been removed during the walk). */
const SKIP = new Set(['ENOENT', 'ENOTDIR']);
/** A folder modified this recently is listed again by the next walk, whatever its time then. */
const RECENT_MS = 2_000;

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

interface Walked {
  names: string[];
  /** Folders listed (the others were known from the record). */
  listed: number;
  record?: FolderRecord;
}

function find(root: string, marker: string, keep: boolean, previous: FolderRecord | undefined): Walked {
  const before = previous && open(previous);
  const recent = Date.now() - RECENT_MS;
  const found: string[] = [];
  const paths: string[] = [];
  const times: number[] = [];
  const inodes: number[] = [];
  const parents: number[] = [];
  const marks: number[] = [];
  let listed = 0;
  const stack: { prefix: string; parent: number }[] = [{ prefix: '', parent: -1 }];
  while (stack.length > 0) {
    const { prefix, parent } = stack.pop()!;
    const path = prefix ? join(root, prefix) : root;
    let time = Number.NaN;
    let inode = 0;
    if (keep) {
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

parentPort!.on('message', ({ id, root, marker, keep, previous }: { id: number; root: string; marker: string; keep: boolean; previous?: FolderRecord }) => {
  try {
    const walked = find(root, marker, keep, previous);
    const record = walked.record;
    parentPort!.postMessage({ id, ...walked }, record ? transfers(record) : []);
  } catch (err) {
    const { message, code } = err as NodeJS.ErrnoException;
    parentPort!.postMessage({ id, error: { message, code } });
  }
});
