// The database as the composition root sees it: the pool, the store, the catalog and usage
// sources, the reviewer of the collection queues, and the schema check made before serving.
import type { Logger } from 'pino';
import { describeDatabase, type DatabaseConfig } from '../config/database.js';
import type { StorageDriver } from '../storage/driver.js';
import { migrate, schemaStatus } from './migrations.js';
import { checkConnection, createPool, DatabaseError, type Pool } from './pool.js';
import { QueueReviewer } from './review.js';
import { PgMetadataStore } from './store.js';
import { PgRepositorySource, PgUsageSource } from './views.js';

export { DatabaseError };

export interface Database {
  config: DatabaseConfig;
  pool: Pool;
  store: PgMetadataStore;
  reviewer: QueueReviewer;
  catalog: PgRepositorySource;
  usage: PgUsageSource;
  /** One round trip (readiness). */
  ping(): Promise<void>;
  /** Connects, and refuses (DatabaseError) a schema that is behind, unless `migrate: auto` brings it up to date. */
  ready(log?: Logger): Promise<void>;
  close(): Promise<void>;
}

export function openDatabase(config: DatabaseConfig, driver: StorageDriver, graceMs: number, log?: Logger): Database {
  const pool = createPool(config, (err) => log?.warn({ err: err.message }, 'a database connection failed while idle; it is replaced'));
  const store = new PgMetadataStore(pool, driver, { graceMs });
  let closed = false;
  return {
    config, pool, store, reviewer: new QueueReviewer(store, driver),
    catalog: new PgRepositorySource(store), usage: new PgUsageSource(store),
    ping: async () => { await pool.query('SELECT 1'); },
    ready: async () => {
      await checkConnection(pool, config);
      await checkSchema(pool, config, log);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}

/** The command that brings the schema up to date, for messages. */
export const MIGRATE_COMMAND = 'berth database migrate --config FILE';

export async function checkSchema(pool: Pool, config: DatabaseConfig, log?: Logger): Promise<void> {
  let status = await schemaStatus(pool);
  if (status.unknown.length > 0) {
    throw new DatabaseError(`the schema of ${describeDatabase(config)} has migrations this Berth does not know ` +
      `(${status.unknown.join(', ')}): a newer Berth migrated it; run that version`);
  }
  if (status.pending.length === 0) return;
  if (config.migrate === 'auto') {
    await migrate(pool, { onApplied: (m, ms) => log?.info({ version: m.version, name: m.name, ms }, 'database migration applied') });
    status = await schemaStatus(pool);
    if (status.pending.length === 0) return;
  }
  const applied = status.applied.at(-1)?.version ?? 0;
  throw new DatabaseError(`the schema of ${describeDatabase(config)} is behind (version ${applied}; ` +
    `${status.pending.length} migration${status.pending.length === 1 ? '' : 's'} pending, up to ${status.pending.at(-1)!.version}): ` +
    `run ${MIGRATE_COMMAND} (or set database.migrate: auto)`);
}
