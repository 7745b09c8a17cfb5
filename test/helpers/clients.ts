// Real processes for end-to-end tests: the berth CLI, the real clients and the reference
// registry, the scripts in test/support that install and prepare them, and `needs`, which skips
// a test when what it drives is not installed here.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { atExit } from './scratch.js';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** Scripts that install and run the real clients and servers: see test/support/*.sh. */
export const SUPPORT = join(PROJECT_ROOT, 'test/support');
export const CLI = join(PROJECT_ROOT, 'dist/src/cli.js');
/** The `berth` command as installed (bin/berth): the CLI under the Node.js settings it is measured with. */
export const LAUNCHER = join(PROJECT_ROOT, 'bin/berth');
/** The environment for LAUNCHER: this Node.js first on PATH. */
export function launcherEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...env, PATH: `${dirname(process.execPath)}:${env.PATH ?? process.env.PATH ?? ''}` };
}

export function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 300_000): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(command, args, { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolvePromise(stdout);
    });
  });
}

const IS_ROOT = process.getuid?.() === 0;
const INSTALL = `${IS_ROOT ? '' : 'sudo '}bash test/support/install.sh`;

/** The private docker daemon (test/support/dockerd.sh) and Debian's docker CLI. */
export const DOCKER_TOOLS = ['root', 'dockerd', 'containerd', 'runc', '/usr/bin/docker'];
/** What test/support/make-images.sh (testImages) needs; the web image also needs busybox. */
export const IMAGE_TOOLS = ['jq', 'skopeo'];

function installed(tool: string): boolean {
  const candidates = isAbsolute(tool) ? [tool] : (process.env.PATH ?? '').split(':').filter(Boolean).map((dir) => join(dir, tool));
  return candidates.some((file) => {
    try { accessSync(file, constants.X_OK); return true; } catch { return false; }
  });
}

/**
 * Why a test cannot run on this machine, in one line, or undefined when it can. Pass it as the
 * test's skip option: `it(title, { skip: needs('skopeo') }, ...)`. Requirements are commands
 * (looked up in PATH, or absolute paths) and 'root'. With BERTH_TEST_CLIENTS=required (CI sets
 * it) nothing is skipped: a missing requirement is an error.
 */
export function needs(...requirements: string[]): string | undefined {
  const missing = [...new Set(requirements.filter((r) => r !== 'root' && !installed(r)).map((r) => basename(r)))];
  let reason: string | undefined;
  if (missing.length > 0) reason = `${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not installed: run ${INSTALL}`;
  else if (requirements.includes('root') && !IS_ROOT) reason = 'needs root (the docker daemon, podman and buildah run rootful): run the tests as root';
  if (reason && process.env.BERTH_TEST_CLIENTS === 'required') throw new Error(`${reason} (BERTH_TEST_CLIENTS=required)`);
  return reason;
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
  const child = spawn(LAUNCHER, ['serve', '--addr', `127.0.0.1:${port}`, '--root', root, ...args], {
    env: launcherEnv({ REGISTRY_HTTP_SECRET: 'e2e-secret', REGISTRY_STORAGE_DELETE_ENABLED: 'true', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const cancel = atExit(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  child.once('exit', cancel);
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
      if (child.exitCode !== null || child.signalCode !== null) return resolvePromise();
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

/** Test images made offline by test/support/make-images.sh (once per test process). */
export function testImages(dir: string): Promise<TestImages> {
  images ??= run('bash', [join(SUPPORT, 'make-images.sh'), dir]).then(() => {
    const digests: Record<string, string> = {};
    for (const line of readFileSync(join(dir, 'digests.txt'), 'utf8').split('\n')) {
      const [name, digest] = line.trim().split(/\s+/);
      if (name && digest) digests[name] = digest;
    }
    return { dir, digests };
  });
  return images;
}
