// What a registry:2 user meets first, with real processes: a data directory Berth may not use,
// the documented start command stopped through the wrapper's PID, and the container's
// entrypoint and command names (registry serve, registry garbage-collect, berth on PATH).
import { strict as assert } from 'node:assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, cpSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { pushImage, startRegistry, tempDir } from '../helpers/registry.js';
import { CLI, freePort, PROJECT_ROOT, waitForRegistry } from '../helpers/clients.js';

interface Result { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function runProcess(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number; cwd?: string } = {},
  timeoutMs = 20_000): Promise<Result> {
  return new Promise((resolvePromise) => {
    execFile(command, args, { env: { ...process.env, ...options.env }, uid: options.uid, gid: options.gid, cwd: options.cwd, timeout: timeoutMs },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
        resolvePromise({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
      });
  });
}

/** A directory others may enter (mkdtemp makes them 0700). */
function openDir(prefix: string): string {
  const dir = tempDir(prefix);
  chmodSync(dirname(dir), 0o711); // the test process's scratch folder: others may pass through, not list it
  chmodSync(dir, 0o755);
  return dir;
}

const asRoot = process.getuid?.() === 0;

let othersCli: string | undefined;
/**
 * The CLI as a path other users can run: the project itself when every folder above it lets
 * them through, else a copy of what it needs (dist, package.json, node_modules) in the scratch folder.
 */
function cliForOthers(): string {
  if (othersCli) return othersCli;
  let passable = true;
  for (let dir = PROJECT_ROOT; dir !== dirname(dir); dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) passable = false;
  }
  if (passable) return (othersCli = CLI);
  const copy = openDir('berth-cli-');
  for (const part of ['dist', 'package.json', 'node_modules']) cpSync(join(PROJECT_ROOT, part), join(copy, part), { recursive: true });
  return (othersCli = join(copy, 'dist/src/cli.js'));
}

describe('the data directory', () => {
  it('a root under /proc fails at once, naming the directory and the setting', async () => {
    const started = Date.now();
    const result = await runProcess(process.execPath, [CLI, 'serve', '--root', '/proc/registry', '--addr', '127.0.0.1:0'], {}, 10_000);
    assert.equal(result.signal, null, 'it ended by itself, not by the timeout');
    assert.equal(result.code, 2);
    assert.ok(Date.now() - started < 8000);
    assert.match(result.stderr, /cannot make the data directory \/proc\/registry: \/proc does not take new directories/);
    assert.match(result.stderr, /set storage\.filesystem\.rootdirectory \(--root, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY\)/);
  });

  it('a path through a file names that file', async () => {
    const file = join(openDir('berth-file-'), 'plain');
    writeFileSync(file, 'x');
    const result = await runProcess(process.execPath, [CLI, 'serve', '--root', join(file, 'data'), '--addr', '127.0.0.1:0']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`${file} is a file, not a directory`));
  });

  it('a root-owned directory, for another user: chown -R to that user, or run as root', { skip: !asRoot && 'needs root (to run berth as uid 1000)' }, async () => {
    const root = openDir('berth-rootowned-');
    for (const command of [['serve', '--addr', '127.0.0.1:0'], ['gc', '--dry-run']]) {
      const result = await runProcess(process.execPath, [cliForOthers(), ...command, '--root', root], { uid: 1000, gid: 1000, cwd: '/' });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`berth: storage is not usable: data directory ${root}: this process \\(uid 1000, gid 1000\\) ` +
        `may not read and write ${root}, which belongs to uid 0, gid 0 \\(EACCES\\); run chown -R 1000:1000 ${root}`));
      assert.match(result.stderr, /or run Berth as root \(the container image's default: leave out --user\)/);
    }
  });

  it("a directory of another user (data written by a registry run as uid 1000): run as its owner with --user", { skip: !asRoot && 'needs root' }, async () => {
    const root = openDir('berth-owned-');
    mkdirSync(join(root, 'docker/registry/v2'), { recursive: true });
    // the top is open to all; below it, the layout belongs to uid 1000 alone
    for (const dir of [root, join(root, 'docker'), join(root, 'docker/registry')]) chmodSync(dir, 0o777);
    chownSync(join(root, 'docker/registry/v2'), 1000, 1000);
    chmodSync(join(root, 'docker/registry/v2'), 0o700);
    const result = await runProcess(process.execPath, [cliForOthers(), 'serve', '--root', root, '--addr', '127.0.0.1:0'], { uid: 1001, gid: 1001, cwd: '/' });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, new RegExp(`may not read and write ${root}/docker/registry/v2, which belongs to uid 1000, gid 1000`));
    assert.match(result.stderr, new RegExp(`run chown -R 1001:1001 ${root} .*docker run --user 1000:1000`));
  });
});

