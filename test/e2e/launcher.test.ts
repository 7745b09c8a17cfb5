// bin/berth, the installed `berth` command: it runs the CLI under the Node.js settings that
// docs/operations.md documents (a larger first old-generation limit, two malloc arenas), lets the
// operator replace either, and works through a symlink (node_modules/.bin, /usr/local/bin).
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { freePort, LAUNCHER, launcherEnv, waitForRegistry } from '../helpers/clients.js';
import { tempDir } from '../helpers/registry.js';

/** Starts `berth serve` through `command`; returns the serving process's argv and environment. */
async function served(command: string, env: NodeJS.ProcessEnv = {}): Promise<{ argv: string[]; environ: Map<string, string> }> {
  const port = await freePort();
  const child = spawn(command, ['serve', '--addr', `127.0.0.1:${port}`, '--root', tempDir('berth-launch-')], {
    env: launcherEnv(env), stdio: 'ignore',
  });
  try {
    await waitForRegistry(`http://127.0.0.1:${port}`, child);
    // the launcher execs node: the PID the caller got is the registry itself
    const argv = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const environ = new Map(readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0').filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as [string, string]));
    return { argv, environ };
  } finally {
    child.kill('SIGKILL');
  }
}

describe('bin/berth, the installed command', () => {
  it('runs the registry itself (same PID) with the documented Node.js settings', async () => {
    const { argv, environ } = await served(LAUNCHER);
    assert.match(argv[0]!, /node$/);
    assert.ok(argv.includes('--initial-old-space-size=128'), argv.join(' '));
    assert.match(argv[argv.indexOf('serve') - 1]!, /dist\/src\/cli\.js$/);
    assert.equal(environ.get('MALLOC_ARENA_MAX'), '2');
  });

  it('works through a symlink, as node_modules/.bin/berth and /usr/local/bin/berth are', async () => {
    const link = join(tempDir('berth-link-'), 'berth');
    symlinkSync(LAUNCHER, link);
    const { argv } = await served(link);
    assert.ok(argv.includes('--initial-old-space-size=128'), argv.join(' '));
  });

  it("keeps the operator's MALLOC_ARENA_MAX and Node.js flags (BERTH_NODE_OPTIONS)", async () => {
    const { argv, environ } = await served(LAUNCHER, { MALLOC_ARENA_MAX: '4', BERTH_NODE_OPTIONS: '--max-semi-space-size=4 --stack-trace-limit=20' });
    assert.equal(environ.get('MALLOC_ARENA_MAX'), '4');
    assert.ok(argv.includes('--max-semi-space-size=4') && argv.includes('--stack-trace-limit=20'), argv.join(' '));
    assert.ok(!argv.includes('--initial-old-space-size=128'), argv.join(' '));
    const plain = await served(LAUNCHER, { BERTH_NODE_OPTIONS: '' });
    assert.deepEqual(plain.argv.slice(1, 2).map((a) => a.endsWith('dist/src/cli.js')), [true], plain.argv.join(' '));
  });
});
