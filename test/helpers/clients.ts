// Real processes for end-to-end tests: the berth CLI, skopeo, the reference registry and the
// scripts in ../shared/clients that install and prepare them.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const SHARED = process.env.BERTH_SHARED_DIR ?? resolve(PROJECT_ROOT, '../shared');
export const CLI = join(PROJECT_ROOT, 'dist/src/cli.js');

export function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 300_000): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(command, args, { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolvePromise(stdout);
    });
  });
}

export function requireTool(tool: string): void {
  if (!process.env.PATH?.split(':').some((dir) => existsSync(join(dir, tool)))) {
    throw new Error(`${tool} is not installed: run ${SHARED}/clients/install.sh (as .ci/run does)`);
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePromise(port));
    });
    server.on('error', reject);
  });
}

export async function waitForRegistry(url: string, child?: ChildProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`registry process exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${url}/v2/`);
      if (res.status === 200 || res.status === 401) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`registry at ${url} did not answer within ${timeoutMs} ms`);
}

async function waitForLog(log: () => string, pattern: RegExp, child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(log())) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`berth did not start:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface BerthProcess {
  url: string;
  host: string;
  child: ChildProcess;
  log: () => string;
  stop(): Promise<void>;
}

/** Starts `berth serve` as its own process, as a user would. */
export async function startBerth(root: string, env: NodeJS.ProcessEnv = {}, args: string[] = []): Promise<BerthProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'serve', '--addr', `127.0.0.1:${port}`, '--root', root, ...args], {
    env: { ...process.env, REGISTRY_HTTP_SECRET: 'e2e-secret', REGISTRY_STORAGE_DELETE_ENABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c) => { output += c; });
  child.stderr!.on('data', (c) => { output += c; });
  const tls = !!env.REGISTRY_HTTP_TLS_CERTIFICATE;
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  if (tls) await waitForLog(() => output, /berth is listening/, child);
  else await waitForRegistry(url, child);
  return {
    url, host: `127.0.0.1:${port}`, child, log: () => output,
    stop: () => new Promise((resolvePromise) => {
      if (child.exitCode !== null) return resolvePromise();
      child.once('exit', () => resolvePromise());
      child.kill('SIGTERM');
    }),
  };
}

export interface TestImages {
  dir: string;
  digests: Record<string, string>;
}

let images: Promise<TestImages> | undefined;

/** Test images made offline by ../shared/clients/make-images.sh (once per test process). */
export function testImages(dir: string): Promise<TestImages> {
  images ??= run('bash', [join(SHARED, 'clients/make-images.sh'), dir], { BIG_MIB: process.env.BIG_MIB ?? '0' }).then(() => {
    const digests: Record<string, string> = {};
    for (const line of readFileSync(join(dir, 'digests.txt'), 'utf8').split('\n')) {
      const [name, digest] = line.trim().split(/\s+/);
      if (name && digest) digests[name] = digest;
    }
    return { dir, digests };
  });
  return images;
}
