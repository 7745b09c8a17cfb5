// A real S3 server for the tests: Ceph's RADOS Gateway started by test/support/s3.sh, once per
// test process, on free loopback ports, with its data in the process's scratch directory (so it
// is stopped and removed at exit). BERTH_TEST_S3_ENDPOINT (with S3_ACCESS_KEY_ID and
// S3_SECRET_ACCESS_KEY) points the tests at a gateway that is already running instead.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { S3Driver, type S3Options } from '../../src/storage/s3.js';
import { freePort, needs, run, SUPPORT } from './clients.js';
import { atExit, SCRATCH } from './scratch.js';

/** What test/support/s3.sh needs (test/support/install.sh installs it). */
export const S3_TOOLS = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph', 'ceph-authtool', 'monmaptool', 'curl'];

export interface S3Server {
  endpoint: string;
  accessKey: string;
  secretKey: string;
}

/** Why S3 tests cannot run here, or undefined. */
export function needsS3(...more: string[]): string | undefined {
  return process.env.BERTH_TEST_S3_ENDPOINT ? needs(...more) : needs(...S3_TOOLS, ...more);
}

let server: Promise<S3Server> | undefined;

export function s3Server(): Promise<S3Server> {
  server ??= start();
  return server;
}

async function start(): Promise<S3Server> {
  const given = process.env.BERTH_TEST_S3_ENDPOINT;
  if (given) {
    return { endpoint: given, accessKey: process.env.S3_ACCESS_KEY_ID ?? '', secretKey: process.env.S3_SECRET_ACCESS_KEY ?? '' };
  }
  const script = join(SUPPORT, 's3.sh');
  const base = 40000 + Math.floor(Math.random() * 300) * 30; // a window of ports for the OSD
  const env = {
    S3_DIR: join(SCRATCH, 's3'), S3_PORT: String(await freePort()), CEPH_MON_PORT: String(await freePort()),
    CEPH_PORT_MIN: String(base), CEPH_PORT_MAX: String(base + 29),
  };
  atExit(() => { execFileSync('bash', [script, 'stop'], { env: { ...process.env, ...env }, stdio: 'ignore' }); });
  const out = await run('bash', [script, 'start'], env, 300_000);
  const vars = Object.fromEntries([...out.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  return { endpoint: vars.S3_ENDPOINT!, accessKey: vars.S3_ACCESS_KEY_ID!, secretKey: vars.S3_SECRET_ACCESS_KEY! };
}

/** A new, empty bucket on the test server. */
export async function s3Bucket(prefix = 'berth'): Promise<{ server: S3Server; bucket: string }> {
  const s = await s3Server();
  const bucket = `${prefix}-${randomBytes(4).toString('hex')}`;
  const client = new S3Client({
    endpoint: s.endpoint, region: 'us-east-1', forcePathStyle: true,
    credentials: { accessKeyId: s.accessKey, secretAccessKey: s.secretKey },
  });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  client.destroy();
  return { server: s, bucket };
}

/** Driver options for a bucket on the test server, as a config file would give them. */
export function s3Options(s: S3Server, bucket: string, more: Partial<S3Options> = {}): S3Options {
  return {
    bucket, region: 'us-east-1', regionEndpoint: s.endpoint, forcePathStyle: true, secure: false, skipVerify: false,
    accessKey: s.accessKey, secretKey: s.secretKey, rootDirectory: '', chunkSize: 10 << 20,
    multipartCopyChunkSize: 32 << 20, multipartCopyMaxConcurrency: 16, multipartCopyThresholdSize: 32 << 20,
    encrypt: false, useDualStack: false, accelerate: false, redirectExpirySeconds: 1200, ...more,
  };
}

/** Config overrides that put a test registry's storage on a bucket of the test server. */
export function s3Overrides(s: S3Server, bucket: string, more: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'storage.s3.bucket': bucket, 'storage.s3.region': 'us-east-1', 'storage.s3.regionendpoint': s.endpoint,
    'storage.s3.accesskey': s.accessKey, 'storage.s3.secretkey': s.secretKey, 'storage.s3.secure': false, ...more,
  };
}

export function s3Driver(s: S3Server, bucket: string, more: Partial<S3Options> = {}): S3Driver {
  return new S3Driver(s3Options(s, bucket, more));
}
