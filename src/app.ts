// The composition root: the one place that builds the storage driver, the registry services
// and the HTTP server from a configuration.
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config/load.js';
import { createRegistryServer } from './http/server.js';
import { BlobStore } from './registry/blobs.js';
import { CatalogService, walkRepositories } from './registry/catalog.js';
import { ManifestService } from './registry/manifests.js';
import { ReferrersService } from './registry/referrers.js';
import { TagService } from './registry/tags.js';
import { UploadService } from './registry/uploads.js';
import type { StorageDriver } from './storage/driver.js';
import { FilesystemDriver } from './storage/filesystem.js';
import { MemoryDriver } from './storage/memory.js';

/** The OCI image-spec's recommended ceiling for a manifest. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Services {
  driver: StorageDriver;
  blobs: BlobStore;
  uploads: UploadService;
  tags: TagService;
  manifests: ManifestService;
  referrers: ReferrersService;
  catalog: CatalogService;
}

export function createDriver(config: Config): StorageDriver {
  return config.storage.driver === 'inmemory' ? new MemoryDriver() : new FilesystemDriver(resolve(config.storage.rootDirectory));
}

export function createServices(config: Config, driver: StorageDriver = createDriver(config)): Services {
  const blobs = new BlobStore(driver);
  const tags = new TagService(driver);
  const manifests = new ManifestService(driver, blobs, tags, MAX_MANIFEST_BYTES);
  return {
    driver,
    blobs,
    uploads: new UploadService(driver, blobs, config.http.secret),
    tags,
    manifests,
    referrers: new ReferrersService(driver, manifests),
    catalog: new CatalogService(driver),
  };
}

export interface App {
  services: Services;
  server: Server;
  /** Stops background work (upload purging); the caller closes the server. */
  stop(): void;
}

export function createApp(config: Config, log: Logger, driver?: StorageDriver): App {
  const services = createServices(config, driver);
  const server = createRegistryServer(services, config, log);
  const timers: NodeJS.Timeout[] = [];
  const purging = config.storage.uploadPurging;
  if (purging.enabled && !config.storage.readOnly) {
    const purge = () => purgeUploads(services, purging.ageMs, purging.dryRun, log)
      .catch((err) => log.error({ err }, 'upload purging failed'));
    timers.push(setTimeout(purge, Math.min(purging.intervalMs, 60_000)).unref());
    timers.push(setInterval(purge, purging.intervalMs).unref());
  }
  return { services, server, stop: () => timers.forEach(clearTimeout) };
}

/** Removes uploads older than `ageMs` in every repository. */
export async function purgeUploads(services: Services, ageMs: number, dryRun: boolean, log: Logger): Promise<number> {
  const olderThan = new Date(Date.now() - ageMs);
  let removed = 0;
  for (const name of await walkRepositories(services.driver, '_uploads')) {
    if (dryRun) {
      log.info({ repository: name }, 'upload purging (dry run): would purge old uploads');
      continue;
    }
    removed += await services.uploads.purge(name, olderThan);
  }
  log.info({ removed, olderThan }, 'upload purging done');
  return removed;
}
