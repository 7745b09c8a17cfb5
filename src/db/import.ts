// `berth database import`: builds the index from a storage's link files (registry:2's layout or
// Berth's), online while a registry serves that storage. Each repository is synced in one
// transaction: what its link files hold now is what its rows hold after (manifests are immutable,
// so one already indexed is not read again). A first pass syncs every repository not imported
// yet (the progress is kept in import_progress, so an interrupted import resumes); the final
// pass syncs every repository again and only reads what changed meanwhile, so it is short.
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { walkRepositories } from '../registry/catalog.js';
import { everythingIn, referencesOf } from '../registry/gc.js';
import { LinkMetadataStore } from '../registry/link-store.js';
import { mapBounded } from '../storage/many.js';
import { lockKeys as K } from '../registry/locks.js';
import { storedMediaType } from '../registry/media-types.js';
import { parseDigest } from '../registry/names.js';
import { paths } from '../registry/paths.js';
import { checkSchema } from './index.js';
import { PgLocks } from './locks.js';
import { checkConnection, createPool, type Pool } from './pool.js';
import { ensureRepository, markHasManifests, queueBlobs, queueManifests } from './sql.js';

/** Repositories synced at once. */
const PARALLEL = 16;

export interface ImportReport {
  repositories: number;
  skipped: number;
  manifests: number;
  tags: number;
  blobs: number;
  seconds: number;
  repositoriesPerSecond: number;
}

export interface ImportOptions {
  /** Forget earlier progress: every repository is synced in the first pass. */
  restart?: boolean;
  /** Skip the final pass (tests, and imports in steps). */
  skipFinal?: boolean;
  graceMs?: number;
  onProgress?: (detail: Record<string, unknown>, message: string) => void;
}

export class Importer {
  private readonly links: LinkMetadataStore;
  private readonly locks: PgLocks;

  constructor(private readonly pool: Pool, private readonly driver: StorageDriver, private readonly graceMs = 3_600_000) {
    this.links = new LinkMetadataStore(driver, Number.MAX_SAFE_INTEGER);
    this.locks = new PgLocks(pool);
  }

  /** The first pass over the repositories not imported yet, then (unless skipped) the final pass over all. */
  async run(options: ImportOptions = {}): Promise<{ first: ImportReport; final?: ImportReport }> {
    if (options.restart) await this.pool.query('TRUNCATE import_progress');
    const run = (await this.pool.query('INSERT INTO import_runs DEFAULT VALUES RETURNING id')).rows[0].id as number;
    const first = await this.pass(false, options);
    const final = options.skipFinal ? undefined : await this.pass(true, options);
    await this.pool.query('UPDATE import_runs SET finished_at = now(), final = $2 WHERE id = $1', [run, !!final]);
    return { first, final };
  }

  async pass(final: boolean, options: ImportOptions = {}): Promise<ImportReport> {
    const started = Date.now();
    const names = await walkRepositories(this.driver, '_manifests');
    const done = final ? new Set<string>() : new Set((await this.pool.query('SELECT repository FROM import_progress')).rows.map((r) => r.repository as string));
    const todo = names.filter((n) => !done.has(n));
    // repositories the storage no longer holds (deleted while importing) leave the index in the final pass
    if (final) await this.removeGone(new Set(names));
    const report: ImportReport = { repositories: 0, skipped: names.length - todo.length, manifests: 0, tags: 0, blobs: 0, seconds: 0, repositoriesPerSecond: 0 };
    const phase = final ? 'final pass' : 'first pass';
    options.onProgress?.({ repositories: todo.length, skipped: report.skipped }, `import: ${phase}`);
    let lastReport = Date.now();
    await mapBounded(todo, async (name) => {
      const counts = await this.syncRepository(name);
      report.repositories++;
      report.manifests += counts.manifests;
      report.tags += counts.tags;
      report.blobs += counts.blobs;
      if (Date.now() - lastReport >= 2000) {
        lastReport = Date.now();
        const seconds = (Date.now() - started) / 1000;
        options.onProgress?.({ done: report.repositories, of: todo.length, repositoriesPerSecond: Math.round(report.repositories / seconds) },
          `import: ${phase}`);
      }
    }, PARALLEL);
    report.seconds = (Date.now() - started) / 1000;
    report.repositoriesPerSecond = report.seconds > 0 ? Math.round(report.repositories / report.seconds) : report.repositories;
    return report;
  }