/** PIDs of processes whose command line mentions `marker`. */
function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) found.push(Number(entry));
    } catch { /* gone */ }
  }
  return found;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolvePromise(true); });
    socket.once('error', () => resolvePromise(false));
  });
}

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the documented start command (npx berth serve) under a supervisor', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`stops when ${signal} is sent to the PID the shell got`, async () => {
      const root = tempDir('berth-npx-');
      const port = await freePort();
      // as a script does: npx berth serve & pid=$!; kill $pid -- $! is npm's own process
      const child: ChildProcess = spawn('npx', ['berth', 'serve', '--addr', `127.0.0.1:${port}`, '--root', root], {
        cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout!.on('data', (c) => { output += c; });
      child.stderr!.on('data', (c) => { output += c; });
      try {
        await waitForRegistry(`http://127.0.0.1:${port}`, child, 60_000);
        assert.ok(processesWith(root).length >= 2, 'npm and berth are running');
        process.kill(child.pid!, signal);
        await eventually(async () => !(await portOpen(port)), 15_000, `port ${port} still open after ${signal}`);
        await eventually(() => processesWith(root).length === 0, 15_000, `berth still running after ${signal}: ${processesWith(root)}`);
        assert.match(output, /stopping: finishing requests in flight/);
        assert.match(output, /"msg":"stopped"/);
      } finally {
        for (const pid of processesWith(root)) process.kill(pid, 'SIGKILL');
      }
    });
  }
});

describe("the container image's entrypoint and command names", () => {
  const bin = tempDir('berth-bin-');
  symlinkSync(CLI, join(bin, 'berth'));
  symlinkSync(CLI, join(bin, 'registry'));
  const PATH = `${bin}:${process.env.PATH}`;
  const entrypoint = join(PROJECT_ROOT, 'docker/entrypoint.sh');

  async function dataWithImage(): Promise<{ root: string; config: string }> {
    const registry = await startRegistry({ keepData: true });
    await pushImage(registry.url, 'library/web', 'v1');
    await registry.close();
    const config = join(tempDir('berth-ep-config-'), 'config.yml');
    writeFileSync(config, `version: 0.1\nlog:\n  formatter: json\nstorage:\n  filesystem:\n    rootdirectory: ${registry.root}\n`);
    return { root: registry.root, config };
  }

  it('a config file alone serves it, as registry:2\'s entrypoint does', async () => {
    const { config } = await dataWithImage();
    const port = await freePort();
    const child = spawn('sh', [entrypoint, config], { env: { ...process.env, PATH, REGISTRY_HTTP_ADDR: `127.0.0.1:${port}` }, stdio: 'ignore' });
    try {
      await waitForRegistry(`http://127.0.0.1:${port}`, child);
      assert.deepEqual(await (await fetch(`http://127.0.0.1:${port}/v2/_catalog`)).json(), { repositories: ['library/web'] });
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = await new Promise<[number | null]>((r) => child.once('exit', (c) => r([c])));
    assert.equal(code, 0);
  });

  it('registry garbage-collect CONFIG and berth gc run the collection; other commands run as given', async () => {
    const { config } = await dataWithImage();
    for (const args of [['garbage-collect', '--dry-run', config], ['gc', '--dry-run', config]]) {
      const result = await runProcess('sh', [entrypoint, ...args], { env: { PATH } });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /"repositories":1,.*garbage collection \(dry run\) done/);
    }
    const registry = await runProcess('registry', ['garbage-collect', '--dry-run', config], { env: { PATH } });
    assert.equal(registry.code, 0, registry.stderr);
    assert.match(registry.stdout, /garbage collection \(dry run\) done/);
    assert.match((await runProcess('sh', [entrypoint, 'version'], { env: { PATH } })).stdout, /^berth \d+\.\d+\.\d+/);
    assert.equal((await runProcess('sh', [entrypoint, 'echo', 'as given'], { env: { PATH } })).stdout, 'as given\n');
  });

  it('REGISTRY_CONFIGURATION_PATH is the config file when none is given (berth gc in the container)', async () => {
    const { config } = await dataWithImage();
    const cwd = openDir('berth-cwd-');
    const withPath = await runProcess(process.execPath, [CLI, 'gc', '--dry-run'], { env: { REGISTRY_CONFIGURATION_PATH: config }, cwd });
    assert.equal(withPath.code, 0, withPath.stderr);
    assert.match(withPath.stdout, /"repositories":1,/);
    const without = await runProcess(process.execPath, [CLI, 'gc', '--dry-run', '--root', join(cwd, 'data')], { env: { REGISTRY_CONFIGURATION_PATH: '' }, cwd });
    assert.match(without.stdout, /"repositories":0,/);
  });
});
