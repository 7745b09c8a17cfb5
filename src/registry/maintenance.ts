// Maintenance inside the serving registry: collection on a schedule and on demand (one run at a
// time), the heartbeat lease that tells an offline `berth gc` a registry is serving this storage,
// and the figures of open uploads.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { walkRepositories } from './catalog.js';
import { collectGarbage, type GcOptions, type GcReport } from './gc.js';
import { LinkMetadataStore } from './link-store.js';
import type { MetadataStore } from './metadata.js';
import { SingleRun } from './single-run.js';
import type { UploadService } from './uploads.js';

const LEASES = '/berth/leases';
/** How often a serving registry renews its lease; a lease older than three periods is stale. */
export const LEASE_RENEW_MS = 10_000;

export interface Lease {
  id: string;
  host: string;
  pid: number;
  renewedAt: string;
}

/** Leases renewed recently enough that their registry is presumably still serving. */
export async function liveLeases(driver: StorageDriver, now = Date.now()): Promise<Lease[]> {
  let names: string[];
  try {
    names = await driver.list(LEASES);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
  const live: Lease[] = [];
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    try {
      const lease = JSON.parse((await driver.getContent(`${LEASES}/${name}`)).toString('utf8')) as Lease;
      if (now - Date.parse(lease.renewedAt) < 3 * LEASE_RENEW_MS) live.push(lease);
    } catch { /* removed meanwhile, or junk */ }
  }
  return live;
}

/** The lease a serving registry keeps in storage while it runs. */
export class HeartbeatLease {
  readonly id = randomUUID();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly driver: StorageDriver) {}

  async start(): Promise<void> {
    await this.renew();
    this.timer = setInterval(() => void this.renew().catch(() => undefined), LEASE_RENEW_MS).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.driver.delete(`${LEASES}/${this.id}.json`).catch(() => undefined);
  }

  private renew(): Promise<void> {
    const lease: Lease = { id: this.id, host: hostname(), pid: process.pid, renewedAt: new Date().toISOString() };
    return this.driver.putContent(`${LEASES}/${this.id}.json`, JSON.stringify(lease), { durable: false });
  }
}

export interface UploadFigures {
  count: number;
  bytes: number;
  oldest?: string;
}

export interface CollectorSettings {
  graceMs: number;
  deleteUntagged: boolean;
  dryRun: boolean;
}

/** How a collection is made: by default a walk (gc.ts); a database reviews its queues instead. */
export type Collect = (options: GcOptions) => Promise<GcReport>;

/** Runs collections one at a time, and keeps the last report. */
export class Collector extends SingleRun<GcReport> {
  constructor(store: MetadataStore, private readonly driver: StorageDriver,
              private readonly uploads: UploadService, readonly settings: CollectorSettings,
              private readonly hooks: Pick<GcOptions, 'onDelete' | 'onProgress' | 'onUnreadable'> = {},
              private readonly collect: Collect = (options) => collectGarbage(store, driver, options)) {
    super();
  }

  /** Starts a collection, or joins the one running; one asked with other settings runs after it. */
  run(overrides: Partial<CollectorSettings> = {}): Promise<GcReport> {
    const settings = { ...this.settings, ...overrides };
    return this.single(Object.keys(overrides).length === 0, () => this.collect({
      ...settings, ...this.hooks,
      purgeUploads: (idleBefore) => this.purgeIdleUploads(idleBefore),
    }), () => this.run(overrides));
  }

  private async purgeIdleUploads(idleBefore: Date): Promise<{ count: number; bytes: number }> {
    const total = { count: 0, bytes: 0 };
    for (const name of await walkRepositories(this.driver, '_uploads')) {
      const removed = await this.uploads.purgeIdle(name, idleBefore);
      total.count += removed.count;
      total.bytes += removed.bytes;
    }
    return total;
  }
}

/** Open uploads across the registry, counted at most every `ttlMs`. */
export class UploadFiguresCache {
  private value: UploadFigures | undefined;
  private at = 0;
  private computing: Promise<UploadFigures> | undefined;

  constructor(private readonly driver: StorageDriver, private readonly uploads: UploadService, private readonly ttlMs = 15_000) {}

  get(): Promise<UploadFigures> {
    if (this.value && Date.now() - this.at < this.ttlMs) return Promise.resolve(this.value);
    this.computing ??= this.compute().then((value) => {
      this.value = value;
      this.at = Date.now();
      return value;
    }).finally(() => { this.computing = undefined; });
    return this.computing;
  }

  private async compute(): Promise<UploadFigures> {
    const figures: UploadFigures = { count: 0, bytes: 0 };
    let oldest = Infinity;
    for (const name of await walkRepositories(this.driver, '_uploads')) {
      for (const upload of await this.uploads.list(name)) {
        figures.count++;
        figures.bytes += upload.size;
        oldest = Math.min(oldest, upload.startedAt.getTime());
      }
    }
    if (Number.isFinite(oldest)) figures.oldest = new Date(oldest).toISOString();
    return figures;
  }
}

/** A collection from outside any serving process (`berth gc`): no grace unless asked for. */
export function collectOffline(driver: StorageDriver, options: Partial<GcOptions> & { dryRun: boolean; deleteUntagged: boolean }): Promise<GcReport> {
  return collectGarbage(new LinkMetadataStore(driver, 0), driver, { graceMs: 0, ...options });
}
