#!/usr/bin/env node
// berth: the command line. Parses argv, loads the configuration, starts the registry.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import type * as AppModule from './app.js';
import { ConfigError, loadConfig, parseDuration, type Config } from './config/load.js';
import { DataDirectoryError, prepareDataDirectory } from './config/root.js';
import { createLogger } from './log.js';
import { closeConnections } from './http/listener.js';
import { VERSION } from './version.js';
import { servePrimary, startsWorkers, workerCoordination, workersRefusal } from './cluster/serve.js';
import type { ListenSpec } from './cluster/primary.js';


const MAIN_HELP = `berth ${VERSION} — a container image registry (OCI Distribution API, a drop-in for registry:2)

Usage: berth <command> [options]

Commands:
  serve [CONFIG]          start the registry (default: 0.0.0.0:5000, data in ./data)
  gc [CONFIG]             remove blobs and manifests nothing references (storage no registry serves)
  retention [CONFIG]      apply the retention rules of policies.rules now (--dryrun: only report)
  token-server [CONFIG]   run only the token server (Docker token authentication)
  database SUBCOMMAND     the PostgreSQL metadata index: migrate, status, import (database.enabled)
  health [CONFIG]         exit 0 when the registry CONFIG describes answers on /v2/ (container HEALTHCHECK)
  version                 print the version

Run 'berth <command> --help' for the options of a command.

Examples:
  berth serve                                   # registry on :5000 storing under ./data
  berth serve --config /etc/docker/registry/config.yml
  REGISTRY_HTTP_ADDR=127.0.0.1:5001 berth serve
  docker push localhost:5000/web:v1 && curl localhost:5000/v2/_catalog

Management API (authorised like /v2/; see docs/operations.md):
  curl localhost:5000/api/v1/repositories                 # repositories with tags, bytes, last push
  curl -X DELETE localhost:5000/api/v1/repositories/web   # delete a repository (needs --delete)
  curl -X POST localhost:5000/api/v1/gc                   # collect garbage now, while serving
  curl -X POST 'localhost:5000/api/v1/retention?dryrun=true'  # what retention would remove

Web UI: open http://localhost:5000/ in a browser (ui.enabled: false turns it off).
`;

const SERVE_HELP = `Usage: berth serve [CONFIG] [options]

Starts the registry. Settings come from, in increasing priority: built-in defaults, the
config file (registry:2's config.yml format), REGISTRY_* environment variables, and flags.

Options:
  -c, --config FILE   config file (also the first argument, as with registry:2's 'serve';
                      without either, REGISTRY_CONFIGURATION_PATH)
  -a, --addr ADDR     listen address, host:port or :port (http.addr; default 0.0.0.0:5000)
  -r, --root DIR      data directory (storage.filesystem.rootdirectory; default ./data)
      --delete        allow DELETE of manifests and blobs (storage.delete.enabled)
      --read-only     refuse pushes and deletes (storage.maintenance.readonly.enabled)
      --log-level L   error, warn, info or debug (log.level; default info)
  -w, --workers N     serve from N processes (http.workers; 0: one per CPU core; default 1):
                      they share the port, their locks and their caches' invalidations
  -h, --help          show this help

Metadata in PostgreSQL (see docs/operations.md#postgresql):
  database.enabled       keep the index in PostgreSQL so several processes serve one storage:
                         host, port, user, password, dbname, sslmode, url, pool.maxopen;
                         berth database migrate first (or database.migrate: auto)

Maintenance (see docs/operations.md#garbage-collection):
  storage.maintenance.gc  collect garbage while serving: enabled, interval, grace (1h),
                          deleteuntagged, dryrun; on demand: POST /api/v1/gc

Policies (see docs/configuration.md#policies):
  policies.rules         per repository glob: keep (last, within, matching, protected),
                         untagged.olderthan, immutable tag globs, quota (bytes, tags, repositories)
  policies.interval      how often retention runs (1h; 0: on demand only: POST /api/v1/retention,
                         berth retention); policies.dryrun: only report

Access control (see docs/configuration.md#access-control):
  auth.htpasswd.path     users for Basic authentication (htpasswd -B), reloaded when it changes
  auth.token / tokenserver  Docker token authentication, with or without the embedded token server
  access.rules           who may pull, push and delete which repositories
  http.tls.certificate   serve HTTPS (and HTTP/2); http.tls.clientcas to verify client certificates

Environment: any config key as REGISTRY_<PATH>, e.g.
  REGISTRY_HTTP_ADDR=:5000
  REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry
  REGISTRY_STORAGE_DELETE_ENABLED=true
  REGISTRY_HTTP_SECRET=...   (required when several processes share one storage)
  REGISTRY_STORAGE_S3_BUCKET=registry REGISTRY_STORAGE_S3_REGION=us-east-1
                             (an S3 bucket instead of a directory, registry:2's storage.s3
                             keys: see docs/configuration.md#s3-storage)

See docs/configuration.md for every key.
`;

