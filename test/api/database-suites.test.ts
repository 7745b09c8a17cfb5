// A representative set of the API suites, run again with the metadata in PostgreSQL: every
// registry they start gets a database of its own (BERTH_TEST_METADATA=postgres, see
// test/helpers/registry.ts), so the database store must give the answers the link files give.
// Any other suite runs the same way: BERTH_TEST_METADATA=postgres node --test dist/test/api/<suite>.test.js
// (the few that reach into link files on disk, or collect offline over them, do not apply).
import { describe, it } from 'node:test';
import { needsPostgres } from '../helpers/postgres.js';

const skip = needsPostgres();
if (skip) {
  describe('API suites on the database', () => { it('manifests, uploads, errors, quotas, management, hardening', { skip }, () => undefined); });
} else {
  process.env.BERTH_TEST_METADATA = 'postgres';
  await import('./manifests.test.js');
  await import('./uploads.test.js');
  await import('./errors.test.js');
  await import('./quota.test.js');
  await import('./management-auth.test.js');
  await import('./hardening.test.js');
}
