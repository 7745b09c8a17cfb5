// The `database` section: PostgreSQL as the registry's metadata index. Keys are GitLab container
// registry's (enabled, host, port, user, password, dbname, sslmode, pool, connecttimeout) plus
// `url`, a connection URL whose parts the other keys (and REGISTRY_DATABASE_*) override, and
// Berth's own `migrate` and `statementtimeout`. Absent or `enabled: false`: nothing changes.
import type { Spec } from './schema.js';

const str = (d?: string, oneOf?: readonly string[]): Spec => ({ kind: 'string', default: d, oneOf });
const int = (min: number): Spec => ({ kind: 'int', min });
const duration = (d?: string): Spec => ({ kind: 'duration', default: d });

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = 'disable' | 'require' | 'verify-ca' | 'verify-full';

export const DATABASE_FIELDS: Record<string, Spec> = {
  enabled: { kind: 'bool', default: false },
  url: str(), host: str(), port: int(1), user: str(), password: str(), dbname: str(),
  sslmode: str(undefined, SSL_MODES), sslcert: str(), sslkey: str(), sslrootcert: str(),
  connecttimeout: duration('10s'),
  // Berth's own: the longest a single statement may run, and whether `serve` migrates by itself
  statementtimeout: duration('30s'),
  migrate: str('manual', ['manual', 'auto']),
  pool: { kind: 'object', fields: { maxopen: int(1), maxidle: int(0), maxlifetime: duration(), maxidletime: duration() } },
};

export interface DatabaseConfig {
  host: string;
  port: number;
  user: string;
  password?: string;
  dbname: string;
  sslMode: SslMode;
  sslCert?: string;
  sslKey?: string;
  sslRootCert?: string;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  migrate: 'manual' | 'auto';
  pool: { maxOpen: number; maxIdle?: number; maxLifetimeMs?: number; maxIdleTimeMs?: number };
}

export class DatabaseConfigError extends Error {}

/** Where the database is, for logs and messages: never the password. */
export function describeDatabase(db: DatabaseConfig): string {
  return `postgresql://${encodeURIComponent(db.user)}@${db.host.includes(':') ? `[${db.host}]` : db.host}:${db.port}/${encodeURIComponent(db.dbname)}`;
}

/** The settings of a normalised `database` section, or undefined when it is not enabled. */
export function databaseOptions(d: Record<string, any>): DatabaseConfig | undefined {
  if (!d.enabled) return undefined;
  const fromUrl: Record<string, string | undefined> = {};
  if (d.url) {
    let url: URL;
    try {
      url = new URL(d.url);
    } catch {
      throw new DatabaseConfigError('database.url is not a URL: write postgresql://USER:PASSWORD@HOST:PORT/DBNAME (REGISTRY_DATABASE_URL)');
    }
    if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') {
      throw new DatabaseConfigError(`database.url must start with postgresql:// (it starts with ${url.protocol}//)`);
    }
    for (const key of url.searchParams.keys()) {
      if (key !== 'sslmode') throw new DatabaseConfigError(`database.url has the parameter ${key}: only sslmode is read from the URL; use the database keys for the rest`);
    }
    fromUrl.host = url.hostname.replace(/^\[(.*)\]$/, '$1') || undefined;
    fromUrl.port = url.port || undefined;
    fromUrl.user = url.username ? decodeURIComponent(url.username) : undefined;
    fromUrl.password = url.password ? decodeURIComponent(url.password) : undefined;
    fromUrl.dbname = url.pathname.length > 1 ? decodeURIComponent(url.pathname.slice(1)) : undefined;
    fromUrl.sslmode = url.searchParams.get('sslmode') ?? undefined;
  }
  const pick = (key: string): string | undefined => (d[key] !== undefined && d[key] !== '' ? String(d[key]) : fromUrl[key]);
  const host = pick('host');
  if (!host) throw new DatabaseConfigError('database.host is required when database.enabled is true: the PostgreSQL server (or database.url; REGISTRY_DATABASE_HOST)');
  const port = Number(pick('port') ?? 5432);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DatabaseConfigError(`database.port must be a TCP port (1-65535), not ${pick('port')}`);
  const user = pick('user');
  if (!user) throw new DatabaseConfigError('database.user is required: the PostgreSQL role Berth connects as (or in database.url; REGISTRY_DATABASE_USER)');
  const dbname = pick('dbname');
  if (!dbname) throw new DatabaseConfigError('database.dbname is required: the database that holds the registry\'s metadata (or in database.url; REGISTRY_DATABASE_DBNAME)');
  const sslmode = pick('sslmode') ?? 'disable';
  if (sslmode === 'allow' || sslmode === 'prefer') {
    throw new DatabaseConfigError(`database.sslmode ${sslmode} is not supported: Berth does not fall back between TLS and plain connections; ` +
      'set sslmode: require (or verify-full) for TLS, or disable for a plain connection on a trusted network');
  }
  if (!(SSL_MODES as readonly string[]).includes(sslmode)) {
    throw new DatabaseConfigError(`database.sslmode ${JSON.stringify(sslmode)} is not one of disable, require, verify-ca, verify-full`);
  }
  if ((d.sslcert || d.sslkey) && sslmode === 'disable') {
    throw new DatabaseConfigError('database.sslcert and sslkey need TLS: set database.sslmode to require, verify-ca or verify-full');
  }
  if (!!d.sslcert !== !!d.sslkey) throw new DatabaseConfigError('database.sslcert and database.sslkey go together: set both or neither');
  if (d.sslrootcert && (sslmode === 'disable' || sslmode === 'require')) {
    throw new DatabaseConfigError('database.sslrootcert is only used to verify the server: set database.sslmode to verify-ca or verify-full');
  }
  const pool = d.pool ?? {};
  if (pool.maxidle !== undefined && pool.maxopen !== undefined && pool.maxidle > pool.maxopen) {
    throw new DatabaseConfigError(`database.pool.maxidle (${pool.maxidle}) cannot exceed database.pool.maxopen (${pool.maxopen})`);
  }
  if (!(d.connecttimeout > 0)) throw new DatabaseConfigError('database.connecttimeout must be a positive duration, e.g. 10s');
  if (!(d.statementtimeout > 0)) throw new DatabaseConfigError('database.statementtimeout must be a positive duration, e.g. 30s');
  return {
    host, port, user, password: pick('password'), dbname, sslMode: sslmode as SslMode,
    sslCert: d.sslcert || undefined, sslKey: d.sslkey || undefined, sslRootCert: d.sslrootcert || undefined,
    connectTimeoutMs: d.connecttimeout, statementTimeoutMs: d.statementtimeout, migrate: d.migrate,
    pool: { maxOpen: pool.maxopen ?? 20, maxIdle: pool.maxidle, maxLifetimeMs: pool.maxlifetime, maxIdleTimeMs: pool.maxidletime },
  };
}
