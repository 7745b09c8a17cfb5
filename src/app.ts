// The composition root: the one place that builds the storage driver, the registry services
// and the HTTP server from a configuration.
import { createServer as createHttpServer, type Server } from 'node:http';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { AccessPolicy } from './auth/access.js';
import { BasicAuthenticator, OPEN_ACCESS, TokenAuthenticator, type Authenticator } from './auth/authenticator.js';
import { FailureThrottle, HtpasswdFile } from './auth/htpasswd.js';
import { TokenSigner, TokenVerifier } from './auth/token.js';
import { TokenServer } from './auth/token-server.js';
import type { Config } from './config/load.js';
import type { Listener } from './http/listener.js';
import { createRegistryServer, type Security } from './http/server.js';
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
  server: Listener;
  /** The token server's own listener, when `tokenserver.addr` is set. */
  tokenListener?: Server;
  /** Stops background work (upload purging); the caller closes the servers. */
  stop(): void;
}

/** Builds authentication: htpasswd, bearer tokens (third-party or the embedded token server), or none. */
export function createSecurity(config: Config, log: Logger): Security & { standalone?: TokenServer } {
  const policy = new AccessPolicy(config.access);
  const throttle = new FailureThrottle();
  let tokenServer: TokenServer | undefined;
  let signer: TokenSigner | undefined;
  const ts = config.tokenServer;
  if (ts.enabled) {
    if (!ts.key) log.warn('tokenserver.key is not set: tokens are signed with a key made at startup, valid for this process only');
    signer = new TokenSigner(ts.key || undefined, ts.issuer, ts.service, ts.expirationMs);
    const users = new HtpasswdFile(ts.htpasswd, (n) => log.info({ users: n, path: ts.htpasswd }, 'token server users loaded'));
    tokenServer = new TokenServer(signer, users, policy, ts.service, throttle, log);
  }
  let authenticator: Authenticator = OPEN_ACCESS;
  const { htpasswd, token } = config.auth;
  if (htpasswd) {
    const users = new HtpasswdFile(htpasswd.path, (n) => log.info({ users: n, path: htpasswd.path }, 'htpasswd users loaded'));
    authenticator = new BasicAuthenticator(users, policy, htpasswd.realm, throttle);
  } else if (token || signer) {
    // the embedded token server alone implies token authentication against its own key
    const verifier = new TokenVerifier({
      issuer: token?.issuer ?? ts.issuer, service: token?.service ?? ts.service,
      rootCertBundle: token?.rootCertBundle, jwks: token?.jwks, keys: signer ? [signer.publicKey] : [],
    });
    authenticator = new TokenAuthenticator(verifier, policy, token?.realm, `${config.http.prefix}${ts.path}`, token?.service ?? ts.service);
  } else if (policy.hasRules) {
    log.warn('access.rules are set but no authentication is configured (auth.htpasswd, auth.token or tokenserver): everyone may do everything');
  }
  return ts.addr ? { authenticator, standalone: tokenServer } : { authenticator, tokenServer };
}

/** A listener that serves only the token server (`tokenserver.addr`, or `berth token-server`). */
export function createTokenListener(tokenServer: TokenServer, path: string, log: Logger): Server {
  return createHttpServer((req, res) => {
    const [pathname, search] = (req.url ?? '/').split('?');
    const reply = pathname === path ? tokenServer.handle(req, res, new URLSearchParams(search ?? ''))
      : Promise.resolve(res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"error":"not_found"}'));
    reply.catch((err) => {
      log.error({ err }, 'token server error');
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
}

export function createApp(config: Config, log: Logger, driver?: StorageDriver): App {
  const services = createServices(config, driver);
  const security = createSecurity(config, log);
  const server = createRegistryServer(services, config, log, security);
  const tokenListener = security.standalone ? createTokenListener(security.standalone, config.tokenServer.path, log) : undefined;
  const timers: NodeJS.Timeout[] = [];
  const purging = config.storage.uploadPurging;
  if (purging.enabled && !config.storage.readOnly) {
    const purge = () => purgeUploads(services, purging.ageMs, purging.dryRun, log)
      .catch((err) => log.error({ err }, 'upload purging failed'));
    timers.push(setTimeout(purge, Math.min(purging.intervalMs, 60_000)).unref());
    timers.push(setInterval(purge, purging.intervalMs).unref());
  }
  return { services, server, tokenListener, stop: () => timers.forEach(clearTimeout) };
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