const GC_HELP = `Usage: berth gc [CONFIG] [options]

Marks every blob that a manifest in any repository references and deletes the rest, like
registry:2's 'garbage-collect'. With database.enabled it reviews what is due in the database's
collection queues instead (no walk; safe while registries serve; --grace brings reviews forward). A running registry collects by itself, safely while it serves
(storage.maintenance.gc, or POST /api/v1/gc); this command is for storage nothing serves. It
refuses to run while a registry serves the storage (seen through the lease each one keeps
under /berth/leases), unless given --force.

Options:
  -c, --config FILE        config file
  -r, --root DIR           data directory
  -d, --dry-run            only report what would be deleted
  -m, --delete-untagged    also delete manifests that no tag points at
  -g, --grace DURATION     keep unreferenced content used more recently than this (default 0,
                           or storage.maintenance.gc.grace with --force)
  -f, --force              run although a registry serves this storage: pushes in progress
                           longer than the grace period may lose blobs they uploaded
  -h, --help               show this help
`;

function fatal(message: string): never {
  process.stderr.write(`berth: ${message}\n`);
  process.exit(2);
}

function configFrom(values: Record<string, unknown>, positionals: string[]): Config {
  const overrides: Record<string, unknown> = {};
  if (values.addr) overrides['http.addr'] = values.addr;
  if (values.root) overrides['storage.filesystem.rootdirectory'] = values.root;
  if (values.delete) overrides['storage.delete.enabled'] = true;
  if (values['read-only']) overrides['storage.maintenance.readonly.enabled'] = true;
  if (values['log-level']) overrides['log.level'] = values['log-level'];
  if (values.workers !== undefined) overrides['http.workers'] = values.workers;
  // as registry:2: the first argument, else REGISTRY_CONFIGURATION_PATH (which the container image sets)
  const file = (values.config as string | undefined) ?? positionals[0] ?? (process.env.REGISTRY_CONFIGURATION_PATH || undefined);
  try {
    return loadConfig({ file, env: process.env, overrides });
  } catch (err) {
    if (err instanceof ConfigError) fatal(`configuration error: ${err.message}`);
    throw err;
  }
}

/**
 * The registry's own code, loaded only by the commands that use it: the primary of several workers
 * (which only accepts connections and holds locks) stays a small process without it.
 */
function loadApp(): Promise<typeof AppModule> {
  return import('./app.js');
}

/**
 * Makes and checks the data directory before anything uses it (a problem stops with the fix), and
 * loads the registry with the storage driver and database modules the configuration names.
 */
async function checkStorage(config: Config): Promise<typeof AppModule> {
  await checkDataDirectory(config);
  const app = await loadApp();
  await app.loadDriver(config);
  return app;
}