  private async removeGone(present: Set<string>): Promise<void> {
    const indexed = (await this.pool.query('SELECT name FROM repositories WHERE manifests_at IS NOT NULL')).rows.map((r) => r.name as string);
    const gone = indexed.filter((n) => !present.has(n));
    if (gone.length === 0) return;
    await this.locks.transaction([], async (c) => {
      await c.query('DELETE FROM repositories WHERE name = ANY($1::text[])', [gone]);
      await c.query('DELETE FROM import_progress WHERE repository = ANY($1::text[])', [gone]);
      await c.query('UPDATE catalog_version SET version = version + 1');
    });
  }

  /** Makes a repository's rows what its link files say now; counts what was added. */
  async syncRepository(name: string): Promise<{ manifests: number; tags: number; blobs: number }> {
    // read from storage first, outside the transaction
    const revisions = (await this.links.revisions(name)).map(String);
    const layers = (await this.links.layers(name)).map(String);
    const tagNames = await this.links.tags(name).catch(() => [] as string[]);
    const tags = (await mapBounded(tagNames, async (tag) => {
      const digest = await this.links.tag(name, tag);
      const at = await this.driver.stat(paths.tagCurrentLink(name, tag)).then((s) => s.modTime, () => new Date());
      return digest ? { tag, digest: digest.toString(), at } : undefined;
    })).filter((t): t is { tag: string; digest: string; at: Date } => t !== undefined && revisions.includes(t.digest));
    const known = new Set((await this.pool.query(`SELECT m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
      WHERE r.name = $1`, [name])).rows.map((r) => r.digest as string));
    const fresh = (await mapBounded(revisions.filter((d) => !known.has(d)), async (digest) => {
      let content: Buffer;
      try {
        content = await this.driver.getContent(paths.blobData(parseDigest(digest)));
      } catch (err) {
        if (isNotFound(err)) return undefined; // a revision whose content is gone is not indexed
        throw err;
      }
      const mediaType = (await this.links.revision(name, parseDigest(digest)))?.mediaType ?? storedMediaType(content);
      const refs = referencesOf(content);
      const unreadable = 'unreadable' in refs;
      const blobs = unreadable ? everythingIn(content).filter((d) => d !== digest) : refs.blobs;
      const children = unreadable ? everythingIn(content).filter((d) => revisions.includes(d) && d !== digest) : refs.children;
      const subject = unreadable ? undefined : refs.subject;
      let artifactType: string | undefined;
      try {
        const doc = JSON.parse(content.toString('utf8'));
        artifactType = typeof doc.artifactType === 'string' ? doc.artifactType
          : !Array.isArray(doc.manifests) && typeof doc.config?.mediaType === 'string' ? doc.config.mediaType : undefined;
      } catch { /* unreadable: no type */ }
      return { digest, content, mediaType, blobs, children, subject, artifactType };
    })).filter((m): m is NonNullable<typeof m> => m !== undefined);
    // sizes of content not indexed yet
    const wanted = [...new Set([...layers, ...fresh.flatMap((m) => [m.digest, ...m.blobs])])];
    const indexed = new Set((await this.pool.query('SELECT digest FROM blobs WHERE digest = ANY($1::text[])', [wanted])).rows.map((r) => r.digest as string));
    const sizes = (await mapBounded(wanted.filter((d) => !indexed.has(d)), async (digest) => {
      const info = await this.driver.stat(paths.blobData(parseDigest(digest))).catch(() => undefined);
      return info && !info.isDir ? { digest, size: info.size } : undefined;
    })).filter((s): s is { digest: string; size: number } => s !== undefined);

    return this.locks.transaction([{ key: K.repository(name), mode: 'exclusive' }], async (c) => {
      const id = await ensureRepository(c, name);
      if (sizes.length > 0) {
        await c.query(`INSERT INTO blobs (digest, size) SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING`,
          [sizes.map((s) => s.digest), sizes.map((s) => s.size)]);
      }
      // manifests: the new ones, with their references; those gone from storage leave (with their tags)
      for (const m of fresh) {
        await c.query(`INSERT INTO manifests (repository_id, digest, media_type, size, artifact_type, subject, payload)
          VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
        [id, m.digest, m.mediaType, m.content.length, m.artifactType ?? null, m.subject ?? null, m.content]);
        const refs = [...m.blobs.map((b) => [b, 'blob']), ...m.children.map((ch) => [ch, 'manifest'])];
        if (refs.length > 0) {
          await c.query(`INSERT INTO manifest_references (repository_id, parent, child, kind)
            SELECT $1, $2, r.child, r.kind FROM unnest($3::text[], $4::text[]) AS r(child, kind) ON CONFLICT DO NOTHING`,
          [id, m.digest, refs.map((r) => r[0]), refs.map((r) => r[1])]);
        }
      }
      const present = new Set(revisions);
      const gone = [...known].filter((d) => !present.has(d));
      if (gone.length > 0) await c.query('DELETE FROM manifests WHERE repository_id = $1 AND digest = ANY($2::text[])', [id, gone]);
      await c.query('DELETE FROM tags WHERE repository_id = $1 AND NOT (name = ANY($2::text[]))', [id, tags.map((t) => t.tag)]);
      if (tags.length > 0) {
        await c.query(`INSERT INTO tags (repository_id, name, digest, pushed_at, updated_at)
          SELECT $1, t.name, t.digest, t.at, t.at FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS t(name, digest, at)
          JOIN manifests m ON m.repository_id = $1 AND m.digest = t.digest
          ON CONFLICT (repository_id, name) DO UPDATE SET digest = EXCLUDED.digest, updated_at = EXCLUDED.updated_at,
            pushed_at = CASE WHEN tags.digest = EXCLUDED.digest THEN tags.pushed_at ELSE EXCLUDED.pushed_at END`,
        [id, tags.map((t) => t.tag), tags.map((t) => t.digest), tags.map((t) => t.at)]);
      }
      // links: exactly the stored content the _layers folder names
      await c.query(`DELETE FROM repository_blobs WHERE repository_id = $1 AND NOT (digest = ANY($2::text[]))`, [id, layers]);
      await c.query(`INSERT INTO repository_blobs (repository_id, digest) SELECT $1, b.digest FROM blobs b
        WHERE b.digest = ANY($2::text[]) ON CONFLICT DO NOTHING`, [id, layers]);
      await markHasManifests(c, id);
      // what nothing keeps waits for review, as it would have after a push: untagged manifests, unreferenced links
      const untagged = await c.query(`SELECT m.digest FROM manifests m WHERE m.repository_id = $1
        AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest)`, [id]);
      await queueManifests(c, id, untagged.rows.map((r) => r.digest), this.graceMs, 'import');
      const loose = await c.query(`SELECT rb.digest FROM repository_blobs rb WHERE rb.repository_id = $1
        AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.child = rb.digest AND mr.kind = 'blob')
        AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = rb.digest)`, [id]);
      await queueBlobs(c, loose.rows.map((r) => r.digest), this.graceMs, 'import');
      await c.query(`INSERT INTO import_progress (repository, manifests, tags) VALUES ($1, $2, $3)
        ON CONFLICT (repository) DO UPDATE SET imported_at = now(), manifests = EXCLUDED.manifests, tags = EXCLUDED.tags`,
      [name, revisions.length, tags.length]);
      return { manifests: fresh.length, tags: tags.length, blobs: sizes.length };
    });
  }
}

/** The command: connects, checks the schema, runs both passes and prints their figures. */
export async function importCommand(config: Config, driver: StorageDriver, out: NodeJS.WritableStream, log: Logger,
  options: ImportOptions = {}): Promise<void> {
  const db = config.database!;
  const pool = createPool(db, (err) => log.warn({ err: err.message }, 'database connection failed'));
  try {
    await checkConnection(pool, db);
    await checkSchema(pool, db, log);
    const importer = new Importer(pool, driver, config.storage.gc.graceMs);
    const { first, final } = await importer.run({
      ...options, onProgress: (detail, message) => log.info(detail, message),
    });
    out.write(`first pass: ${first.repositories} repositories (${first.skipped} imported before), ${first.manifests} manifests, ` +
      `${first.tags} tags, ${first.blobs} blobs in ${first.seconds.toFixed(1)} s (${first.repositoriesPerSecond} repositories/s)\n`);
    if (final) {
      out.write(`final pass: ${final.repositories} repositories, ${final.manifests} new manifests in ${final.seconds.toFixed(1)} s\n`);
    }
    out.write('the index is built: serve this storage with database.enabled: true (every process)\n');
  } finally {
    await pool.end();
  }
}

