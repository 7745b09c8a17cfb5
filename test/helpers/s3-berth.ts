// Berth as its own process on a bucket of the test S3 server (its config file written here), a
// streaming pusher that never holds a layer in memory, and the peak RSS of a process.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { freePort, LAUNCHER, launcherEnv, waitForRegistry } from './clients.js';
import type { S3Server } from './s3.js';
import { atExit } from './scratch.js';

export interface S3Berth {
  url: string;
  host: string;
  child: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

/** `berth serve` with storage.s3 on `bucket`; `extra` is more YAML under storage. */
export async function startBerthOnS3(dir: string, s: S3Server, bucket: string, storageExtra = '',
                                    options: { quiet?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<S3Berth> {
  const port = await freePort();
  const config = join(dir, `berth-${port}.yml`);
  const env = options.env ?? {};
  writeFileSync(config, `version: 0.1
log:
  level: ${options.quiet ? 'warn' : 'info'}
  formatter: json
  accesslog:
    disabled: ${options.quiet ? 'true' : 'false'}
http:
  addr: 127.0.0.1:${port}
  secret: s3-bench-secret
storage:
  delete:
    enabled: true
  s3:
    bucket: ${bucket}
    region: us-east-1
    regionendpoint: ${s.endpoint}
    accesskey: ${s.accessKey}
    secretkey: ${s.secretKey}
    secure: false
${storageExtra}`);
  const child = spawn(LAUNCHER, ['serve', '--config', config], { env: launcherEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const cancel = atExit(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  child.once('exit', cancel);
  let output = '';
  child.stdout!.on('data', (c) => { output += c; });
  child.stderr!.on('data', (c) => { output += c; });
  const url = `http://127.0.0.1:${port}`;
  await waitForRegistry(url, child).catch((err: Error) => { throw new Error(`${err.message}\n${output}`); });
  return {
    url, host: `127.0.0.1:${port}`, child, log: () => output,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

/** Peak resident memory of a process so far, in MiB (VmHWM). */
export function peakRssMiB(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

/**
 * Pushes a blob of `size` bytes made on the fly (each MiB distinct) in one streamed PATCH, as
 * docker does, then the closing PUT; returns its digest.
 */
export async function streamPush(url: string, name: string, size: number): Promise<string> {
  const start = await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`POST: ${start.status} ${await start.text()}`);
  const location = new URL(start.headers.get('location')!, url);
  const hash = createHash('sha256');
  const seed = randomBytes(1 << 20);
  const patched = await new Promise<string>((resolve, reject) => {
    const req = request(location, { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream' } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 202 ? resolve(res.headers.location!) : reject(new Error(`PATCH: ${res.statusCode}`))));
    });
    req.on('error', reject);
    let sent = 0;
    let n = 0;
    const pump = () => {
      while (sent < size) {
        const chunk = Buffer.from(seed.subarray(0, Math.min(seed.length, size - sent)));
        chunk.writeUInt32BE(n++, 0); // every MiB differs
        hash.update(chunk);
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  const digest = `sha256:${hash.digest('hex')}`;
  const put = new URL(patched, url);
  put.searchParams.set('digest', digest);
  const done = await fetch(put, { method: 'PUT' });
  if (done.status !== 201) throw new Error(`PUT: ${done.status} ${await done.text()}`);
  return digest;
}
