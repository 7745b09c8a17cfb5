// The composition root: the one place that builds the storage driver, the registry services
// and the HTTP server from a configuration.
import { createServer as createHttpServer, type Server } from 'node:http';
import { resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { AccessPolicy } from './auth/access.js';
import { BasicAuthenticator, OPEN_ACCESS, TokenAuthenticator, type Authenticator } from './auth/authenticator.js';
import { FailureThrottle, HtpasswdFile } from './auth/htpasswd.js';
import { defaultPasswordWorkers, PasswordChecker } from './auth/password-pool.js';
import { TokenSigner, TokenVerifier } from './auth/token.js';
import { TokenServer } from './auth/token-server.js';
import type { Config } from './config/load.js';
import { describeDatabase } from './config/database.js';
import type { Listener } from './http/listener.js';
import { createRegistryServer, type Security } from './http/server.js';
import { serveOps, StorageHealth, type OpsEndpoints } from './ops/health.js';
import { instrumentDriver, Metrics } from './ops/metrics.js';
import { Notifier } from './ops/notifications.js';
import { BlobStore } from './registry/blobs.js';
import { CatalogService, walkRepositories, type WalkShare } from './registry/catalog.js';
import { lastGcReport } from './registry/gc.js';
import { LinkMetadataStore } from './registry/link-store.js';
import { CachedMetadataStore } from './registry/cached-metadata.js';
import { Collector, HeartbeatLease, UploadFiguresCache } from './registry/maintenance.js';
import { ManifestService } from './registry/manifests.js';
import type { EventRelay, MetadataStore } from './registry/metadata.js';
import type { Locker } from './registry/locks.js';
import type { Registry } from 'prom-client';
import { ReferrersService, type UnreadableReporter } from './registry/referrers.js';
import { TagService } from './registry/tags.js';
import { UploadService } from './registry/uploads.js';
import { UsageIndex } from './registry/usage.js';
import { LinkUsageSource } from './registry/usage-walk.js';
import { RepositoryInventory } from './registry/inventory.js';
import { UiAssets } from './ui/assets.js';
import { LocalContent, OPEN_POLICY, type ContentReader, type RepositoryPolicy } from './registry/content.js';
import { registerMaintenanceMetrics } from './ops/maintenance-metrics.js';
import { registerProxyMetrics } from './ops/proxy-metrics.js';
import { registerPolicyMetrics } from './ops/policy-metrics.js';
import type { StorageDriver } from './storage/driver.js';
import { PullThroughCache, type CacheObserver } from './proxy/cache.js';
import { UpstreamRoutes } from './proxy/routes.js';
import { Upstream, type UpstreamObserver } from './proxy/upstream.js';
import { FilesystemDriver } from './storage/filesystem.js';
import { MemoryDriver } from './storage/memory.js';
import { createPolicies, type Policies } from './policy/index.js';
import { PULL_FLUSH_MS } from './policy/pulls.js';
import type { S3Driver } from './storage/s3.js';
import type { Database } from './db/index.js';

/** How often a running registry looks for a new `berth gc` report. */
export const GC_WATCH_MS = 5000;

/** How often the usage figures are rebuilt from storage (for changes made by other processes). */
export const USAGE_REFRESH_MS = 10 * 60_000;

/** With the database: how often every process reviews the due collection queues, and refreshes usage figures. */
export const REVIEW_POLL_MS = 5000;
export const DATABASE_USAGE_REFRESH_MS = 30_000;

/** The OCI image-spec's recommended ceiling for a manifest. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Services {
  driver: StorageDriver;
  /** Repository metadata and its coordination: every other service writes through it. */
  store: MetadataStore;
  blobs: BlobStore;
  uploads: UploadService;
  tags: TagService;
  manifests: ManifestService;
  referrers: ReferrersService;
  catalog: CatalogService;
  usage: UsageIndex;
  /** Tags and manifests with sizes and platforms, for the management API and the web UI. */
  inventory: RepositoryInventory;
  /** The web UI's built files. */
  ui: UiAssets;
  collector: Collector;
  openUploads: UploadFiguresCache;
  /** What the read handlers serve: local content, or a pull-through cache in front of it. */
  content: ContentReader;
  /** Which stored repository a request names, and what may be done there. */
  policy: RepositoryPolicy;
  /** The pull-through cache, when proxy upstreams are configured. */
  cache?: PullThroughCache;
  /** Retention, tag immutability and quotas, when `policies.rules` are configured. */
  policies?: Policies;
  /** What the metadata store remembers of storage (on S3), cleared when another process collected. */
  metadataCache?: CachedMetadataStore;
  /** PostgreSQL as the metadata index, when `database.enabled`. */
  database?: Database;
}