async function checkDataDirectory(config: Config): Promise<void> {
  if (config.storage.driver !== 'filesystem') return;
  await prepareDataDirectory(config.storage.rootDirectory).catch((err: Error) => {
    if (err instanceof DataDirectoryError) fatal(`storage is not usable: ${err.message}`);
    throw err;
  });
}

function parseAddr(addr: string, key: string): { port: number; host: string } {
  const match = /^(?:\[?([^\]]*)\]?)?:(\d+)$/.exec(addr);
  if (!match || Number(match[2]) > 65535) {
    fatal(`configuration error: ${key} is ${JSON.stringify(addr)}: use HOST:PORT or :PORT, e.g. 0.0.0.0:5000`);
  }
  return { host: match[1] || '0.0.0.0', port: Number(match[2]) };
}

function listenTarget(config: Config): { port?: number; host?: string; path?: string } {
  if (config.http.net === 'unix') return { path: config.http.addr };
  return parseAddr(config.http.addr, 'http.addr');
}

/** The ports `serve` listens on, with what it says once listening and when it cannot. */
function listenSpecs(config: Config, log: ReturnType<typeof createLogger>): ListenSpec[] {
  const specs: ListenSpec[] = [{
    name: 'main', target: listenTarget(config),
    listening: () => log.info({ addr: config.http.addr, tls: !!config.tls, auth: config.auth.htpasswd ? 'htpasswd' : config.auth.token || config.tokenServer.enabled ? 'token' : 'none', storage: config.storage.driver, root: config.storage.driver === 'filesystem' ? config.storage.rootDirectory : undefined,
      bucket: config.storage.s3?.bucket, redirect: config.storage.s3 ? config.storage.redirect : undefined,
      delete: config.storage.deleteEnabled, readOnly: config.storage.readOnly, ui: config.ui.enabled,
      workers: config.http.workers > 1 ? config.http.workers : undefined, version: VERSION }, 'berth is listening'),
    failed: (err) => err.code === 'EADDRINUSE' ? `${config.http.addr} is already in use: stop the other server or set --addr / REGISTRY_HTTP_ADDR`
      : `cannot listen on ${config.http.addr}: ${err.message}`,
  }];
  if (config.debug.addr) {
    specs.push({
      name: 'debug', target: parseAddr(config.debug.addr, 'http.debug.addr'),
      listening: () => log.info({ addr: config.debug.addr, metrics: config.debug.prometheus }, 'debug listener is listening'),
      failed: (err) => `debug listener cannot listen on ${config.debug.addr}: ${err.message}`,
    });
  }
  if (config.tokenServer.enabled && config.tokenServer.addr) {
    specs.push({
      name: 'token', target: parseAddr(config.tokenServer.addr, 'tokenserver.addr'),
      listening: () => log.info({ addr: config.tokenServer.addr, path: config.tokenServer.path }, 'token server is listening'),
      failed: (err) => `token server cannot listen on ${config.tokenServer.addr}: ${err.message}`,
    });
  }
  return specs;
}

