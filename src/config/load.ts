// Loads the configuration: defaults, then the YAML file, then REGISTRY_* environment variables,
// then command-line flags. Every value is checked against the schema; a mistake stops startup
// with the key's path and what to write instead; so does a registry:2 key Berth would have to ignore
// at a cost to security or to what clients get (see schema.ts).
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { isSet, SCHEMA, type Spec } from './schema.js';
import { parsePolicies, type PoliciesConfig } from '../policy/config.js';
import { S3ConfigError, s3Options } from './s3.js';
import { databaseOptions, DatabaseConfigError, type DatabaseConfig } from './database.js';
import type { S3Options } from '../storage/s3.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface Config {
  log: { level: LogLevel; formatter?: 'text' | 'json' | 'logstash'; fields: Record<string, unknown>; accessLog: boolean };
  storage: {
    driver: 'filesystem' | 'inmemory' | 's3';
    rootDirectory: string;
    s3?: S3Options;
    /** Whether blob downloads may redirect to the storage's own URLs (storage.redirect.disable: false). */
    redirect: boolean;
    deleteEnabled: boolean;
    readOnly: boolean;
    uploadPurging: { enabled: boolean; ageMs: number; intervalMs: number; dryRun: boolean };
    gc: { enabled: boolean; intervalMs: number; graceMs: number; deleteUntagged: boolean; dryRun: boolean };
  };
  http: {
    addr: string;
    net: 'tcp' | 'unix';
    prefix: string;
    host: string;
    secret: string;
    secretGenerated: boolean;
    relativeUrls: boolean;
    drainTimeoutMs: number;
    headers: Record<string, string[]>;
    /** Berth's limits against slow and flooding clients. */
    timeouts: { headersMs: number; idleMs: number };
    limits: { uploads: number; passwordWorkers?: number; passwordQueue: number };
    /** Processes serving the listener: 1 serves in this process; more start workers (node:cluster). */
    workers: number;
  };
  tls?: { certificate: string; key: string; clientCAs: string[]; clientAuth: string; minimumTls: string };
  auth: {
    htpasswd?: { realm: string; path: string };
    token?: { realm?: string; service: string; issuer: string; rootCertBundle?: string; jwks?: string };
  };
  tokenServer: {
    enabled: boolean; addr: string; path: string; issuer: string; service: string; key: string;
    expirationMs: number; htpasswd: string;
  };
  access: { groups: Record<string, unknown>; rules: Record<string, unknown>[] };
  debug: { addr: string; prometheus: boolean; metricsPath: string };
  health: { storage: boolean; intervalMs: number; threshold: number };
  notifications: NotificationEndpoint[];
  /** Pull-through caching: the upstreams repositories are mirrored from (empty: none). */
  proxy: { upstreams: UpstreamConfig[] };
  /** Retention, tag immutability and quotas (`policies`). */
  policies: PoliciesConfig;
  /** The web UI at / (Berth only). */
  ui: { enabled: boolean };
  /** PostgreSQL as the metadata index (`database`), when enabled. */
  database?: DatabaseConfig;
  /** Keys accepted for compatibility but not acted on, with the reason (logged at startup). */
  ignored: string[];
}

/** A registry whose repositories are mirrored: under `prefix/` (stripped before asking it), or every
 *  repository outside the other prefixes when `prefix` is empty (registry:2's proxy.remoteurl). */
export interface UpstreamConfig {
  prefix: string;
  remoteUrl: string;
  /** The host (and port) containerd names in `?ns=`. */
  host: string;
  username?: string;
  password?: string;
  /** Cached content not pulled for this long may be collected. */
  ttlMs: number;
  /** A cached tag is checked again upstream (with a HEAD) once it is this old. */
  tagTtlMs: number;
  /** How long the upstream may take to answer (headers). */
  timeoutMs: number;
  maxConcurrent: number;
  maxRps: number;
}

export interface NotificationEndpoint {
  name: string;
  url: string;
  headers: Record<string, string[]>;
  timeoutMs: number;
  threshold: number;
  backoffMs: number;
  ignoredMediaTypes: string[];
  ignoredActions: string[];
  /** Spool bounds: events beyond the count, or older than the age, are dropped. */
  maxEvents: number;
  maxAgeMs: number;
}

/** How long a cached tag is served before its upstream is asked again, unless `tagttl` says. */
const DEFAULT_TAG_TTL_MS = 10 * 60_000;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Tree = Record<string, unknown>;

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Dotted-path overrides from command-line flags, e.g. {"http.addr": "127.0.0.1:5000"}. */
  overrides?: Record<string, unknown>;
}

