// The worker thread of folder-walk.ts: walks a tree with synchronous listings (blocking this
// thread only) and answers with the folders holding the marker, sorted.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';

/** Missing or not a folder: nothing below it (it may have been removed during the walk). */
const SKIP = new Set(['ENOENT', 'ENOTDIR']);

function find(root: string, marker: string): string[] {
  const found: string[] = [];
  const stack: string[] = [''];
  while (stack.length > 0) {
    const prefix = stack.pop()!;
    let children: string[];
    try {
      children = readdirSync(prefix ? join(root, prefix) : root);
    } catch (err) {
      if (SKIP.has((err as NodeJS.ErrnoException).code ?? '')) continue;
      throw err;
    }
    for (const child of children) {
      if (child === marker) found.push(prefix);
      else if (!child.startsWith('_') && !child.startsWith('.')) stack.push(prefix ? `${prefix}/${child}` : child);
    }
  }
  return found.sort();
}

parentPort!.on('message', ({ id, root, marker }: { id: number; root: string; marker: string }) => {
  try {
    parentPort!.postMessage({ id, names: find(root, marker) });
  } catch (err) {
    const { message, code } = err as NodeJS.ErrnoException;
    parentPort!.postMessage({ id, error: { message, code } });
  }
});