let s3Driver: typeof S3Driver | undefined;
let databaseModules: { index: typeof import('./db/index.js'); metrics: typeof import('./db/metrics.js') } | undefined;

/**
 * Loads what `config` names beyond the built-in parts: the S3 driver brings the AWS SDK (about
 * 20 MiB of memory and 150 ms of startup), the database its client; a registry on local disk
 * with link files does without both. Call it before createDriver or createApp.
 */
export async function loadDriver(config: Config): Promise<void> {
  if (config.storage.driver === 's3') s3Driver ??= (await import('./storage/s3.js')).S3Driver;
  if (config.database) {
    databaseModules ??= { index: await import('./db/index.js'), metrics: await import('./db/metrics.js') };
  }
}

export function createDriver(config: Config): StorageDriver {
  if (config.storage.driver === 's3') {
    if (!s3Driver) throw new Error('the S3 driver is not loaded: await loadDriver(config) before createDriver');
    return new s3Driver(config.storage.s3!);
  }
  return config.storage.driver === 'inmemory' ? new MemoryDriver() : new FilesystemDriver(resolve(config.storage.rootDirectory));
}

/** How stale storage's record of a blob's last use may be: well within the grace period. */
function persistStep(graceMs: number): number {
  return Math.max(0, Math.min(60_000, Math.floor(graceMs / 4)));
}

/** How one of several processes serving one registry (`http.workers`) works with the others. */
export interface Coordination {
  /** Locks shared by every worker. */
  locks: Locker;
  /** Metadata events shared by every worker. */
  relay: EventRelay;
  /** Catalog walks shared by every worker. */
  walks?: WalkShare;
  /** Whether this process runs the scheduled work (collection, purges, retention, expiry). */
  leader: boolean;
  /** The whole registry's metrics, for /metrics. */
  metrics(registry: Registry): () => Promise<{ text: string; contentType: string }>;
}

export interface ServiceHooks {
  coordination?: Coordination;
  onUnreadable?: UnreadableReporter;
  log?: Logger;
  proxyMetrics?: CacheObserver & UpstreamObserver;
}

const silentLog = pino({ level: 'silent' });

/** How long another process's deletion may go unseen by a process on S3 (see CachedMetadataStore). */
export const S3_METADATA_TTL_MS = 10_000;

export function createServices(config: Config, driver: StorageDriver = createDriver(config), hooks: ServiceHooks = {}): Services {
  const log = hooks.log;
  // with a database, it is the index (no link files); else link files, remembered on S3 where every read is a round trip
  if (config.database && !databaseModules) throw new Error('the database client is not loaded: await loadDriver(config) before createServices');
  const database = config.database ? databaseModules!.index.openDatabase(config.database, driver, config.storage.gc.graceMs, log) : undefined;
  const { coordination } = hooks;
  const links = () => new LinkMetadataStore(driver, persistStep(config.storage.gc.graceMs), coordination?.locks, coordination?.relay);
  const base: MetadataStore = database?.store ?? (driver.name === 's3' ? new CachedMetadataStore(links(), S3_METADATA_TTL_MS) : links());
  const usage = new UsageIndex(base, database?.usage ?? new LinkUsageSource(base, driver));
  // client writes go through the policies' write guard; collection, retention and the cache's copies do not
  const { policies, store } = createPolicies(config, base, usage, driver, {
    onProgress: log ? (detail, message) => log.info(detail, message) : undefined,
    onRemove: log ? (what, detail, dryRun) => log.info(detail, `retention${dryRun ? ' (dry run): would remove' : ': removed'} ${what}`) : undefined,
  });
  const blobs = new BlobStore(driver, store);
  const tags = new TagService(store);
  const manifests = new ManifestService(store, blobs, MAX_MANIFEST_BYTES);
  const uploads = new UploadService(driver, store, config.http.secret);
  const catalog = new CatalogService(driver, undefined, database?.catalog, coordination?.walks);
  store.subscribe((event) => {
    if (event.type === 'repository-deleted') catalog.remove(event.name);
    if (event.type === 'manifest-put') catalog.add(event.name);
  });
  const collector = new Collector(base, driver, uploads, config.storage.gc, {
    onUnreadable: hooks.onUnreadable,
    onProgress: log ? (detail, message) => log.info(detail, message) : undefined,
    onDelete: log ? (what, detail) => log.debug(detail, `${config.storage.gc.dryRun ? 'would delete' : 'deleted'} ${what}`) : undefined,
  }, database ? (options) => database.reviewer.collect(options) : undefined);
  const local = new LocalContent(blobs, manifests, tags, config.storage.redirect);
  let content: ContentReader = local;
  let cache: PullThroughCache | undefined;
  let policy: RepositoryPolicy = OPEN_POLICY;
  if (config.proxy.upstreams.length > 0) {
    const routes = new UpstreamRoutes(config.proxy.upstreams.map((u) => new Upstream(u, hooks.proxyMetrics)));
    policy = routes;
    if (config.storage.readOnly) {
      // nothing may be written, so nothing new is cached: mirrored repositories serve what storage holds
      log?.warn('storage is read-only: the pull-through cache serves only what it holds and fetches nothing from its upstreams');
    } else {
      content = cache = new PullThroughCache({
        local, routes, store: base, blobs, driver, maxManifestBytes: MAX_MANIFEST_BYTES, repositories: () => catalog.list(),
        log: log ?? silentLog, observer: hooks.proxyMetrics,
      });
    }
  }
  if (policies) content = policies.readsOf(content);
  return {
    driver, store, blobs, uploads, tags, manifests, catalog, collector, content, policy, cache, policies, usage,
    referrers: new ReferrersService(store, manifests, hooks.onUnreadable),
    inventory: new RepositoryInventory(store, manifests, blobs, usage),
    metadataCache: base instanceof CachedMetadataStore ? base : undefined, database,
    ui: new UiAssets(),
    openUploads: new UploadFiguresCache(driver, uploads),
  };
}

