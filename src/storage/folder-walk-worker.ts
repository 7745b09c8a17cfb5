// The worker thread of folder-walk.ts: walks a tree with synchronous listings (blocking this
// thread only) and answers with the folders holding the marker, sorted, and with `keep`, a
// record of the walk for the next one (folder-scan.ts).
import { parentPort } from 'node:worker_threads';
import { scan, scanAll, transfers } from './folder-scan.js';

parentPort!.on('message', ({ id, root, marker, keep }: { id: number; root: string; marker: string; keep: boolean }) => {
  try {
    const walked = scanAll(scan(root, marker, keep));
    parentPort!.postMessage({ id, ...walked }, walked.record ? transfers(walked.record) : []);
  } catch (err) {
    const { message, code } = err as NodeJS.ErrnoException;
    parentPort!.postMessage({ id, error: { message, code } });
  }
});
