// A real PostgreSQL for the tests: Debian's server started by test/support/postgres.sh, once per
// test process, on a free loopback port, stopped and removed at exit. BERTH_TEST_DATABASE_URL
// points the tests at a server already running instead (a superuser URL: each test file creates
// its own database). Every test file works in a fresh database, berth_test_<random>, dropped after.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, needs, run, SUPPORT } from './clients.js';
import { atExit } from './scratch.js';

/** What test/support/postgres.sh needs (test/support/install.sh installs it): Debian's server, of whatever version. */
function postgresTools(): string[] {
  const versions = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  const bin = `/usr/lib/postgresql/${versions[0] ?? '15'}/bin`;
  return [`${bin}/initdb`, `${bin}/pg_ctl`, `${bin}/pg_isready`, ...(process.getuid?.() === 0 ? ['runuser'] : [])];
}

/** Why database tests cannot run here, or undefined. */
export function needsPostgres(...more: string[]): string | undefined {
  return process.env.BERTH_TEST_DATABASE_URL ? needs(...more) : needs(...postgresTools(), ...more);
}

let server: Promise<string> | undefined;

/** The URL of the test server's `postgres` database (a superuser connection). */
export function postgresServer(): Promise<string> {
  server ??= start();
  return server;
}

async function start(): Promise<string> {
  if (process.env.BERTH_TEST_DATABASE_URL) return process.env.BERTH_TEST_DATABASE_URL;
  const script = join(SUPPORT, 'postgres.sh');
  // outside the scratch directory: the server runs as the postgres user, who cannot enter it
  const env = { PG_PORT: String(await freePort()), PG_DIR: `/tmp/berth-pg-${process.pid}-${randomBytes(3).toString('hex')}` };
  atExit(() => { execFileSync('bash', [script, 'stop'], { env: { ...process.env, ...env }, stdio: 'ignore' }); });
  const out = await run('bash', [script, 'start'], env, 120_000);
  const url = /^export DATABASE_URL=(.*)$/m.exec(out)?.[1];
  if (!url) throw new Error(`test/support/postgres.sh printed no DATABASE_URL:\n${out}`);
  return url;
}

export interface TestDatabase {
  /** postgresql://user@host:port/berth_test_... */
  url: string;
  name: string;
  /** Config overrides that put a registry's metadata in this database. */
  overrides: Record<string, unknown>;
  /** A client of this database for checks. */
  query(sql: string, values?: unknown[]): Promise<any[]>;
  drop(): Promise<void>;
}

/** A new, empty database on the test server (no schema: migrate it, or let `migrate: auto` do it). */
export async function freshDatabase(): Promise<TestDatabase> {
  const admin = await postgresServer();
  const name = `berth_test_${randomBytes(5).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`CREATE DATABASE ${name}`);
  await client.end();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  // dropped by drop(), else when the test process exits (a server this process started goes with its data anyway)
  const cancel = process.env.BERTH_TEST_DATABASE_URL ? atExit(() => {
    execFileSync('psql', [admin, '-qc', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`], { stdio: 'ignore' });
  }) : () => undefined;
  return {
    url: url.toString(), name,
    overrides: { 'database.enabled': true, 'database.url': url.toString(), 'database.migrate': 'auto' },
    query: async (sql, values) => (await pool.query(sql, values)).rows,
    drop: async () => {
      cancel();
      await pool.end();
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