export function loadConfig(options: LoadOptions = {}): Config {
  let tree: Tree = {};
  if (options.file) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${options.file}: ${(err as Error).message}`);
    }
    try {
      tree = (parseYaml(text) as Tree | null) ?? {};
    } catch (err) {
      throw new ConfigError(`config file ${options.file} is not valid YAML: ${(err as Error).message}`);
    }
    if (typeof tree !== 'object' || Array.isArray(tree)) throw new ConfigError(`config file ${options.file} must hold a YAML mapping`);
  }
  const warnings: string[] = [];
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (!key.startsWith('REGISTRY_') || value === undefined || key === 'REGISTRY_CONFIGURATION_PATH') continue; // that one names the file
    const path = envPath(key.slice('REGISTRY_'.length).toLowerCase().split('_'), SCHEMA);
    if (!path) {
      warnings.push(`environment variable ${key} matches no configuration key; ignored`);
      continue;
    }
    // a string key takes the text as written (a password of digits stays a string, leading zeros and all)
    setPath(tree, path, specAt(path, SCHEMA)?.kind === 'string' ? value : parseScalar(value));
  }
  for (const [dotted, value] of Object.entries(options.overrides ?? {})) setPath(tree, dotted.split('.'), value);
  // registry:2 also takes `storage: filesystem` and `auth: none`: a bare name for a section without parameters
  for (const section of ['storage', 'auth']) {
    if (typeof tree[section] === 'string') tree[section] = { [tree[section] as string]: {} };
  }
  // `auth: {htpasswd: }` names a provider without parameters: checked as such, never taken for no auth
  const auth = tree.auth;
  if (auth && typeof auth === 'object' && !Array.isArray(auth)) {
    for (const [provider, params] of Object.entries(auth)) if (params === null) (auth as Tree)[provider] = {};
  }
  return build(tree, warnings, options.env ?? {});
}

/** Maps REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY's words onto schema keys. */
function envPath(words: string[], spec: Spec): string[] | undefined {
  if (words.length === 0) return spec.kind === 'object' ? undefined : [];
  if (spec.kind === 'map') return [words.join('_')];
  if (spec.kind === 'ignored') return [words.join('_')];
  if (spec.kind !== 'object') return undefined;
  for (let n = words.length; n >= 1; n--) {
    const key = words.slice(0, n).join('_');
    const child = spec.fields[key];
    if (!child) continue;
    const rest = envPath(words.slice(n), child);
    if (rest) return [key, ...rest];
  }
  return undefined;
}

function specAt(path: string[], spec: Spec): Spec | undefined {
  for (const key of path) {
    if (spec.kind !== 'object') return undefined;
    const child = spec.fields[key];
    if (!child) return undefined;
    spec = child;
  }
  return spec;
}

function parseScalar(value: string): unknown {
  try {
    return parseYaml(value) ?? '';
  } catch {
    return value;
  }
}

function setPath(tree: Tree, path: string[], value: unknown): void {
  let node = tree;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Tree;
  }
  node[path[path.length - 1]!] = value;
}

/** Checks `tree` against the schema and fills in defaults. */
function normalise(value: unknown, spec: Spec, path: string, ignored: string[], root: Tree): unknown {
  const where = path || 'the top level';
  switch (spec.kind) {
    case 'object': {
      if (value === undefined || value === null) value = {};
      if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${where} must be a mapping`);
      const out: Tree = {};
      for (const key of Object.keys(value as Tree)) {
        if (!(key in spec.fields)) {
          const known = Object.keys(spec.fields).join(', ');
          throw new ConfigError(`unknown configuration key ${path ? `${path}.` : ''}${key}: remove it or use one of ${known}`);
        }
      }
      for (const [key, child] of Object.entries(spec.fields)) {
        out[key] = normalise((value as Tree)[key], child, path ? `${path}.${key}` : key, ignored, root);
      }
      return out;
    }
    case 'string': {
      if (value === undefined || value === null) return spec.default;
      if (typeof value === 'number' || typeof value === 'boolean') value = String(value);
      if (typeof value !== 'string') throw new ConfigError(`${path} must be a string`);
      if (spec.oneOf && !spec.oneOf.includes(value)) {
        throw new ConfigError(`${path} is ${JSON.stringify(value)}: use one of ${spec.oneOf.join(', ')}`);
      }
      return value;
    }
    case 'bool': {
      if (value === undefined || value === null) return spec.default;
      if (value === 'true' || value === 'false') value = value === 'true';
      if (typeof value !== 'boolean') throw new ConfigError(`${path} is ${JSON.stringify(value)}: use true or false`);
      return value;
    }
    case 'int': {
      if (value === undefined || value === null) return spec.default;
      const n = typeof value === 'string' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n) || (spec.min !== undefined && n < spec.min)) {
        throw new ConfigError(`${path} is ${JSON.stringify(value)}: use a whole number${spec.min !== undefined ? ` of at least ${spec.min}` : ''}`);
      }
      return n;
    }
    case 'duration': {
      const text = value === undefined || value === null ? spec.default : value;
      if (text === undefined) return undefined;
      const ms = parseDuration(text);
      if (ms === undefined) throw new ConfigError(`${path} is ${JSON.stringify(value)}: use a duration such as 30s, 10m or 168h`);
      return ms;
    }
    case 'map': {
      if (value === undefined || value === null) return {};
      if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${path} must be a mapping`);
      return value;
    }
    case 'list': {
      if (value === undefined || value === null) return [];
      const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',').map((v) => v.trim()) : undefined;
      if (!items) throw new ConfigError(`${path} must be a list`);
      return items.map((item, i) => normalise(item, spec.item, `${path}[${i}]`, ignored, root));
    }
    case 'ignored': {
      if (value === undefined || value === null) return undefined;
      const refusal = spec.refuse;
      if (refusal && (refusal.when ?? isSet)(value, root)) {
        const shown = typeof value === 'object' ? '' : `: ${JSON.stringify(value)}`;
        throw new ConfigError(`${path}${shown} is not supported: ${refusal.why}; ${refusal.instead}`);
      }
      ignored.push(`${path} is ignored: ${spec.why}`);
      return undefined;
    }
  }
}

/** Go-style durations ("1h30m", "10s", "500ms"); a bare number counts as nanoseconds, as in Go. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return value >= 0 ? value / 1e6 : undefined;
  if (typeof value !== 'string') return undefined;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (const match of value.matchAll(re)) {
    if (match.index !== consumed) return undefined;
    total += Number(match[1]) * units[match[2]!]!;
    consumed += match[0].length;
  }
  return consumed === value.length && consumed > 0 ? total : value === '0' ? 0 : undefined;
}

function build(tree: Tree, warnings: string[], env: NodeJS.ProcessEnv): Config {
  const storageTree = (tree.storage ?? {}) as Tree;
  const drivers = Object.keys(storageTree).filter((k) => !['delete', 'maintenance', 'cache', 'redirect', 'tag'].includes(k));
  for (const driver of drivers) {
    if (driver !== 'filesystem' && driver !== 'inmemory' && driver !== 's3') {
      throw new ConfigError(`storage driver ${driver} is not supported: use storage.filesystem (a local disk or a mounted volume), storage.s3 (S3 or a compatible object store) or storage.inmemory`);
    }
  }
  if (drivers.length > 1) throw new ConfigError(`storage names ${drivers.join(' and ')}: configure exactly one storage driver`);
  const ignored: string[] = [...warnings];
  const t = normalise(tree, SCHEMA, '', ignored, tree) as any; // shape guaranteed by SCHEMA
  const headers: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(t.http.headers as Tree)) {
    headers[name] = (Array.isArray(value) ? value : [value]).map(String);
  }
  const secret = t.http.secret as string;
  const tls = t.http.tls;
  if ((tls.certificate && !tls.key) || (!tls.certificate && tls.key)) {
    throw new ConfigError('http.tls needs both certificate and key (PEM file paths)');
  }
  if (tls.clientcas.length > 0 && !tls.certificate) throw new ConfigError('http.tls.clientcas needs http.tls.certificate and key');
  const authTree = ((tree.auth ?? {}) as Tree);
  const providers = Object.keys(authTree).filter((k) => authTree[k] !== undefined && authTree[k] !== null);
  if (providers.length > 1) throw new ConfigError(`auth names ${providers.join(' and ')}: configure exactly one of auth.htpasswd or auth.token`);
  if (authTree.htpasswd && !t.auth.htpasswd.path) throw new ConfigError('auth.htpasswd.path is required: the htpasswd file (htpasswd -B)');
  const tokenServer = t.tokenserver;
  if (tokenServer.enabled && !tokenServer.htpasswd) {
    throw new ConfigError('tokenserver.htpasswd is required: the htpasswd file (htpasswd -B) the token server checks passwords against');
  }
  const token = t.auth.token;
  if (authTree.token && !token.realm && !(tokenServer.enabled && !tokenServer.addr)) {
    throw new ConfigError('auth.token.realm is required: the URL clients get tokens from (or enable tokenserver on this listener)');
  }
  if (tokenServer.enabled && tokenServer.addr && !token.realm) {
    throw new ConfigError('tokenserver.addr is set: set auth.token.realm to the URL clients reach it at, e.g. http://registry.example.com:5001/auth/token');
  }
  if (authTree.token && !token.rootcertbundle && !token.jwks && !tokenServer.enabled) {
    throw new ConfigError('auth.token needs rootcertbundle or jwks to verify tokens (or tokenserver.enabled with its key)');
  }
  if (t.storage.maintenance.gc.enabled && !(t.storage.maintenance.gc.interval > 0)) {
    throw new ConfigError('storage.maintenance.gc.interval must be a positive duration, e.g. 1h');
  }
  if (t.database.enabled && drivers[0] === 'inmemory') {
    throw new ConfigError('database.enabled needs storage every process shares: the blobs of storage.inmemory live in one process only; use storage.filesystem or storage.s3');
  }
  const service = token.service || tokenServer.service || 'berth';
  return {
    log: { level: (tree.log as Tree | undefined)?.level === undefined && t.loglevel ? t.loglevel : t.log.level, formatter: t.log.formatter, fields: t.log.fields, accessLog: !t.log.accesslog.disabled },
    storage: {
      driver: drivers[0] === 'inmemory' || drivers[0] === 's3' ? drivers[0] : 'filesystem',
      rootDirectory: t.storage.filesystem.rootdirectory ?? './data',
      s3: drivers[0] === 's3' ? s3Config(t.storage.s3) : undefined,
      redirect: !t.storage.redirect.disable,
      deleteEnabled: t.storage.delete.enabled,
      readOnly: t.storage.maintenance.readonly.enabled,
      uploadPurging: {
        enabled: t.storage.maintenance.uploadpurging.enabled,
        ageMs: t.storage.maintenance.uploadpurging.age,
        intervalMs: t.storage.maintenance.uploadpurging.interval,
        dryRun: t.storage.maintenance.uploadpurging.dryrun,
      },
      gc: {
        enabled: t.storage.maintenance.gc.enabled,
        intervalMs: t.storage.maintenance.gc.interval,
        graceMs: t.storage.maintenance.gc.grace,
        deleteUntagged: t.storage.maintenance.gc.deleteuntagged,
        dryRun: t.storage.maintenance.gc.dryrun,
      },
    },
    http: {
      addr: t.http.addr,
      net: t.http.net,
      prefix: (t.http.prefix as string).replace(/\/+$/, ''),
      host: (t.http.host as string).replace(/\/+$/, ''),
      secret: secret || randomBytes(32).toString('hex'),
      secretGenerated: !secret,
      relativeUrls: t.http.relativeurls,
      drainTimeoutMs: t.http.draintimeout,
      headers,
      timeouts: { headersMs: t.http.timeouts.headers, idleMs: t.http.timeouts.idle },
      limits: {
        uploads: t.http.limits.uploads, passwordWorkers: t.http.limits.passwordworkers, passwordQueue: t.http.limits.passwordqueue,
      },
      workers: Math.min(64, (t.http.workers as number) || availableParallelism()),
    },
    tls: tls.certificate ? {
      certificate: tls.certificate, key: tls.key, clientCAs: tls.clientcas, clientAuth: tls.clientauth, minimumTls: tls.minimumtls,
    } : undefined,
    auth: {
      htpasswd: authTree.htpasswd ? { realm: t.auth.htpasswd.realm, path: t.auth.htpasswd.path } : undefined,
      token: authTree.token ? {
        realm: token.realm || undefined, service, issuer: token.issuer || tokenServer.issuer,
        rootCertBundle: token.rootcertbundle || undefined, jwks: token.jwks || undefined,
      } : undefined,
    },
    tokenServer: {
      enabled: tokenServer.enabled, addr: tokenServer.addr, path: tokenServer.path, issuer: tokenServer.issuer,
      service, key: tokenServer.key, expirationMs: tokenServer.expiration, htpasswd: tokenServer.htpasswd,
    },
    access: { groups: t.access.groups, rules: t.access.rules },
    debug: { addr: t.http.debug.addr, prometheus: t.http.debug.prometheus.enabled, metricsPath: t.http.debug.prometheus.path },
    health: { storage: t.health.storagedriver.enabled, intervalMs: t.health.storagedriver.interval, threshold: t.health.storagedriver.threshold },
    notifications: (t.notifications.endpoints as any[]).filter((e) => !e.disabled).map((e, i) => {
      if (!e.name || !/^[A-Za-z0-9._-]+$/.test(e.name)) throw new ConfigError(`notifications.endpoints[${i}].name must be a simple name (letters, digits, . _ -)`);
      if (!/^https?:\/\//.test(e.url ?? '')) throw new ConfigError(`notifications.endpoints[${i}].url must be an http:// or https:// URL`);
      const headers: Record<string, string[]> = {};
      for (const [k, v] of Object.entries(e.headers as Tree)) headers[k] = (Array.isArray(v) ? v : [v]).map(String);
      return {
        name: e.name, url: e.url, headers, timeoutMs: e.timeout, threshold: e.threshold, backoffMs: e.backoff,
        ignoredMediaTypes: [...e.ignoredmediatypes, ...e.ignore.mediatypes], ignoredActions: e.ignore.actions,
        maxEvents: e.maxevents, maxAgeMs: e.maxage,
      };
    }),
    proxy: { upstreams: upstreams(t.proxy, env) },
    policies: parsePolicies(t.policies),
    ui: { enabled: t.ui.enabled },
    database: databaseConfig(t.database),
    ignored,
  };
}