async function serve(argv: string[]): Promise<void> {
  let shutdown = (reason: string): void => fatal(`stopping before the registry served: ${reason}`);
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, options: {
      config: { type: 'string', short: 'c' }, addr: { type: 'string', short: 'a' }, root: { type: 'string', short: 'r' },
      delete: { type: 'boolean' }, 'read-only': { type: 'boolean' }, 'log-level': { type: 'string' },
      workers: { type: 'string', short: 'w' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(SERVE_HELP);
    return;
  }
  const config = configFrom(values, positionals);
  let log = createLogger(config);
  const worker = workerCoordination(() => shutdown('the primary process is gone'));
  if (worker) log = log.child({ worker: worker.slot });
  else {
    for (const note of config.ignored) log.warn(`configuration: ${note}`);
    if (config.http.secretGenerated) {
      log.warn('http.secret is not set: a random one is used; set the same http.secret on every process sharing this storage');
    }
  }
  const specs = listenSpecs(config, log);
  if (startsWorkers(config)) {
    const refusal = workersRefusal(config);
    if (refusal) fatal(`configuration error: ${refusal}`);
    await checkDataDirectory(config);
    process.exit(await servePrimary(config, log, specs));
  }
  const { createApp } = await checkStorage(config);
  const app = createApp(config, log, undefined, worker?.coordination);
  await app.services.driver.ping().catch((err: Error) => fatal(`storage is not usable: ${err.message}`));
  await app.start().catch((err: Error) => {
    if (err.name === 'DatabaseError' || err.constructor.name === 'DatabaseError') fatal(`database is not usable: ${err.message}`);
    throw err;
  });
  const servers = { main: app.server, debug: app.debugListener, token: app.tokenListener };
  if (worker) {
    // the primary listens and hands connections over, once every lock another worker holds is in force here
    await worker.link.joined;
    worker.link.serve(servers);
    log.info({ pid: process.pid }, 'worker is serving');
  } else {
    for (const spec of specs) {
      const server = servers[spec.name]!;
      server.on('error', (err: NodeJS.ErrnoException) => fatal(spec.failed(err)));
      server.listen(spec.target, spec.listening);
    }
  }
  let stopping = false;
  shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, drainMs: config.http.drainTimeoutMs }, 'stopping: finishing requests in flight');
    const exit = () => {
      app.stop().finally(() => {
        log.info('stopped');
        process.exit(0);
      });
    };
    if (worker) {
      void worker.link.drained().then(exit);
    } else {
      app.tokenListener?.close();
      app.debugListener?.close();
      app.server.close(exit);
    }
    closeConnections(app.server, false);
    setTimeout(() => {
      log.warn('drain timeout reached; closing remaining connections');
      closeConnections(app.server, true);
      void app.stop().finally(() => process.exit(0));
    }, config.http.drainTimeoutMs).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  followWrapper(shutdown);
}

/**
 * Under npm (`npx berth serve`, `npm start`) Berth runs below `sh -c`, and a signal sent to npm's
 * process reaches only that shell, which dies and leaves Berth running. So when npm started it,
 * Berth stops as it would on SIGTERM once its parent (or npm above that shell) is gone.
 */
function followWrapper(shutdown: (reason: string) => void): void {
  if (!process.env.npm_command && !process.env.npm_lifecycle_event) return;
  const parent = process.ppid;
  const watched = [parent];
  const grandparent = procStat(parent)?.ppid;
  if (grandparent && grandparent > 1 && /^(sh|dash|bash|ash|zsh|busybox)$/.test(procComm(parent))) watched.push(grandparent);
  const timer = setInterval(() => {
    if (process.ppid === parent && watched.every(alive)) return;
    clearInterval(timer);
    shutdown('the npm process that started berth exited');
  }, 200);
  timer.unref();
}

function procStat(pid: number): { state: string; ppid: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, ppid] = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: state!, ppid: Number(ppid) };
  } catch {
    return undefined;
  }
}

function procComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = procStat(pid)?.state;
  return state !== 'Z' && state !== 'X';
}

