// The metadata store on PostgreSQL: the same answers and guarantees as the link files
// (link-store.ts), for every process sharing the database. The database is authoritative for
// metadata (no link file is written); storage keeps the bytes, and a `blobs` row exists only
// while its content is stored. Each write is one transaction under the registry's lock
// discipline, carried by advisory locks (locks.ts). A blob's bytes are never moved inside a
// transaction: the move comes first, then a transaction re-checks the content under the lock.
// When the last reference to content or a manifest goes away it is queued for review
// (review.ts) after the grace period; a push that references it again cancels that.
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { nameUnknown, RegistryError } from '../registry/errors.js';
import { excl, linking, lockKeys as K, shared, type LockRequest } from '../registry/locks.js';
import type { ManifestRecord, MetadataEvent, MetadataStore, MissingReference } from '../registry/metadata.js';
import { parseDigest, type Digest } from '../registry/names.js';
import { paths } from '../registry/paths.js';
import { PgLocks } from './locks.js';
import { asUnavailable, type Pool, type PoolClient } from './pool.js';
import { ensureRepository, markHasManifests, queueBlobs, queueManifests, removeManifest, repositoryId } from './sql.js';

export interface PgStoreOptions {
  /** How long unreferenced content and untagged manifests wait in the review queues (storage.maintenance.gc.grace). */
  graceMs: number;
}

/** What a manifest's document says of its type, leniently (for the referrers API and listings). */
function artifactTypeOf(content: Buffer): string | undefined {
  try {
    const doc = JSON.parse(content.toString('utf8')) as { artifactType?: unknown; manifests?: unknown; config?: { mediaType?: unknown } };
    if (typeof doc.artifactType === 'string') return doc.artifactType;
    return !Array.isArray(doc.manifests) && typeof doc.config?.mediaType === 'string' ? doc.config.mediaType : undefined;
  } catch {
    return undefined;
  }
}

export class PgMetadataStore implements MetadataStore {
  readonly locks: PgLocks;
  private readonly listeners: ((event: MetadataEvent) => void)[] = [];

  constructor(readonly pool: Pool, private readonly driver: StorageDriver, readonly options: PgStoreOptions) {
    this.locks = new PgLocks(pool);
  }

