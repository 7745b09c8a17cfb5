// Push and pull throughput on S3 (a RADOS Gateway from test/support/s3.sh), Berth beside the
// reference registry (registry:2's s3 driver, Debian's docker-registry) on the same gateway, in
// one run: a new 200 MiB image (four layers of incompressible bytes) each round, pushed by
// skopeo from a local directory, then pulled back to one, with redirects to presigned URLs
// (both registries' default) and with storage.redirect.disable (the registry streams).
//
//   npm run build && node dist/test/bench/s3-push-pull.js [ROUNDS]
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, run, SUPPORT } from '../helpers/clients.js';
import { tempDir } from '../helpers/registry.js';
import { s3Bucket } from '../helpers/s3.js';
import { startBerthOnS3 } from '../helpers/s3-berth.js';

const ROUNDS = Number(process.argv[2] ?? 3);
const LAYERS = [80 << 20, 60 << 20, 40 << 20, 20 << 20];
const MIB = LAYERS.reduce((a, b) => a + b, 0) / (1 << 20);
const REF = join(SUPPORT, 'ref-registry.sh');
const work = tempDir('bench-s3-');

const { server, bucket: berthBucket } = await s3Bucket('bench-berth');
const { bucket: refBucket } = await s3Bucket('bench-ref');
const berth = await startBerthOnS3(work, server, berthBucket, '', { quiet: true });
const berthStreaming = await startBerthOnS3(work, server, berthBucket, '  redirect:\n    disable: true\n', { quiet: true });
const keys = { S3_ACCESS_KEY_ID: server.accessKey, S3_SECRET_ACCESS_KEY: server.secretKey };
const refs: { dir: string; host: string }[] = [];
for (const disable of ['false', 'true']) {
  const dir = join(work, `ref-${disable}`);
  const port = await freePort();
  await run('bash', [REF, 'start', dir, String(port), '--s3', server.endpoint, refBucket], { ...keys, REF_REDIRECT_DISABLE: disable });
  refs.push({ dir, host: `127.0.0.1:${port}` });
}

/** A new image in skopeo's dir: format. */
function makeImage(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const digestOf = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const layers = LAYERS.map((size) => {
    const bytes = randomBytes(size);
    const hex = digestOf(bytes);
    writeFileSync(join(dir, hex), bytes);
    return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${hex}`, size };
  });
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, seed: randomBytes(8).toString('hex') }));
  writeFileSync(join(dir, digestOf(config)), config);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${digestOf(config)}`, size: config.length }, layers,
  }));
  writeFileSync(join(dir, 'version'), 'Directory Transport Version: 1.1\n');
}

async function timed(args: string[]): Promise<number> {
  const started = process.hrtime.bigint();
  await run('skopeo', ['copy', '--quiet', ...args]);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function pull(host: string, name: string): Promise<number> {
  const out = join(work, 'out');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out);
  return timed(['--src-tls-verify=false', `docker://${host}/${name}:v1`, `dir:${out}`]);
}

const rows: Record<string, number[]> = {
  'push, Berth': [], 'push, registry:2': [],
  'pull with redirects, Berth': [], 'pull with redirects, registry:2': [],
  'pull streamed, Berth': [], 'pull streamed, registry:2': [],
};
try {
  const image = join(work, 'image');
  for (let i = 0; i < ROUNDS; i++) {
    makeImage(image);
    const name = `bench/img${i}`;
    rows['push, Berth']!.push(await timed(['--dest-tls-verify=false', `dir:${image}`, `docker://${berth.host}/${name}:v1`]));
    rows['push, registry:2']!.push(await timed(['--dest-tls-verify=false', `dir:${image}`, `docker://${refs[0]!.host}/${name}:v1`]));
    rows['pull with redirects, Berth']!.push(await pull(berth.host, name));
    rows['pull with redirects, registry:2']!.push(await pull(refs[0]!.host, name));
    rows['pull streamed, Berth']!.push(await pull(berthStreaming.host, name));
    rows['pull streamed, registry:2']!.push(await pull(refs[1]!.host, name));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  console.log(`${MIB} MiB image (4 layers), skopeo, ${ROUNDS} rounds: median MiB/s (seconds of each run)`);
  for (const [what, xs] of Object.entries(rows)) {
    console.log(`${what.padEnd(34)} ${(MIB / median(xs)).toFixed(0).padStart(4)} MiB/s  (${xs.map((x) => x.toFixed(2)).join(', ')} s)`);
  }
} finally {
  await berth.stop();
  await berthStreaming.stop();
  for (const { dir } of refs) await run('bash', [REF, 'stop', dir]).catch(() => undefined);
}