export interface App {
  services: Services;
  server: Listener;
  /** The token server's own listener, when `tokenserver.addr` is set. */
  tokenListener?: Server;
  /** The debug listener (metrics, /debug/health), when `http.debug.addr` is set. */
  debugListener?: Server;
  metrics?: Metrics;
  notifier: Notifier;
  /** Starts background work: upload purging, health checks, delivery of spooled notifications. */
  start(): Promise<void>;
  /** Stops background work and flushes notification spool writes; the caller closes the servers. */
  stop(): Promise<void>;
}

/** Builds authentication: htpasswd, bearer tokens (third-party or the embedded token server), or none. */
export function createSecurity(config: Config, log: Logger): Security & { standalone?: TokenServer; passwords: PasswordChecker } {
  const policy = new AccessPolicy(config.access);
  const throttle = new FailureThrottle();
  const limits = config.http.limits;
  const checker = new PasswordChecker(limits.passwordWorkers ?? defaultPasswordWorkers(), limits.passwordQueue);
  let tokenServer: TokenServer | undefined;
  let signer: TokenSigner | undefined;
  const ts = config.tokenServer;
  if (ts.enabled) {
    if (!ts.key) log.warn('tokenserver.key is not set: tokens are signed with a key made at startup, valid for this process only');
    signer = new TokenSigner(ts.key || undefined, ts.issuer, ts.service, ts.expirationMs);
    const users = new HtpasswdFile(ts.htpasswd, (n) => log.info({ users: n, path: ts.htpasswd }, 'token server users loaded'), checker);
    tokenServer = new TokenServer(signer, users, policy, ts.service, throttle, log);
  }
  let authenticator: Authenticator = OPEN_ACCESS;
  const { htpasswd, token } = config.auth;
  if (htpasswd) {
    const users = new HtpasswdFile(htpasswd.path, (n) => log.info({ users: n, path: htpasswd.path }, 'htpasswd users loaded'), checker);
    authenticator = new BasicAuthenticator(users, policy, htpasswd.realm, throttle);
  } else if (token || signer) {
    // the embedded token server alone implies token authentication against its own key
    const verifier = new TokenVerifier({
      issuer: token?.issuer ?? ts.issuer, service: token?.service ?? ts.service,
      rootCertBundle: token?.rootCertBundle, jwks: token?.jwks, keys: signer ? [signer.publicKey] : [],
    });
    // the realm defaults to this listener's token path, below the request's (prefixed) base URL
    authenticator = new TokenAuthenticator(verifier, policy, token?.realm, ts.path, token?.service ?? ts.service);
  } else if (policy.hasRules) {
    log.warn('access.rules are set but no authentication is configured (auth.htpasswd, auth.token or tokenserver): everyone may do everything');
  }
  return ts.addr ? { authenticator, standalone: tokenServer, passwords: checker } : { authenticator, tokenServer, passwords: checker };
}

