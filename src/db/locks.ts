// The registry's lock discipline (src/registry/locks.ts) carried by PostgreSQL, so that it holds
// across every process sharing the database: an operation's keys become transaction-scoped
// advisory locks (shared or exclusive) on a 64-bit hash of each key, taken in the same global
// order (`normaliseRequests`), and its work runs in that one transaction. A deadlock or a
// serialisation failure (which row locks taken by statements can still cause) is retried.
import { createHash } from 'node:crypto';
import { normaliseRequests, type LockRequest } from '../registry/locks.js';
import { asUnavailable, type Pool, type PoolClient } from './pool.js';

/** The advisory lock id of a key: the first 8 bytes of its SHA-256, as a signed 64-bit integer. */
export function lockId(key: string): string {
  return createHash('sha256').update(key).digest().readBigInt64BE(0).toString();
}

const RETRIED = new Set(['40P01', '40001']); // deadlock_detected, serialization_failure
const ATTEMPTS = 5;

export class PgLocks {
  /** Where each transaction's time (locks included) is reported. */
  observe?: (kind: string, seconds: number) => void;

  constructor(private readonly pool: Pool) {}

  /**
   * Runs `work` in one transaction after taking the advisory locks `requests` name. When `work`
   * throws, nothing it wrote is kept. Locks are released at commit or rollback.
   */
  async transaction<T>(requests: LockRequest[], work: (client: PoolClient) => Promise<T>): Promise<T> {
    const ordered = normaliseRequests(requests);
    const started = process.hrtime.bigint();
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect().catch((err) => { throw asUnavailable(err); });
      let broken = false;
      // a connection that fails between this transaction's queries is told as an event: without a
      // listener it would end the process; the next query fails with it instead
      const failed = () => { broken = true; };
      client.on('error', failed);
      try {
        await client.query('BEGIN');
        if (ordered.length > 0) {
          // one round trip: each lock in order (a set-returning call keeps the order of the array)
          await client.query(`SELECT CASE WHEN l.shared THEN pg_advisory_xact_lock_shared(l.id) ELSE pg_advisory_xact_lock(l.id) END
            FROM unnest($1::bigint[], $2::boolean[]) WITH ORDINALITY AS l(id, shared, n) ORDER BY l.n`,
          [ordered.map((r) => lockId(r.key)), ordered.map((r) => r.mode === 'shared')]);
        }
        const result = await work(client);
        await client.query('COMMIT');
        this.observe?.('transaction', Number(process.hrtime.bigint() - started) / 1e9);
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => { broken = true; });
        const code = (err as { code?: string }).code;
        if (code && RETRIED.has(code) && attempt < ATTEMPTS) continue;
        throw asUnavailable(err);
      } finally {
        client.off('error', failed);
        client.release(broken || undefined);
      }
    }
  }

  /** One attempt at an exclusive hold of `keys` without waiting: false (nothing run) when another holds any. */
  async tryTransaction<T>(keys: LockRequest[], work: (client: PoolClient) => Promise<T>): Promise<{ ran: true; result: T } | { ran: false }> {
    const ordered = normaliseRequests(keys);
    const client = await this.pool.connect().catch((err) => { throw asUnavailable(err); });
    let broken = false;
    const failed = () => { broken = true; };
    client.on('error', failed);
    try {
      await client.query('BEGIN');
      const got = await client.query(`SELECT bool_and(CASE WHEN l.shared THEN pg_try_advisory_xact_lock_shared(l.id) ELSE pg_try_advisory_xact_lock(l.id) END) AS ok
        FROM unnest($1::bigint[], $2::boolean[]) WITH ORDINALITY AS l(id, shared, n)`,
      [ordered.map((r) => lockId(r.key)), ordered.map((r) => r.mode === 'shared')]);
      if (!got.rows[0].ok) {
        await client.query('ROLLBACK');
        return { ran: false };
      }
      const result = await work(client);
      await client.query('COMMIT');
      return { ran: true, result };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => { broken = true; });
      throw asUnavailable(err);
    } finally {
      client.off('error', failed);
      client.release(broken || undefined);
    }
  }
}