async function gc(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, options: {
      config: { type: 'string', short: 'c' }, root: { type: 'string', short: 'r' },
      'dry-run': { type: 'boolean', short: 'd' }, 'delete-untagged': { type: 'boolean', short: 'm' },
      grace: { type: 'string', short: 'g' }, force: { type: 'boolean', short: 'f' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(GC_HELP);
    return;
  }
  const config = configFrom(values, positionals);
  const log = createLogger(config);
  const { createDriver } = await checkStorage(config);
  const { collectOffline, liveLeases } = await import('./registry/maintenance.js');
  const driver = createDriver(config);
  const dryRun = !!values['dry-run'];
  // with the database the index is there, not in link files: collection is the review of its queues, safe while serving
  if (config.database) return gcOnDatabase(config, driver, log, dryRun, !!values['delete-untagged'], values.grace);
  let graceMs = values.grace !== undefined ? parseDuration(values.grace) : 0;
  if (graceMs === undefined) fatal(`--grace ${JSON.stringify(values.grace)} is not a duration: use e.g. 30m or 1h`);
  const serving = await liveLeases(driver);
  if (serving.length > 0 && !dryRun) {
    const who = serving.map((l) => `${l.host} pid ${l.pid}`).join(', ');
    if (!values.force) {
      fatal(`a registry is serving this storage (${who}): it collects garbage by itself (storage.maintenance.gc, POST /api/v1/gc); ` +
        'stop it first, or pass --force to collect anyway');
    }
    if (values.grace === undefined) graceMs = config.storage.gc.graceMs;
    log.warn({ serving: who, graceMs }, 'collecting while a registry serves this storage: content used within the grace period is kept, ' +
      'but a push in progress for longer than that may lose blobs it uploaded');
  }
  const result = await collectOffline(driver, {
    dryRun, deleteUntagged: !!values['delete-untagged'], graceMs,
    onDelete: (what, detail) => log.info(detail, `${dryRun ? 'would delete' : 'deleted'} ${what}`),
    onProgress: (detail, message) => log.info(detail, message),
    onUnreadable: (name, digest, reason) => log.warn({ repository: name, digest: digest.toString(), reason },
      'stored manifest cannot be read: everything it might reference is kept'),
  });
  log.info(result, dryRun ? 'garbage collection (dry run) done' : 'garbage collection done');
}

async function gcOnDatabase(config: Config, driver: ReturnType<typeof AppModule.createDriver>, log: ReturnType<typeof createLogger>,
  dryRun: boolean, deleteUntagged: boolean, grace: string | undefined): Promise<void> {
  const graceMs = grace !== undefined ? parseDuration(grace) : config.storage.gc.graceMs;
  if (graceMs === undefined) fatal(`--grace ${JSON.stringify(grace)} is not a duration: use e.g. 30m or 1h`);
  const { openDatabase } = await import('./db/index.js');
  const database = openDatabase(config.database!, driver, config.storage.gc.graceMs, log);
  try {
    await database.ready(log).catch((err: Error) => fatal(`database is not usable: ${err.message}`));
    const report = await database.reviewer.collect({
      dryRun, deleteUntagged: deleteUntagged || config.storage.gc.deleteUntagged, graceMs,
      onDelete: (what, detail) => log.info(detail, `${dryRun ? 'would delete' : 'deleted'} ${what}`),
    });
    log.info(report, dryRun ? 'garbage collection (dry run) done: the due review queues' : 'garbage collection done: the due review queues');
  } finally {
    await database.close();
  }
}

const RETENTION_HELP = `Usage: berth retention [CONFIG] [options]

Applies the retention rules of the configuration (policies.rules: keep, untagged) to storage no
registry serves, and prints the report as JSON: the tags and manifests removed, or with --dryrun
those that would be. The blobs only removed manifests referenced are freed by the next garbage
collection (berth gc). A running registry applies the rules by itself every policies.interval, and on demand
with POST /api/v1/retention[?dryrun=true]; this command refuses to change storage a registry
serves (seen through the lease each one keeps under /berth/leases), unless given --force.

Options:
  -c, --config FILE   config file (the one the registry runs with: its policies block)
  -r, --root DIR      data directory
  -d, --dryrun        only report what would be removed (also --dry-run)
  -f, --force         run although a registry serves this storage
  -h, --help          show this help

Examples:
  berth retention --dryrun --config /etc/docker/registry/config.yml
  berth retention --config /etc/docker/registry/config.yml && berth gc --config /etc/docker/registry/config.yml
`;

async function retention(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, options: {
      config: { type: 'string', short: 'c' }, root: { type: 'string', short: 'r' },
      dryrun: { type: 'boolean', short: 'd' }, 'dry-run': { type: 'boolean' }, force: { type: 'boolean', short: 'f' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(RETENTION_HELP);
    return;
  }
  const config = configFrom(values, positionals);
  const log = createLogger(config, process.stderr); // the report is standard output
  if (!config.policies.rules.some((r) => r.keep || r.untaggedMs !== undefined)) {
    fatal('configuration error: no retention rules: add policies.rules with keep or untagged (see docs/configuration.md#policies)');
  }
  const { createDriver, createServices } = await checkStorage(config);
  const { liveLeases } = await import('./registry/maintenance.js');
  const dryRun = !!(values.dryrun || values['dry-run']);
  const driver = createDriver(config);
  const serving = await liveLeases(driver);
  if (serving.length > 0 && !dryRun && !values.force) {
    fatal(`a registry is serving this storage (${serving.map((l) => `${l.host} pid ${l.pid}`).join(', ')}): it applies retention by itself ` +
      "(policies.interval, POST /api/v1/retention); stop it first, use --dryrun, or pass --force to remove anyway");
  }
  const services = createServices(config, driver, { log });
  const report = await services.policies!.retention.run({ dryRun });
  await services.policies!.pulls?.flush();
  log.info({ tagsRemoved: report.tagsRemoved, manifestsRemoved: report.manifestsRemoved, repositories: report.repositories },
    dryRun ? 'retention (dry run) done: nothing was removed' : 'retention done; run berth gc to free the blobs');
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  if (report.errors.length > 0) process.exit(1);
}

const HEALTH_HELP = `Usage: berth health [CONFIG] [--url URL]

Asks the registry that CONFIG (and REGISTRY_* variables) describes for /v2/ and exits 0 when it
answers (200, or 401 when authentication is on), 1 otherwise. Used by the container's HEALTHCHECK.

Options:
  -c, --config FILE   config file
  -u, --url URL       ask this base URL instead (e.g. http://127.0.0.1:5000)
  -h, --help          show this help
`;

async function health(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, url: { type: 'string', short: 'u' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(HEALTH_HELP);
    return;
  }
  let url = values.url;
  if (!url) {
    const config = configFrom(values, positionals);
    const target = listenTarget(config);
    const host = !target.host || target.host === '0.0.0.0' || target.host === '::' ? '127.0.0.1' : target.host;
    url = `http://${host.includes(':') ? `[${host}]` : host}:${target.port}${config.http.prefix}`;
  }
  try {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(5000) });
    if (res.status === 200 || res.status === 401) return;
    process.stderr.write(`berth: ${url}/v2/ answered ${res.status}\n`);
  } catch (err) {
    process.stderr.write(`berth: ${url}/v2/ did not answer: ${(err as Error).message}\n`);
  }
  process.exit(1);
}