/** A listener that serves only the token server (`tokenserver.addr`, or `berth token-server`). */
export function createTokenListener(tokenServer: TokenServer, path: string, log: Logger): Server {
  return createHttpServer((req, res) => {
    const [pathname, search] = (req.url ?? '/').split('?');
    if (pathname !== path) {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"error":"not_found"}');
      return;
    }
    tokenServer.handle(req, res, new URLSearchParams(search ?? '')).catch((err) => {
      log.error({ err }, 'token server error');
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
}

export function createApp(config: Config, log: Logger, driver?: StorageDriver, coordination?: Coordination): App {
  const baseDriver = driver ?? createDriver(config);
  const metrics = config.debug.prometheus ? new Metrics(() => lastGcReport(baseDriver)) : undefined;
  if (metrics && coordination) metrics.gather = coordination.metrics(metrics.registry);
  // with several workers, one of them runs the scheduled work
  const leader = coordination?.leader ?? true;
  const storage = metrics ? instrumentDriver(baseDriver, metrics) : baseDriver;
  const services = createServices(config, storage, {
    log, coordination,
    proxyMetrics: metrics && config.proxy.upstreams.length > 0 ? registerProxyMetrics(metrics.registry) : undefined,
    onUnreadable: (name, digest, reason) => {
      maintenanceMetrics?.unreadable.inc();
      log.warn({ repository: name, digest: digest.toString(), reason }, 'stored manifest cannot be read: everything it might reference is kept');
    },
  });
  const maintenanceMetrics = metrics ? registerMaintenanceMetrics(metrics.registry, services) : undefined;
  if (metrics && services.database) databaseModules!.metrics.registerDatabaseMetrics(metrics.registry, services.database);
  if (metrics && services.policies) registerPolicyMetrics(metrics.registry, services.policies, services.usage);
  const lease = new HeartbeatLease(storage);
  const security = createSecurity(config, log);
  const notifier = new Notifier(config.notifications, storage, log, metrics);
  const health = config.health.storage ? new StorageHealth(storage, config.health.intervalMs, config.health.threshold) : undefined;
  // metrics go to the debug listener when there is one, else to the main listener -- unless
  // authentication is on there: then they would be readable by anyone, so only the debug listener serves them
  const readiness = services.database ? { database: services.database } : {};
  const onDebug: OpsEndpoints = { driver: storage, metrics, metricsPath: config.debug.metricsPath, health, ...readiness };
  const authenticated = !!(config.auth.htpasswd || config.auth.token || config.tokenServer.enabled);
  const onMain: OpsEndpoints = config.debug.addr ? { driver: storage, ...readiness } : authenticated ? { driver: storage, health, ...readiness } : onDebug;
  if (authenticated && metrics && !config.debug.addr) {
    log.warn('authentication is on: /metrics is not served on the main listener; set http.debug.addr to expose metrics on a private address');
  }
  const server = createRegistryServer(services, config, log, security, { metrics, notifier, endpoints: onMain });
  const tokenListener = security.standalone ? createTokenListener(security.standalone, config.tokenServer.path, log) : undefined;
  const debugListener = config.debug.addr ? createHttpServer((req, res) => {
    if (!serveOps(req.url?.split('?')[0] ?? '/', req, res, onDebug)) res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
  }) : undefined;
  const timers: NodeJS.Timeout[] = [];
  const purging = config.storage.uploadPurging;
  return {
    services, server, tokenListener, debugListener, metrics, notifier,
    start: async () => {
      const { database } = services;
      if (database) {
        await database.ready(log);
        log.info({ database: describeDatabase(database.config), pool: database.config.pool.maxOpen }, 'metadata index: PostgreSQL');
      }
      if (purging.enabled && !config.storage.readOnly && leader) {
        const purge = () => purgeUploads(services, purging.ageMs, purging.dryRun, log)
          .catch((err) => log.error({ err }, 'upload purging failed'));
        timers.push(setTimeout(purge, Math.min(purging.intervalMs, 60_000)).unref());
        timers.push(setInterval(purge, purging.intervalMs).unref());
      }
      health?.start();
      const cache = services.cache;
      if (cache && !config.storage.readOnly && leader) {
        const upstreams = config.proxy.upstreams;
        log.info({ upstreams: upstreams.map((u) => ({ prefix: u.prefix ? `${u.prefix}/` : '(default)', remoteurl: u.remoteUrl,
          auth: u.username ? 'credentials' : 'anonymous', ttl: u.ttlMs / 1000, tagttl: u.tagTtlMs / 1000 })) }, 'pull-through cache');
        const every = Math.max(1000, Math.min(3_600_000, Math.min(...upstreams.map((u) => u.ttlMs)) / 4));
        const expire = () => cache.expire().catch((err) => log.error({ err }, 'expiry of cached tags failed'));
        timers.push(setInterval(expire, every).unref());
      }
      if (leader) await notifier.start(); // picks up what earlier runs spooled
      if (!config.storage.readOnly) await lease.start();
      services.usage.ready().catch((err) => log.error({ err }, 'usage index could not be built'));
      // the web UI's files are read now, so that a missing build is said at startup, not on a browser's first visit
      if (config.ui.enabled) services.ui.get('index.html').catch((err: Error) => log.warn(`${err.message}; browsers get 503 at /`));
      const { collector } = services;
      // an offline `berth gc --force` runs as its own process: when its report changes, cached sizes may be stale
      let lastGc = (await lastGcReport(storage).catch(() => undefined))?.finishedAt;
      collector.onFinished((report) => {
        lastGc = report.finishedAt;
        log.info(report, report.dryRun ? 'garbage collection (dry run) done' : 'garbage collection done');
        services.usage.rebuild().catch((err) => log.error({ err }, 'usage index could not be rebuilt'));
      });
      const gc = config.storage.gc;
      if (gc.enabled && !config.storage.readOnly && leader) {
        const run = () => collector.run().catch((err) => log.error({ err }, 'garbage collection failed'));
        timers.push(setInterval(run, gc.intervalMs).unref());
        if (database) timers.push(startReviews(database, gc, log));
      }
      if (database) timers.push(setInterval(() => void services.usage.rebuild().catch(() => undefined), DATABASE_USAGE_REFRESH_MS).unref());
      timers.push(setInterval(() => {
        lastGcReport(storage).then((report) => {
          if (report && report.finishedAt !== lastGc) {
            lastGc = report.finishedAt;
            services.blobs.forgetAll();
            services.metadataCache?.forgetAll();
            services.usage.rebuild().catch(() => undefined);
            log.info({ gc: report }, 'garbage collection ran in another process: blob caches cleared');
          }
        }, () => undefined);
      }, GC_WATCH_MS).unref());
      // changes made by other processes sharing the storage reach the usage figures at least this often
      timers.push(setInterval(() => void services.usage.rebuild().catch(() => undefined), USAGE_REFRESH_MS).unref());
      const policies = services.policies;
      if (policies) timers.push(...startPolicies(policies, config, log, leader));
    },
    stop: async () => {
      timers.forEach(clearTimeout);
      await services.policies?.pulls?.flush().catch((err) => log.warn({ err }, 'pull times could not be written'));
      await lease.stop();
      health?.stop();
      await notifier.stop();
      await security.passwords.close();
      await services.database?.close().catch((err) => log.warn({ err }, 'the database pool did not close cleanly'));
    },
  };
}

/** Online collection: every process reviews what is due in the queues, one pass at a time. */
function startReviews(database: Database, gc: Config['storage']['gc'], log: Logger): NodeJS.Timeout {
  let running = false;
  return setInterval(() => {
    if (running) return;
    running = true;
    database.reviewer.reviewDue({ deleteUntagged: gc.deleteUntagged, dryRun: gc.dryRun,
      onDelete: (what, detail) => log.debug(detail, `${gc.dryRun ? 'would delete' : 'deleted'} ${what}`) })
      .then((totals) => {
        if (totals.blobsDeleted + totals.manifestsDeleted > 0) log.info(totals, gc.dryRun ? 'collection review (dry run)' : 'collection review');
      }, (err) => log.error({ err }, 'collection review failed'))
      .finally(() => { running = false; });
  }, REVIEW_POLL_MS).unref();
}

/** Scheduled retention and the periodic write of pull times; returns their timers. */
function startPolicies(policies: Policies, config: Config, log: Logger, leader: boolean): NodeJS.Timeout[] {
  const timers: NodeJS.Timeout[] = [];
  const { set, retention, pulls } = policies;
  log.info({ rules: set.rules.length, retention: set.hasRetention, quotas: set.hasQuotas,
    interval: config.policies.intervalMs / 1000, dryRun: config.policies.dryRun }, 'policies');
  retention.onFinished((report) => {
    const { tags, manifests, errors, ...summary } = report;
    log.info({ ...summary, errors: errors.length > 0 ? errors : undefined },
      report.dryRun ? 'retention (dry run) done: nothing was removed' : 'retention done');
  });
  if (pulls) timers.push(setInterval(() => void pulls.flush().catch((err) => log.warn({ err }, 'pull times could not be written')), PULL_FLUSH_MS).unref());
  if (set.hasRetention && config.policies.intervalMs > 0 && leader) {
    if (config.storage.readOnly) {
      log.warn('storage is read-only: retention does not run');
    } else {
      const run = () => retention.run().catch((err) => log.error({ err }, 'retention failed'));
      timers.push(setInterval(run, config.policies.intervalMs).unref());
    }
  }
  return timers;
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
