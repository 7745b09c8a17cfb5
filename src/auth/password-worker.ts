// A worker thread that checks bcrypt passwords, one at a time, off the main event loop.
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

parentPort!.on('message', ({ password, hash }: { password: string; hash: string }) => {
  let ok = false;
  try {
    ok = bcrypt.compareSync(password, hash);
  } catch { /* a malformed hash matches nothing */ }
  parentPort!.postMessage(ok);
});
