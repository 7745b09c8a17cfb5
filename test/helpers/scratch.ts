// One scratch directory per test process. Every temporary directory a test makes is created in
// it, and it is the TMPDIR of this process and of every process a test starts (berth, skopeo,
// podman, dockerd, chromium, ...). When the process exits — tests passed or failed, or on
// SIGINT/SIGTERM — the daemons still running are stopped and the directory is removed, so a
// test run leaves nothing behind in /tmp.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

function cleanUp(): void {
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
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    cleanUp();
    process.kill(process.pid, signal);
  });
}

/** A new, empty directory inside the scratch directory. */
export function tempDir(prefix = 'tmp-'): string {
  return mkdtempSync(join(SCRATCH, prefix));
}