  subscribe(listener: (event: MetadataEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Tells this process's listeners (caches, usage) of a change; also used by the reviewer. */
  emit(event: MetadataEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private observer?: (kind: string, seconds: number) => void;

  /** Where the time of each read and transaction is reported (metrics). */
  set observe(fn: (kind: string, seconds: number) => void) {
    this.observer = fn;
    this.locks.observe = fn;
  }

  private async rows(sql: string, values: unknown[]): Promise<any[]> {
    const started = process.hrtime.bigint();
    const { rows } = await this.pool.query(sql, values).catch((err) => { throw asUnavailable(err); });
    this.observer?.('read', Number(process.hrtime.bigint() - started) / 1e9);
    return rows;
  }

  // ---------------------------------------------------------------- reads (one statement each)

  async tag(name: string, tag: string): Promise<Digest | undefined> {
    const [row] = await this.rows(`SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id
      WHERE r.name = $1 AND t.name = $2`, [name, tag]);
    return row ? parseDigest(row.digest) : undefined;
  }

  async tags(name: string): Promise<string[]> {
    // one text value rather than a row per tag (names hold no newline): 50,000 tags cost a fraction of the rows' parsing
    const [row] = await this.rows(`SELECT r.manifests_at IS NOT NULL AS held,
      (SELECT string_agg(t.name, E'\n' ORDER BY t.name) FROM tags t WHERE t.repository_id = r.id) AS names
      FROM repositories r WHERE r.name = $1`, [name]);
    if (!row || (!row.held && row.names === null)) throw nameUnknown(name);
    return row.names === null ? [] : (row.names as string).split('\n');
  }

  async revision(name: string, digest: Digest): Promise<{ mediaType: string } | undefined> {
    const [row] = await this.rows(`SELECT m.media_type FROM manifests m JOIN repositories r ON r.id = m.repository_id
      WHERE r.name = $1 AND m.digest = $2`, [name, digest.toString()]);
    return row ? { mediaType: row.media_type } : undefined;
  }

  async hasRevision(name: string, digest: Digest): Promise<boolean> {
    return (await this.revision(name, digest)) !== undefined;
  }

  /** The manifest's bytes from the database's copy: a GET needs no storage read. */
  async manifest(name: string, digest: Digest): Promise<{ mediaType: string; content: Buffer } | undefined> {
    const [row] = await this.rows(`SELECT m.media_type, m.payload FROM manifests m JOIN repositories r ON r.id = m.repository_id
      WHERE r.name = $1 AND m.digest = $2`, [name, digest.toString()]);
    return row ? { mediaType: row.media_type, content: row.payload } : undefined;
  }

  async revisions(name: string): Promise<Digest[]> {
    const rows = await this.rows(`SELECT m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
      WHERE r.name = $1 ORDER BY m.digest`, [name]);
    return rows.map((r) => parseDigest(r.digest));
  }

  async blobLinked(name: string, digest: Digest): Promise<boolean> {
    const rows = await this.rows(`SELECT 1 FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
      WHERE r.name = $1 AND rb.digest = $2`, [name, digest.toString()]);
    return rows.length > 0;
  }

  async layers(name: string): Promise<Digest[]> {
    const rows = await this.rows(`SELECT rb.digest FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
      WHERE r.name = $1 ORDER BY rb.digest`, [name]);
    return rows.map((r) => parseDigest(r.digest));
  }

  async referrers(name: string, subject: Digest): Promise<Digest[]> {
    const rows = await this.rows(`SELECT m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
      WHERE r.name = $1 AND m.subject = $2 ORDER BY m.digest`, [name, subject.toString()]);
    return rows.map((r) => parseDigest(r.digest));
  }

  async repositories(): Promise<string[]> {
    const [row] = await this.rows(`SELECT string_agg(name, E'\n' ORDER BY name) AS names FROM repositories WHERE manifests_at IS NOT NULL`, []);
    return row?.names ? (row.names as string).split('\n') : [];
  }

  /** A token that changes whenever a repository joins or leaves the catalog. */
  async catalogVersion(): Promise<string> {
    return String((await this.rows('SELECT version FROM catalog_version', []))[0]?.version ?? 0);
  }

  async tagPushedAt(name: string, tag: string): Promise<number | undefined> {
    const [row] = await this.rows(`SELECT t.pushed_at FROM tags t JOIN repositories r ON r.id = t.repository_id
      WHERE r.name = $1 AND t.name = $2`, [name, tag]);
    return row ? (row.pushed_at as Date).getTime() : undefined;
  }

  async revisionWrittenAt(name: string, digest: Digest): Promise<number | undefined> {
    const [row] = await this.rows(`SELECT m.created_at FROM manifests m JOIN repositories r ON r.id = m.repository_id
      WHERE r.name = $1 AND m.digest = $2`, [name, digest.toString()]);
    return row ? (row.created_at as Date).getTime() : undefined;
  }

  async tagUsedAt(name: string, tag: string): Promise<number | undefined> {
    const [row] = await this.rows(`SELECT t.cached, t.used_at FROM tags t JOIN repositories r ON r.id = t.repository_id
      WHERE r.name = $1 AND t.name = $2`, [name, tag]);
    return row?.cached ? (row.used_at as Date).getTime() : undefined;
  }

  async blobStat(digest: Digest): Promise<{ size: number; lastUsed: number } | undefined> {
    const [row] = await this.rows('SELECT size, last_used_at FROM blobs WHERE digest = $1', [digest.toString()]);
    return row ? { size: row.size, lastUsed: (row.last_used_at as Date).getTime() } : undefined;
  }

  // ---------------------------------------------------------------- writes

  async commitBlob(name: string, digest: Digest, source: string): Promise<void> {
    const d = digest.toString();
    const removed = () => new RegistryError('BLOB_UPLOAD_UNKNOWN', 'the upload was removed while it was being completed; start it again');
    await this.driver.stat(source).catch((err) => { throw isNotFound(err) ? removed() : err; });
    // already stored: link it, and drop the duplicate bytes afterwards
    const linked = await this.locks.transaction(linking(name, digest), async (c) => {
      if ((await c.query('SELECT 1 FROM blobs WHERE digest = $1', [d])).rowCount === 0) return false;
      await this.link(c, name, d);
      return true;
    });
    try {
      if (linked) {
        this.emit({ type: 'blob-linked', name, digest });
        await this.driver.delete(source).catch((err) => { if (!isNotFound(err)) throw err; });
        return;
      }
      // the bytes move outside any transaction (a rename, or a copy on S3: unbounded), then the
      // transaction checks under the lock that they are still there before naming them
      await this.driver.move(source, paths.blobData(digest));
    } catch (err) {
      if (isNotFound(err)) throw removed();
      throw err;
    }
    await this.locks.transaction(linking(name, digest), async (c) => {
      const stored = await this.driver.stat(paths.blobData(digest)).catch((err) => {
        if (isNotFound(err)) return undefined;
        throw err;
      });
      if (!stored || stored.isDir) {
        throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'the blob was collected while its upload was being completed; upload it again');
      }
      await c.query(`INSERT INTO blobs (digest, size) VALUES ($1, $2)
        ON CONFLICT (digest) DO UPDATE SET last_used_at = now()`, [d, stored.size]);
      await this.link(c, name, d);
    });
    this.emit({ type: 'blob-linked', name, digest });
  }

  /** Links stored content into a repository; until a manifest references it, it waits in the review queue. */
  private async link(c: PoolClient, name: string, d: string): Promise<void> {
    const id = await ensureRepository(c, name);
    await c.query('INSERT INTO repository_blobs (repository_id, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING', [id, d]);
    await c.query('UPDATE blobs SET last_used_at = now() WHERE digest = $1', [d]);
    await queueBlobs(c, [d], this.options.graceMs, 'blob_upload');
  }

  async mountBlob(name: string, digest: Digest): Promise<boolean> {
    const d = digest.toString();
    const mounted = await this.locks.transaction(linking(name, digest), async (c) => {
      if ((await c.query('SELECT 1 FROM blobs WHERE digest = $1', [d])).rowCount === 0) return false;
      await this.link(c, name, d);
      return true;
    });
    if (mounted) this.emit({ type: 'blob-linked', name, digest });
    return mounted;
  }

  async unlinkBlob(name: string, digest: Digest): Promise<boolean> {
    const d = digest.toString();
    const removed = await this.locks.transaction([shared(K.repository(name)), excl(K.layer(name, d))], async (c) => {
      const id = await repositoryId(c, name);
      if (id === undefined) return false;
      const gone = await c.query('DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2', [id, d]);
      if (gone.rowCount === 0) return false;
      await queueBlobs(c, [d], this.options.graceMs, 'layer_unlink');
      return true;
    });
    if (removed) this.emit({ type: 'blob-unlinked', name, digest });
    return removed;
  }

  /**
   * A use of content: a review that is queued waits again for the grace period, from now. The
   * postponement is written before `check` runs, so a review either removed the content first
   * (and `check` does not find it) or sees the new time and keeps it.
   */
  async useBlob<T>(digest: Digest, check: () => Promise<T | undefined>): Promise<T | undefined> {
    await this.rows(`UPDATE gc_blob_review_queue SET review_after = greatest(review_after, now() + $2 * interval '1 millisecond')
      WHERE digest = $1`, [digest.toString(), this.options.graceMs]);
    return check();
  }

  async touchTag(name: string, tag: string): Promise<void> {
    await this.rows(`UPDATE tags t SET used_at = now() FROM repositories r
      WHERE r.id = t.repository_id AND r.name = $1 AND t.name = $2`, [name, tag]);
  }

  async putManifest(name: string, record: ManifestRecord, tag?: string): Promise<MissingReference[]> {
    const d = record.digest.toString();
    const requests: LockRequest[] = [shared(K.repository(name)), excl(K.manifest(name, d)), shared(K.blob(d))];
    if (tag !== undefined) requests.push(excl(K.tag(name, tag)));
    for (const blob of record.blobs) requests.push(shared(K.layer(name, blob.toString())), shared(K.blob(blob.toString())));
    for (const child of record.children) requests.push(shared(K.manifest(name, child.toString())));
    const blobs = [...new Set(record.blobs.map(String))];
    const children = [...new Set(record.children.map(String))];
    const { graceMs } = this.options;
    const missing = await this.locks.transaction(requests, async (c) => {
      let id = await repositoryId(c, name);
      if (!record.deferReferences) {
        // a repository that does not exist yet holds nothing a manifest could reference
        const absent = await this.missingReferences(c, id ?? -1, blobs, children);
        if (absent.length > 0) return absent;
      }
      id ??= await ensureRepository(c, name);
      // the document is content like any other: stored (bounded: at most the manifest size limit) before its row names it
      if ((await c.query('SELECT 1 FROM blobs WHERE digest = $1', [d])).rowCount === 0) {
        await this.driver.putContent(paths.blobData(record.digest), record.content);
        await c.query(`INSERT INTO blobs (digest, size) VALUES ($1, $2) ON CONFLICT (digest) DO UPDATE SET last_used_at = now()`,
          [d, record.content.length]);
      }
      // referenced again: nothing it needs is removed (a push cancels the reviews it would have lost to)
      await c.query('DELETE FROM gc_blob_review_queue WHERE digest = ANY($1::text[])', [[d, ...blobs]]);
      await c.query('UPDATE blobs SET last_used_at = now() WHERE digest = ANY($1::text[])', [[d, ...blobs]]);
      if (children.length > 0) {
        await c.query('DELETE FROM gc_manifest_review_queue WHERE repository_id = $1 AND digest = ANY($2::text[])', [id, children]);
      }
      // pushed again: written now (collection and retention measure an untagged manifest's age from here)
      const written = await c.query(`INSERT INTO manifests (repository_id, digest, media_type, size, artifact_type, subject, payload)
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = now()
        RETURNING (xmax = 0) AS inserted`,
      [id, d, record.mediaType, record.content.length, artifactTypeOf(record.content) ?? null, record.subject?.toString() ?? null, record.content]);
      const inserted = { rowCount: written.rows[0].inserted ? 1 : 0 };
      if (children.length > 0) {
        // named by an index: written now, as a touched revision link
        await c.query('UPDATE manifests SET created_at = now() WHERE repository_id = $1 AND digest = ANY($2::text[])', [id, children]);
      }
      if (inserted.rowCount === 1 && (blobs.length > 0 || children.length > 0)) {
        await c.query(`INSERT INTO manifest_references (repository_id, parent, child, kind)
          SELECT $1, $2, r.child, r.kind FROM unnest($3::text[], $4::text[]) AS r(child, kind) ON CONFLICT DO NOTHING`,
        [id, d, [...blobs, ...children], [...blobs.map(() => 'blob'), ...children.map(() => 'manifest')]]);
      }
      await markHasManifests(c, id);
      if (tag === undefined) {
        // pushed by digest: untagged until a tag or a parent names it
        if (inserted.rowCount === 1) await queueManifests(c, id, [d], graceMs, 'manifest_upload');
      } else {
        await c.query('DELETE FROM gc_manifest_review_queue WHERE repository_id = $1 AND digest = $2', [id, d]);
        const before = await c.query('SELECT digest FROM tags WHERE repository_id = $1 AND name = $2 FOR UPDATE', [id, tag]);
        await c.query(`INSERT INTO tags (repository_id, name, digest, cached) VALUES ($1, $2, $3, $4)
          ON CONFLICT (repository_id, name) DO UPDATE SET digest = EXCLUDED.digest, updated_at = now(), used_at = now(),
            cached = EXCLUDED.cached, pushed_at = now()`,
        [id, tag, d, !!record.deferReferences]);
        const old = before.rows[0]?.digest as string | undefined;
        if (old && old !== d) await queueManifests(c, id, [old], graceMs, 'tag_switch');
      }
      return [];
    });
    if (missing.length === 0) this.emit({ type: 'manifest-put', name, record, tag });
    return missing;
  }

  private async missingReferences(c: PoolClient, id: number, blobs: string[], children: string[]): Promise<MissingReference[]> {
    const missing: MissingReference[] = [];
    if (blobs.length > 0) {
      const found = new Set((await c.query(`SELECT rb.digest FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
        WHERE rb.repository_id = $1 AND rb.digest = ANY($2::text[])`, [id, blobs])).rows.map((r) => r.digest as string));
      for (const b of blobs) if (!found.has(b)) missing.push({ digest: parseDigest(b), kind: 'blob' });
    }
    const rest = children.filter((ch) => !blobs.includes(ch));
    if (rest.length > 0) {
      const found = new Set((await c.query('SELECT digest FROM manifests WHERE repository_id = $1 AND digest = ANY($2::text[])',
        [id, rest])).rows.map((r) => r.digest as string));
      for (const ch of rest) if (!found.has(ch)) missing.push({ digest: parseDigest(ch), kind: 'manifest' });
    }
    return missing;
  }

  async deleteManifest(name: string, digest: Digest): Promise<boolean> {
    const d = digest.toString();
    const tags = await this.locks.transaction([shared(K.repository(name)), excl(K.manifest(name, d))], async (c) => {
      const id = await repositoryId(c, name);
      return id === undefined ? undefined : removeManifest(c, id, d, this.options.graceMs, 'manifest_delete');
    });
    if (!tags) return false;
    this.emit({ type: 'manifest-deleted', name, digest, tags });
    return true;
  }

  async deleteTag(name: string, tag: string, expected?: Digest): Promise<boolean> {
    const removed = await this.locks.transaction([shared(K.repository(name)), excl(K.tag(name, tag))], async (c) => {
      const id = await repositoryId(c, name);
      if (id === undefined) return false;
      const gone = await c.query(`DELETE FROM tags WHERE repository_id = $1 AND name = $2 AND ($3::text IS NULL OR digest = $3)
        RETURNING digest`, [id, tag, expected?.toString() ?? null]);
      if (gone.rowCount === 0) return false;
      await queueManifests(c, id, [gone.rows[0].digest], this.options.graceMs, 'tag_delete');
      return true;
    });
    if (removed) this.emit({ type: 'tag-deleted', name, tag });
    return removed;
  }

  async deleteRepository(name: string): Promise<boolean> {
    const removed = await this.locks.transaction([excl(K.repository(name))], async (c) => {
      const id = await repositoryId(c, name);
      if (id === undefined) return false;
      // everything it held is reviewed: content other repositories reference stays
      const held = await c.query(`SELECT digest FROM manifests WHERE repository_id = $1
        UNION SELECT child FROM manifest_references WHERE repository_id = $1 AND kind = 'blob'
        UNION SELECT digest FROM repository_blobs WHERE repository_id = $1`, [id]);
      await queueBlobs(c, held.rows.map((r) => r.digest as string), this.options.graceMs, 'repository_delete');
      const gone = await c.query('DELETE FROM repositories WHERE id = $1 RETURNING manifests_at', [id]);
      if (gone.rows[0]?.manifests_at) await c.query('UPDATE catalog_version SET version = version + 1');
      return true;
    });
    // uploads in progress are storage only
    await this.driver.delete(`${paths.repository(name)}/_uploads`).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
    if (removed) this.emit({ type: 'repository-deleted', name });
    return removed;
  }

  // ---------------------------------------------------------------- collection (retention, and a walk asked for)

  async sweepBlob(digest: Digest, usedBefore: number): Promise<boolean> {
    const d = digest.toString();
    const removed = await this.locks.transaction([excl(K.blob(d))], async (c) => {
      const row = (await c.query('SELECT last_used_at FROM blobs WHERE digest = $1', [d])).rows[0];
      if (!row || (row.last_used_at as Date).getTime() >= usedBefore) return false;
      if (await referenced(c, d)) return false;
      await c.query('DELETE FROM blobs WHERE digest = $1', [d]);
      // before the commit: on failure the row stays; already gone, the row goes now
      await this.driver.delete(paths.blobDir(digest)).catch((err) => { if (!isNotFound(err)) throw err; });
      return true;
    });
    if (removed) this.emit({ type: 'blob-deleted', digest });
    return removed;
  }

  async sweepManifest(name: string, digest: Digest, writtenBefore: number): Promise<boolean> {
    const d = digest.toString();
    const tags = await this.locks.transaction([shared(K.repository(name)), excl(K.manifest(name, d))], async (c) => {
      const id = await repositoryId(c, name);
      if (id === undefined) return undefined;
      const row = (await c.query(`SELECT m.created_at, EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest) AS tagged
        FROM manifests m WHERE m.repository_id = $1 AND m.digest = $2`, [id, d])).rows[0];
      if (!row || row.tagged || (row.created_at as Date).getTime() >= writtenBefore) return undefined;
      return removeManifest(c, id, d, this.options.graceMs, 'retention');
    });
    if (!tags) return false;
    this.emit({ type: 'manifest-deleted', name, digest, tags });
    return true;
  }

  /** A link to content that is not stored cannot exist here (the row goes with the content). */
  async sweepLayerLink(): Promise<boolean> {
    return false;
  }

  /** Tags are rows, written whole or not at all: a crash leaves none broken. */
  async sweepBrokenTags(): Promise<number> {
    return 0;
  }
}

/** Whether any manifest, in any repository, is this content or references it. */
export async function referenced(c: Pick<PoolClient, 'query'>, digest: string): Promise<boolean> {
  const row = (await c.query(`SELECT EXISTS (SELECT 1 FROM manifests WHERE digest = $1)
    OR EXISTS (SELECT 1 FROM manifest_references WHERE child = $1 AND kind = 'blob') AS used`, [digest])).rows[0];
  return row.used;
}