function databaseConfig(d: Record<string, unknown>): DatabaseConfig | undefined {
  try {
    return databaseOptions(d);
  } catch (err) {
    if (err instanceof DatabaseConfigError) throw new ConfigError(err.message);
    throw err;
  }
}

function s3Config(s: Record<string, unknown>): S3Options {
  try {
    return s3Options(s);
  } catch (err) {
    if (err instanceof S3ConfigError) throw new ConfigError(err.message);
    throw err;
  }
}

const PROXY_DEFAULTS = { timeout: 30_000, maxconcurrent: 64, maxrps: 100 };

/** proxy.remoteurl (the default upstream) and proxy.upstreams (by prefix), checked. */
function upstreams(p: any, env: NodeJS.ProcessEnv): UpstreamConfig[] {
  const entries: { where: string; e: any }[] = (p.upstreams as any[]).map((e, i) => ({ where: `proxy.upstreams[${i}]`, e }));
  if (p.remoteurl) entries.push({ where: 'proxy', e: { ...p, prefix: '' } });
  else if (p.username || p.password) throw new ConfigError('proxy.username and proxy.password need proxy.remoteurl: the upstream they log in to');
  const seen = new Set<string>();
  return entries.map(({ where, e }) => {
    let url: URL;
    try {
      url = new URL(e.remoteurl);
      if (url.username || url.password) {
        throw new ConfigError(`${where}.remoteurl holds credentials: put them in ${where}.username and password (or the environment), never in the URL, which is logged`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`${where}.remoteurl must be an http:// or https:// URL, e.g. https://registry-1.docker.io`);
    }
    const prefix = String(e.prefix ?? '').replace(/^\/+|\/+$/g, '');
    if (where !== 'proxy' && !prefix) throw new ConfigError(`${where}.prefix is required (e.g. ghcr/); the upstream without a prefix is proxy.remoteurl`);
    if (prefix && !/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(prefix)) {
      throw new ConfigError(`${where}.prefix ${JSON.stringify(e.prefix)} must be the start of a repository name, e.g. ghcr/`);
    }
    if (seen.has(prefix)) throw new ConfigError(`${where}.prefix ${JSON.stringify(prefix)} is configured twice`);
    seen.add(prefix);
    const fromEnv = (key: string | undefined, what: string): string | undefined => {
      if (!key) return undefined;
      const value = env[key];
      if (value === undefined) throw new ConfigError(`${where}.${what} names ${key}, which is not set in the environment`);
      return value;
    };
    const username = fromEnv(e.usernameenv, 'usernameenv') ?? (e.username || undefined);
    const password = fromEnv(e.passwordenv, 'passwordenv') ?? (e.password || undefined);
    if (!!username !== !!password) throw new ConfigError(`${where} needs both a username and a password, or neither (anonymous)`);
    const ttlMs = e.ttl ?? p.ttl;
    return {
      prefix, remoteUrl: url.toString().replace(/\/+$/, ''), host: url.host, username, password, ttlMs,
      // a tag moves upstream at any time: by default it is re-checked (a HEAD) every 10 minutes at most
      tagTtlMs: e.tagttl ?? p.tagttl ?? Math.min(ttlMs, DEFAULT_TAG_TTL_MS),
      timeoutMs: e.timeout ?? p.timeout ?? PROXY_DEFAULTS.timeout,
      maxConcurrent: e.maxconcurrent ?? p.maxconcurrent ?? PROXY_DEFAULTS.maxconcurrent,
      maxRps: e.maxrps ?? p.maxrps ?? PROXY_DEFAULTS.maxrps,
    };
  });
}
