// The database schema, as ordered migrations. Each one runs in its own transaction and is
// recorded in schema_migrations; a session-level advisory lock lets one process migrate at a
// time, so several processes started together never race. A migration, once released, never
// changes: a new version is a new entry at the end.
import type { Pool } from './pool.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1, name: 'metadata index: repositories, blobs, manifests, references, tags',
    sql: `
CREATE TABLE repositories (
  id bigserial PRIMARY KEY,
  name text COLLATE "C" NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- when its first manifest was stored: from then on it is in the catalog (as its _manifests folder was)
  manifests_at timestamptz
);
CREATE INDEX repositories_catalog ON repositories (name) WHERE manifests_at IS NOT NULL;
-- one row per change of the catalog's membership, so a process knows when its copy is stale
CREATE TABLE catalog_version (id boolean PRIMARY KEY DEFAULT true CHECK (id), version bigint NOT NULL);
INSERT INTO catalog_version VALUES (true, 0);

-- a row exists only while the content is stored at blobs/<alg>/<xx>/<hex>/data (layers, configs, manifests)
CREATE TABLE blobs (
  digest text COLLATE "C" PRIMARY KEY,
  size bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz NOT NULL DEFAULT now()
);

-- what _layers links were: content linked into a repository
CREATE TABLE repository_blobs (
  repository_id bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
  digest text COLLATE "C" NOT NULL REFERENCES blobs (digest) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_digest ON repository_blobs (digest);

-- what _manifests/revisions links were, with a copy of the document
CREATE TABLE manifests (
  repository_id bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
  digest text COLLATE "C" NOT NULL,
  media_type text NOT NULL,
  size bigint NOT NULL,
  artifact_type text,
  subject text COLLATE "C",
  payload bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (repository_id, digest)
);
CREATE INDEX manifests_subject ON manifests (repository_id, subject) WHERE subject IS NOT NULL;
CREATE INDEX manifests_digest ON manifests (digest);

-- config and layers (kind blob) and index children (kind manifest) of each manifest
CREATE TABLE manifest_references (
  repository_id bigint NOT NULL,
  parent text COLLATE "C" NOT NULL,
  child text COLLATE "C" NOT NULL,
  kind text NOT NULL CHECK (kind IN ('blob', 'manifest')),
  PRIMARY KEY (repository_id, parent, kind, child),
  FOREIGN KEY (repository_id, parent) REFERENCES manifests (repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_references_child ON manifest_references (child, kind);
CREATE INDEX manifest_references_repository_child ON manifest_references (repository_id, child) WHERE kind = 'manifest';

CREATE TABLE tags (
  repository_id bigint NOT NULL,
  name text COLLATE "C" NOT NULL,
  digest text COLLATE "C" NOT NULL,
  pushed_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- written by the pull-through cache: used_at is when it was last written or pulled
  cached boolean NOT NULL DEFAULT false,
  used_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (repository_id, name),
  FOREIGN KEY (repository_id, digest) REFERENCES manifests (repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX tags_digest ON tags (repository_id, digest);
`,
  },
  {
    version: 2, name: 'online collection: review queues',
    sql: `
-- content whose last reference went away (or that nothing referenced yet), reviewed once review_after is past
CREATE TABLE gc_blob_review_queue (
  digest text COLLATE "C" PRIMARY KEY REFERENCES blobs (digest) ON DELETE CASCADE,
  review_after timestamptz NOT NULL,
  event text NOT NULL
);
CREATE INDEX gc_blob_review_queue_due ON gc_blob_review_queue (review_after);
-- manifests that lost their last tag or parent
CREATE TABLE gc_manifest_review_queue (
  repository_id bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
  digest text COLLATE "C" NOT NULL,
  review_after timestamptz NOT NULL,
  event text NOT NULL,
  PRIMARY KEY (repository_id, digest)
);
CREATE INDEX gc_manifest_review_queue_due ON gc_manifest_review_queue (review_after);
`,
  },
  {
    version: 3, name: 'import progress',
    sql: `
-- berth database import: which repositories of a storage are indexed, so an import resumes
CREATE TABLE import_progress (
  repository text COLLATE "C" PRIMARY KEY,
  imported_at timestamptz NOT NULL DEFAULT now(),
  manifests integer NOT NULL,
  tags integer NOT NULL
);
CREATE TABLE import_runs (
  id bigserial PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  final boolean NOT NULL DEFAULT false
);
`,
  },
];

/** Taken while migrating: any 64-bit constant no other advisory lock of Berth's uses (theirs are hashes). */
const MIGRATION_LOCK = 7_295_301_864_451;

export interface AppliedMigration {
  version: number;
  name: string;
  appliedAt: string;
}

export interface SchemaStatus {
  applied: AppliedMigration[];
  pending: Migration[];
  /** Versions recorded in the database that this Berth does not know (a newer Berth migrated it). */
  unknown: number[];
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;

export async function schemaStatus(pool: Pool, migrations: readonly Migration[] = MIGRATIONS): Promise<SchemaStatus> {
  const exists = await pool.query(`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`);
  const rows = exists.rows[0].present
    ? (await pool.query('SELECT version, name, applied_at FROM schema_migrations ORDER BY version')).rows : [];
  const applied = rows.map((r) => ({ version: r.version as number, name: r.name as string, appliedAt: (r.applied_at as Date).toISOString() }));
  const done = new Set(applied.map((a) => a.version));
  const known = new Set(migrations.map((m) => m.version));
  return {
    applied, pending: migrations.filter((m) => !done.has(m.version)),
    unknown: applied.map((a) => a.version).filter((v) => !known.has(v)),
  };
}

/**
 * Applies the pending migrations up to `upTo` (all by default), each in its own transaction, and
 * calls `onApplied` after each. Returns those applied.
 */
export async function migrate(pool: Pool, options: { upTo?: number; onApplied?: (m: Migration, ms: number) => void;
  migrations?: readonly Migration[] } = {}): Promise<Migration[]> {
  const migrations = options.migrations ?? MIGRATIONS;
  const client = await pool.connect();
  const done: Migration[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(CREATE_TABLE);
      const applied = new Set((await client.query('SELECT version FROM schema_migrations')).rows.map((r) => r.version as number));
      for (const m of migrations) {
        if (applied.has(m.version) || (options.upTo !== undefined && m.version > options.upTo)) continue;
        const started = Date.now();
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw new Error(`migration ${m.version} (${m.name}) failed, nothing of it was applied: ${(err as Error).message}`);
        }
        done.push(m);
        options.onApplied?.(m, Date.now() - started);
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    }
  } finally {
    client.release();
  }
  return done;
}
