// One scratch directory per test process. Every temporary directory a test makes is created in
// it, and it is the TMPDIR of this process and of every process a test starts (berth, skopeo,
// podman, dockerd, chromium, ...). When the process exits — tests passed or failed, or on
// SIGINT/SIGTERM — the daemons still running are stopped and the directory is removed, so a
// test run leaves nothing behind in /tmp.
import { mkdtempSync, rmSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';

export const SCRATCH = mkdtempSync(join(tmpdir(), 'berth-scratch-'));
process.env.TMPDIR = SCRATCH;

const steps: (() => void)[] = [];

/** Runs `step` (synchronous) at exit, before the scratch directory is removed; returns a function that cancels it. */
export function atExit(step: () => void): () => void {
  steps.push(step);
  return () => {
    const i = steps.indexOf(step);
    if (i >= 0) steps.splice(i, 1);
  };
}

let cleaned = false;

function cleanUp(): void {
  if (cleaned) return;
  cleaned = true;
  for (const step of steps.splice(0).reverse()) {
    try { step(); } catch { /* best effort: the directory is removed anyway */ }
  }
  try {
    rmSync(SCRATCH, { recursive: true, force: true, maxRetries: 3 });
  } catch (err) {
    process.stderr.write(`could not remove ${SCRATCH}: ${(err as Error).message}\n`);
  }
}

process.once('exit', cleanUp);
// A signal (Ctrl-C, a cancelled run) cleans up first; then node:test's own listener reports the
// cancelled tests and exits, or, without one, the process exits as the signal would. The listener
// stays while cleaning, so that a second signal cannot cut the cleanup short.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    cleanUp();
    if (process.listenerCount(signal) === 1) process.exit(128 + osConstants.signals[signal]);
  });
}

/** A new, empty directory inside the scratch directory. */
export function tempDir(prefix = 'tmp-'): string {
  return mkdtempSync(join(SCRATCH, prefix));
}
