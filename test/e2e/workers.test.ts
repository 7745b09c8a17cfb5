// `http.workers`: one registry served by several processes on one port. The concurrency battery
// runs against it (its connections spread over the workers) with collection running every second
// and workers killed with SIGKILL; what the processes share (locks, metrics, the upload secret)
// is checked from outside, as a client or an operator sees it.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { request } from 'node:http';
import { assertBatteryHeld, Client, COLLECTING_ENV, makeImage, runBattery, verifyBattery } from '../helpers/battery.js';
import { LAUNCHER, launcherEnv, startBerth, type BerthProcess } from '../helpers/clients.js';
import { tempDir } from '../helpers/registry.js';

// at info level (without the access log), so that the test sees each worker start serving
const GC_ENV = { ...COLLECTING_ENV, REGISTRY_HTTP_WORKERS: '2', REGISTRY_LOG_LEVEL: 'info', REGISTRY_LOG_ACCESSLOG_DISABLED: 'true' };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The processes pgrep finds with these arguments (none: an empty list). */
function pgrep(...args: string[]): number[] {
  try {
    return execFileSync('pgrep', args, { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The worker processes of a primary (its children). */
function workerPids(primary: number): number[] {
  return pgrep('-P', String(primary));
}

/** How many workers have said they serve, in the registry's log so far. */
function serving(berth: BerthProcess): number {
  return (berth.log().match(/worker is serving/g) ?? []).length;
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 15_000, seen?: () => string): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out waiting: ${what}${seen ? `\n${seen()}` : ''}`);
    await sleep(100);
  }
}

/** A request on a connection of its own, so that successive ones reach different workers. */
function fresh(url: string, init: { method?: string; body?: Buffer; headers?: Record<string, string> } = {}): Promise<{ status: number; location?: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', agent: false, headers: { connection: 'close', ...init.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, location: res.headers.location, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

describe('several workers (http.workers)', () => {
  it('pass the concurrency battery with collection running and workers killed with SIGKILL', async (t) => {
    const root = tempDir();
    const berth: BerthProcess = await startBerth(root, GC_ENV);
    const primary = berth.child.pid!;
    try {
      await waitFor('two workers', () => workerPids(primary).length === 2);
      // a worker that dies before it ever served stops the registry (a startup that fails, say a
      // bad configuration, would only fail again): the killing starts once both serve
      await waitFor('both workers serving', () => serving(berth) >= 2);
      const keeper = makeImage('keep/app', 'v1', 'keeper');
      assert.ok(await new Client({ url: () => berth.url }).pushImage(keeper), 'the keeper image was not acknowledged');
      let kills = 0;
      let stopping = false;
      const killer = (async () => {
        while (!stopping) {
          await sleep(2000 + Math.random() * 1500);
          if (stopping) break;
          const pids = workerPids(primary);
          if (pids.length < 2) continue; // one is restarting
          process.kill(pids[Math.floor(Math.random() * pids.length)]!, 'SIGKILL');
          kills++;
        }
      })();
      const began = Date.now();
      const result = await runBattery({ url: () => berth.url }, Number(process.env.BATTERY_MS ?? 12_000));
      const ran = Date.now();
      stopping = true;
      await killer;
      const battery = result.live.length;
      result.live.push(keeper);
      await waitFor('the killed worker replaced', () => workerPids(primary).length === 2, 15_000,
        () => `workers ${workerPids(primary).join(', ') || 'none'}; the registry's last lines:\n${berth.log().split('\n').filter((l) => !l.includes('"msg":"request"')).slice(-15).join('\n')}`);
      const replaced = Date.now();
      const checked = await verifyBattery(new Client({ url: () => berth.url }), result);
      const verified = Date.now();
      await berth.stop();
      t.diagnostic(JSON.stringify({ batteryMs: ran - began, replacedMs: replaced - ran, verifyMs: verified - replaced, stopMs: Date.now() - verified }));
      assert.equal(berth.child.exitCode, 0, 'the primary did not stop cleanly');
      await assertBatteryHeld(root, result, checked, { kills, live: battery }, (m) => t.diagnostic(m));
      assert.ok(kills >= 2, `only ${kills} kills`);
      assert.match(berth.log(), /a worker process exited: its locks are released and a new one starts/);
      assert.doesNotMatch(berth.log(), /uncaught|unhandled/i);
    } finally {
      await berth.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('serve one registry: uploads cross workers, metrics sum every worker, the workers go with the primary', async () => {
    const root = tempDir();
    const berth = await startBerth(root, { REGISTRY_HTTP_WORKERS: '2', REGISTRY_LOG_LEVEL: 'info' });
    const primary = berth.child.pid!;
    try {
      await waitFor('two workers', () => workerPids(primary).length === 2);
      await waitFor('both workers serving', () => serving(berth) === 2);
      // every step on a new connection: an upload started on one worker goes on and ends on others
      const data = Buffer.from('a blob in three parts, sent over three connections');
      const digest = `sha256:${(await import('node:crypto')).createHash('sha256').update(data).digest('hex')}`;
      const started = await fresh(`${berth.url}/v2/cross/app/blobs/uploads/`, { method: 'POST' });
      assert.equal(started.status, 202);
      const first = await fresh(new URL(started.location!, berth.url).href, {
        method: 'PATCH', body: data.subarray(0, 20), headers: { 'content-type': 'application/octet-stream', 'content-range': '0-19' },
      });
      assert.equal(first.status, 202, first.text);
      const done = await fresh(`${new URL(first.location!, berth.url).href}&digest=${encodeURIComponent(digest)}`, {
        method: 'PUT', body: data.subarray(20), headers: { 'content-type': 'application/octet-stream' },
      });
      assert.equal(done.status, 201, done.text);
      for (let i = 0; i < 6; i++) assert.equal((await fresh(`${berth.url}/v2/cross/app/blobs/${digest}`)).text, data.toString());

      // /metrics counts the requests every worker served, whichever worker answers it
      const before = await baseCount(berth.url);
      for (let i = 0; i < 20; i++) assert.equal((await fresh(`${berth.url}/v2/`)).status, 200);
      for (let i = 0; i < 4; i++) assert.equal(await baseCount(berth.url), before + 20);

      // the workers stop with a killed primary: none goes on serving or holding the port
      const workers = workerPids(primary);
      assert.equal(workers.length, 2);
      berth.child.kill('SIGKILL');
      await waitFor('the workers gone', () => workers.every((pid) => !alive(pid)));
    } finally {
      await berth.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('answer connections made as soon as the port listens, before any worker serves', async () => {
    const root = tempDir();
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const child = spawn(LAUNCHER, ['serve', '--addr', `127.0.0.1:${port}`, '--root', root, '--workers', '2'], {
      env: launcherEnv({ REGISTRY_LOG_LEVEL: 'info' }), stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (c) => { output += c; });
    try {
      await waitFor('the port listening', () => output.includes('berth is listening'));
      assert.doesNotMatch(output, /worker is serving/, 'a worker was up already: this test would prove nothing');
      const answers = await Promise.all(Array.from({ length: 8 }, () => fresh(`http://127.0.0.1:${port}/v2/`).then((r) => r.status, (e: Error) => e.message)));
      assert.deepEqual(answers, Array(8).fill(200));
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('replace a worker killed while it starts, and stop when a worker fails to start', async (t) => {
    const root = tempDir();
    // loaded by every process: a worker takes 3 s to start, or fails to start when asked
    const preload = join(root, 'slow-worker.mjs');
    writeFileSync(preload, [
      "import cluster from 'node:cluster';",
      'if (cluster.isWorker) {',
      '  if (process.env.TEST_WORKER_FAILS) process.exit(3);',
      '  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);',
      '}', ''].join('\n'));
    const env = { REGISTRY_HTTP_WORKERS: '2', REGISTRY_LOG_LEVEL: 'info', REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
      NODE_OPTIONS: `--import=${pathToFileURL(preload).href}` };
    const starting = startBerth(join(root, 'data'), env);
    starting.catch(() => undefined);
    t.after(async () => { await (await starting.catch(() => undefined))?.stop(); });
    // the primary: of the processes serving this root, the one whose children are the workers
    let primary = 0;
    await waitFor('the workers forked', () => {
      primary = pgrep('-f', '--', `--root ${join(root, 'data')}$`).find((pid) => workerPids(pid).length === 2) ?? 0;
      return primary !== 0;
    });
    const victim = workerPids(primary)[0]!;
    process.kill(victim, 'SIGKILL'); // well within its 3 s start
    const berth = await starting;
    try {
      await waitFor('the killed worker replaced, and both serving', () =>
        serving(berth) >= 2 && workerPids(primary).length === 2, 20_000);
      assert.doesNotMatch(berth.log(), new RegExp(`"pid":${victim},"msg":"worker is serving"`), 'the worker killed had not served');
      assert.match(berth.log(), /a worker process exited: its locks are released and a new one starts/);
      assert.equal((await fresh(`${berth.url}/v2/`)).status, 200);
    } finally {
      await berth.stop();
    }
    // a worker that exits on its own before it ever served: the registry stops, with an error
    const failing = spawn(LAUNCHER, ['serve', '--addr', '127.0.0.1:0', '--root', join(root, 'data2')],
      { env: launcherEnv({ ...env, TEST_WORKER_FAILS: '1' }), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    failing.stdout.on('data', (c) => { output += c; });
    failing.stderr.on('data', (c) => { output += c; });
    const code = await new Promise<number | null>((resolve) => failing.once('exit', (c) => resolve(c)));
    assert.notEqual(code, 0, output);
    assert.match(output, /a worker process exited before it could serve: stopping/);
    rmSync(root, { recursive: true, force: true });
  });

  it('refuse to start when the workers could not agree (a token key made at startup)', () => {
    const root = tempDir();
    const config = join(root, 'config.yml');
    writeFileSync(config, ['version: 0.1', 'http:', '  addr: 127.0.0.1:0', '  workers: 2',
      'tokenserver:', '  enabled: true', `  htpasswd: ${join(root, 'htpasswd')}`, `storage:`, `  filesystem:`, `    rootdirectory: ${root}`, ''].join('\n'));
    writeFileSync(join(root, 'htpasswd'), '');
    try {
      execFileSync(LAUNCHER, ['serve', '--config', config], { env: launcherEnv({}), encoding: 'utf8', stdio: 'pipe', timeout: 20_000 });
      assert.fail('it started');
    } catch (err) {
      const { status, stderr, stdout } = err as { status: number; stderr: string; stdout: string };
      assert.notEqual(status, 0);
      assert.match(`${stderr}${stdout}`, /tokenserver\.key is not set.*set tokenserver\.key/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

function alive(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== undefined && state !== 'Z';
  } catch {
    return false;
  }
}

async function baseCount(url: string): Promise<number> {
  const text = (await fresh(`${url}/metrics`)).text;
  const line = text.split('\n').find((l: string) => l.startsWith('berth_http_requests_total{route="base",method="GET",status="200"}'));
  return line ? Number(line.split(' ').pop()) : 0;
}
