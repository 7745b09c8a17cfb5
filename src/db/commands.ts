// `berth database migrate | status | import`: what the command line does with the database.
import type { Logger } from 'pino';
import { describeDatabase, type DatabaseConfig } from '../config/database.js';
import { MIGRATIONS, migrate, schemaStatus } from './migrations.js';
import { checkConnection, createPool } from './pool.js';

/** Applies the pending migrations, printing each; returns how many were applied. */
export async function migrateCommand(config: DatabaseConfig, out: NodeJS.WritableStream, log: Logger, upTo?: number): Promise<number> {
  const pool = createPool(config, (err) => log.warn({ err: err.message }, 'database connection failed'));
  try {
    await checkConnection(pool, config);
    const before = await schemaStatus(pool);
    if (before.unknown.length > 0) {
      throw new Error(`the schema of ${describeDatabase(config)} has migrations this Berth does not know (${before.unknown.join(', ')}): a newer Berth migrated it`);
    }
    if (before.pending.length === 0) {
      out.write(`${describeDatabase(config)}: the schema is up to date (version ${before.applied.at(-1)?.version ?? 0})\n`);
      return 0;
    }
    const applied = await migrate(pool, {
      upTo, onApplied: (m, ms) => out.write(`applied ${m.version} ${m.name} (${ms} ms)\n`),
    });
    const after = await schemaStatus(pool);
    out.write(`${describeDatabase(config)}: ${applied.length} migration${applied.length === 1 ? '' : 's'} applied; ` +
      `schema version ${after.applied.at(-1)?.version ?? 0}${after.pending.length > 0 ? `, ${after.pending.length} pending` : ''}\n`);
    return applied.length;
  } finally {
    await pool.end();
  }
}

/** Prints the applied and pending migrations; returns how many are pending. */
export async function statusCommand(config: DatabaseConfig, out: NodeJS.WritableStream, log: Logger): Promise<number> {
  const pool = createPool(config, (err) => log.warn({ err: err.message }, 'database connection failed'));
  try {
    await checkConnection(pool, config);
    const status = await schemaStatus(pool);
    out.write(`${describeDatabase(config)}\n`);
    for (const a of status.applied) {
      const name = MIGRATIONS.find((m) => m.version === a.version)?.name ?? a.name;
      out.write(`  applied  ${String(a.version).padStart(3)}  ${name}  (${a.appliedAt})${status.unknown.includes(a.version) ? '  [unknown to this Berth]' : ''}\n`);
    }
    for (const p of status.pending) out.write(`  pending  ${String(p.version).padStart(3)}  ${p.name}\n`);
    out.write(status.pending.length === 0 ? 'the schema is up to date\n'
      : `${status.pending.length} pending: run berth database migrate --config FILE\n`);
    return status.pending.length;
  } finally {
    await pool.end();
  }
}
