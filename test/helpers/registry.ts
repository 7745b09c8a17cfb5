// Test helpers: a real Berth server (in-process, on an ephemeral loopback port) and small
// HTTP helpers that speak the distribution API with fetch.
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createApp, loadDriver, type App } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config/load.js';
import { closeConnections } from '../../src/http/listener.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { tempDir } from './scratch.js';

export { tempDir };

export interface TestRegistry {
  url: string;
  root: string;
  app: App;
  config: Config;
  close(): Promise<void>;
}

export interface StartOptions {
  root?: string;
  overrides?: Record<string, unknown>;
  driver?: StorageDriver;
  keepData?: boolean;
  /** Keep the metadata in PostgreSQL (database.* overrides, e.g. freshDatabase().overrides). */
  database?: Record<string, unknown>;
}

/**
 * BERTH_TEST_METADATA=postgres runs every registry a test starts on a database of its own (the
 * test server of test/helpers/postgres.ts), so the API suites check the database store.
 */
const databases = new Map<string, Promise<Record<string, unknown>>>();

/** One database per storage root (registries restarted on it, or sharing it, see the same metadata). */
async function metadataOverrides(options: StartOptions, root: string): Promise<Record<string, unknown>> {
  if (options.database) return options.database;
  if (process.env.BERTH_TEST_METADATA !== 'postgres' || options.driver) return {};
  let db = databases.get(root);
  if (!db) {
    db = import('./postgres.js').then(async ({ freshDatabase }) => (await freshDatabase()).overrides);
    databases.set(root, db);
  }
  return db;
}

export async function startRegistry(options: StartOptions = {}): Promise<TestRegistry> {
  const root = options.root ?? tempDir('registry-');
  const metadata = await metadataOverrides(options, root);
  const config = loadConfig({
    env: {},
    overrides: {
      // a test that configures another driver (storage.s3.*) has no filesystem root
      ...(Object.keys(options.overrides ?? {}).some((k) => k.startsWith('storage.s3.')) ? {} : { 'storage.filesystem.rootdirectory': root }),
      'storage.delete.enabled': true, 'http.secret': 'test-secret',
      'log.level': 'error', ...metadata, ...options.overrides,
    },
  });
  await loadDriver(config); // the S3 driver (unless one is given) and the database client, when configured
  // BERTH_TEST_LOG=debug shows the registry's log on stderr
  const app = createApp(config, pino({ level: process.env.BERTH_TEST_LOG ?? 'silent' }, pino.destination(2)), options.driver);
  await app.start();
  await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve));
  const { port } = app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, root, app, config,
    close: async () => {
      await app.stop();
      app.tokenListener?.close();
      app.debugListener?.close();
      closeConnections(app.server, true);
      await new Promise<void>((resolve) => app.server.close(() => resolve()));
      if (!options.keepData && !options.root) rmSync(root, { recursive: true, force: true });
    },
  };
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Uploads a blob with POST + PUT (monolithic via the upload session). */
export async function pushBlob(url: string, name: string, data: Buffer | string): Promise<string> {
  const digest = sha256(data);
  const start = await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`POST upload: ${start.status} ${await start.text()}`);
  const location = new URL(start.headers.get('location')!, url);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, {
    method: 'PUT', body: Buffer.from(data), headers: { 'Content-Type': 'application/octet-stream' },
  });
  if (put.status !== 201) throw new Error(`PUT upload: ${put.status} ${await put.text()}`);
  return digest;
}

export interface PushedImage {
  manifest: Buffer<ArrayBuffer>;
  digest: string;
  config: string;
  layers: string[];
}

/** Pushes a small OCI image (config + layers) and its manifest under `reference`. */
export async function pushImage(url: string, name: string, reference: string, seed = 'x', extra: Record<string, unknown> = {}): Promise<PushedImage> {
  const configBody = JSON.stringify({ architecture: 'amd64', os: 'linux', seed });
  const config = await pushBlob(url, name, configBody);
  const layerBody = Buffer.from(`layer for ${seed}`);
  const layer = await pushBlob(url, name, layerBody);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: Buffer.byteLength(configBody) },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer, size: layerBody.length }],
    ...extra,
  }));
  const res = await fetch(`${url}/v2/${name}/manifests/${reference}`, {
    method: 'PUT', body: manifest, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
  });
  if (res.status !== 201) throw new Error(`PUT manifest: ${res.status} ${await res.text()}`);
  return { manifest, digest: sha256(manifest), config, layers: [layer] };
}

export async function errorCodes(res: Response): Promise<string[]> {
  const body = (await res.json()) as { errors: { code: string }[] };
  return body.errors.map((e) => e.code);
}

/**
 * A collection removes only what was last used before it started, to the millisecond (file times
 * have finer grain than the clock it reads): content written in the same millisecond as the
 * start is kept. Tests that expect content written just before to be collected wait past it.
 */
export const afterTheWrites = () => new Promise((resolve) => setTimeout(resolve, 5));