const TOKEN_SERVER_HELP = `Usage: berth token-server [CONFIG] [--addr ADDR]

Runs only the token server (Docker token authentication) from the tokenserver section of
CONFIG: users from tokenserver.htpasswd, grants from access.rules, tokens signed with
tokenserver.key. Registries trust it with auth.token (realm = this server's URL + path,
rootcertbundle = a certificate of tokenserver.key, or the same key through tokenserver.key).

Options:
  -c, --config FILE   config file
  -a, --addr ADDR     listen address (tokenserver.addr; default 0.0.0.0:5001)
  -h, --help          show this help
`;

async function tokenServer(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, addr: { type: 'string', short: 'a' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(TOKEN_SERVER_HELP);
    return;
  }
  const config = configFrom({ ...values, addr: undefined }, positionals);
  const log = createLogger(config);
  if (!config.tokenServer.enabled) fatal('configuration error: set tokenserver.enabled: true (and tokenserver.htpasswd) to run the token server');
  const addr = values.addr ?? (config.tokenServer.addr || '0.0.0.0:5001');
  const { createSecurity, createTokenListener } = await loadApp();
  const security = createSecurity({ ...config, tokenServer: { ...config.tokenServer, addr } }, log);
  const listener = createTokenListener(security.standalone!, config.tokenServer.path, log);
  listener.on('error', (err: Error) => fatal(`cannot listen on ${addr}: ${err.message}`));
  listener.listen(parseAddr(addr, 'tokenserver.addr'), () => log.info({ addr, path: config.tokenServer.path }, 'token server is listening'));
  const stop = () => listener.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

const DATABASE_HELP = `Usage: berth database <migrate|status|import> [CONFIG] [options]

The PostgreSQL metadata index (the database section: enabled, host, port, user, password, dbname,
sslmode, url, pool; REGISTRY_DATABASE_* override them). See docs/operations.md#postgresql.

Subcommands:
  migrate    apply the pending schema migrations, each in its own transaction (safe while other
             processes start: one migrates, the others wait); prints each one applied
  status     list the applied and pending migrations; exits 1 when some are pending
  import     build the index from the storage (registry:2's layout or Berth's link files), online
             while a registry serves it, then a short final pass; resumable, prints progress.
             Afterwards serve with database.enabled: true. One-way: see docs/operations.md

Options:
  -c, --config FILE   config file (the one the registry runs with)
      --to VERSION    migrate: stop at this schema version
      --restart       import: forget the progress of an earlier import and start over
  -h, --help          show this help

Examples:
  berth database migrate --config /etc/docker/registry/config.yml
  REGISTRY_DATABASE_URL=postgresql://berth:secret@db:5432/registry berth database status --config config.yml
  berth database import --config config.yml && berth serve --config config.yml
`;

async function database(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, options: {
      config: { type: 'string', short: 'c' }, root: { type: 'string', short: 'r' }, to: { type: 'string' },
      restart: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  const [sub, ...rest] = positionals;
  if (values.help || !sub) {
    process.stdout.write(DATABASE_HELP);
    if (!values.help) process.exit(2);
    return;
  }
  const config = configFrom(values, rest);
  const log = createLogger(config, process.stderr);
  if (!config.database) fatal('configuration error: database.enabled is not true: set database.enabled: true and database.host, user, dbname (or database.url)');
  const { migrateCommand, statusCommand } = await import('./db/commands.js');
  const failed = (err: Error) => fatal(err.message);
  switch (sub) {
    case 'migrate': {
      const upTo = values.to === undefined ? undefined : Number(values.to);
      if (upTo !== undefined && !Number.isInteger(upTo)) fatal(`--to ${JSON.stringify(values.to)} is not a schema version number`);
      await migrateCommand(config.database, process.stdout, log, upTo).catch(failed);
      return;
    }
    case 'status':
      if ((await statusCommand(config.database, process.stdout, log).catch(failed)) > 0) process.exit(1);
      return;
    case 'import': {
      const { createDriver } = await checkStorage(config);
      const { importCommand } = await import('./db/import.js');
      await importCommand(config, createDriver(config), process.stdout, log, { restart: !!values.restart }).catch(failed);
      return;
    }
    default:
      fatal(`unknown database subcommand ${JSON.stringify(sub)}: use migrate, status or import (see berth database --help)`);
  }
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case 'serve': return serve(rest);
    case 'gc': case 'garbage-collect': return gc(rest);
    case 'health': return health(rest);
    case 'database': return database(rest);
    case 'retention': return retention(rest);
    case 'token-server': return tokenServer(rest);
    case 'version': case '--version': case '-v':
      process.stdout.write(`berth ${VERSION}\n`);
      return;
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(MAIN_HELP);
      return;
    default:
      process.stderr.write(`berth: unknown command ${JSON.stringify(command)}\n\n${MAIN_HELP}`);
      process.exit(2);
  }
}

main().catch((err: Error) => {
  if ((err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) fatal(`${err.message} (see --help)`);
  process.stderr.write(`berth: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
