// The connection pool: node-postgres's Pool built from the `database` settings, with a statement
// timeout and application_name 'berth' on every connection (so pg_stat_activity names us).
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { describeDatabase, type DatabaseConfig } from '../config/database.js';
import { RegistryError } from '../registry/errors.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

// bigint columns (sizes, ids) come back as JavaScript numbers: every value Berth stores is far below 2^53
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

export class DatabaseError extends Error {}

function tlsOptions(db: DatabaseConfig): ConnectionOptions | false {
  if (db.sslMode === 'disable') return false;
  const read = (path: string | undefined, key: string): Buffer | undefined => {
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new DatabaseError(`database.${key} ${path} cannot be read: ${(err as Error).message}`);
    }
  };
  const options: ConnectionOptions = {
    rejectUnauthorized: db.sslMode !== 'require', cert: read(db.sslCert, 'sslcert'), key: read(db.sslKey, 'sslkey'),
    ca: read(db.sslRootCert, 'sslrootcert'),
  };
  // verify-ca checks the chain only, as libpq does; verify-full also the host name
  if (db.sslMode === 'verify-ca') options.checkServerIdentity = () => undefined;
  return options;
}

export function createPool(db: DatabaseConfig, onError: (err: Error) => void = () => undefined): Pool {
  const pool = new pg.Pool({
    host: db.host, port: db.port, user: db.user, password: db.password, database: db.dbname, ssl: tlsOptions(db),
    max: db.pool.maxOpen,
    idleTimeoutMillis: db.pool.maxIdleTimeMs ?? 30_000,
    maxLifetimeSeconds: db.pool.maxLifetimeMs ? Math.max(1, Math.round(db.pool.maxLifetimeMs / 1000)) : 0,
    connectionTimeoutMillis: db.connectTimeoutMs,
    statement_timeout: db.statementTimeoutMs,
    application_name: 'berth',
    allowExitOnIdle: true,
  });
  // a connection that fails while idle is dropped from the pool; without a listener it would end the process
  pool.on('error', onError);
  return pool;
}

/** Connects once, so that a wrong address or password stops startup with the fix, not the first request. */
export async function checkConnection(pool: Pool, db: DatabaseConfig): Promise<void> {
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    const e = err as Error & { code?: string };
    const hint = e.code === '28P01' || e.code === '28000' ? 'check database.user and database.password'
      : e.code === '3D000' ? `create it (createdb ${db.dbname}) or set database.dbname`
        : e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || /timeout/i.test(e.message) ? 'check database.host and database.port, and that PostgreSQL is running'
          : 'check the database settings';
    throw new DatabaseError(`cannot connect to ${describeDatabase(db)}: ${e.message}; ${hint}`);
  }
}

/** Failures that say the database cannot serve now (not that a request is wrong). */
const UNAVAILABLE_CODES = new Set(['3D000', '28P01', '28000', '53300', '57P01', '57P02', '57P03', '57014', '08000', '08003', '08006', '08001', '08004',
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH']);

/**
 * A request's database failure as the client should see it: 503 UNAVAILABLE with Retry-After
 * when the database is out of reach, overloaded or too slow (no free connection within
 * database.connecttimeout, a statement past database.statementtimeout); anything else as it is.
 */
export function asUnavailable(err: unknown): unknown {
  const e = err as { code?: string; message?: string } | undefined;
  const message = e?.message ?? '';
  if (!(e?.code && UNAVAILABLE_CODES.has(e.code)) && !/timeout exceeded when trying to connect|Connection terminated|connection timeout/i.test(message)) {
    return err;
  }
  return new RegistryError('UNAVAILABLE', `the metadata database cannot answer now (${message.slice(0, 200)}); retry shortly`)
    .withHeaders({ 'Retry-After': '1' });
}
