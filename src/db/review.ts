// Online collection from the review queues (GitLab container registry's design): content and
// manifests whose last reference went away wait in gc_blob_review_queue and
// gc_manifest_review_queue until review_after. Any process takes due items; each review is one
// transaction that first takes the item's advisory lock without waiting (another process
// reviewing it, or a push using it, makes it skip the item for now), then its queue row with
// FOR UPDATE SKIP LOCKED, checks again that nothing references it, and deletes it: the rows,
// then the bytes in storage, then commits, so a failed deletion keeps everything. No walk of
// storage or of the repositories is needed.
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import type { GcOptions, GcReport } from '../registry/gc.js';
import { lockKeys as K } from '../registry/locks.js';
import { parseDigest } from '../registry/names.js';
import { paths } from '../registry/paths.js';
import { removeManifest } from './sql.js';
import { referenced, type PgMetadataStore } from './store.js';

/** Items read from a queue at a time. */
const BATCH = 100;

export interface ReviewTotals {
  blobsReviewed: number;
  blobsDeleted: number;
  bytesFreed: number;
  manifestsReviewed: number;
  manifestsDeleted: number;
}

export interface ReviewObserver {
  reviewed?(queue: 'blob' | 'manifest', outcome: 'deleted' | 'kept' | 'skipped'): void;
}

export class QueueReviewer {
  constructor(private readonly store: PgMetadataStore, private readonly driver: StorageDriver,
              readonly observer: ReviewObserver = {}) {}

  /** Due items in each queue. */
  async depth(): Promise<{ blob: number; manifest: number; due: { blob: number; manifest: number } }> {
    const { rows } = await this.store.pool.query(`SELECT
      (SELECT count(*) FROM gc_blob_review_queue) AS blob, (SELECT count(*) FROM gc_manifest_review_queue) AS manifest,
      (SELECT count(*) FROM gc_blob_review_queue WHERE review_after <= now()) AS blob_due,
      (SELECT count(*) FROM gc_manifest_review_queue WHERE review_after <= now()) AS manifest_due`);
    const r = rows[0];
    return { blob: r.blob, manifest: r.manifest, due: { blob: r.blob_due, manifest: r.manifest_due } };
  }

  /**
   * Reviews every due item (manifests first, when untagged ones are collected, since removing one
   * queues its content). In a dry run nothing is removed and what would be is counted.
   */
  async reviewDue(options: { deleteUntagged: boolean; dryRun: boolean; onDelete?: GcOptions['onDelete']; graceMs?: number }): Promise<ReviewTotals> {
    // a shorter grace than the queues were filled with brings reviews forward (a collection asked with grace 0 takes everything queued)
    const ahead = Math.max(0, this.store.options.graceMs - (options.graceMs ?? this.store.options.graceMs));
    const totals: ReviewTotals = { blobsReviewed: 0, blobsDeleted: 0, bytesFreed: 0, manifestsReviewed: 0, manifestsDeleted: 0 };
    if (options.deleteUntagged) {
      const seen = new Set<string>();
      for (;;) {
        const due = (await this.store.pool.query(`SELECT q.repository_id, r.name, q.digest FROM gc_manifest_review_queue q
          JOIN repositories r ON r.id = q.repository_id WHERE q.review_after <= now() + $2 * interval '1 millisecond' ORDER BY q.review_after LIMIT $1`, [BATCH + seen.size, ahead])).rows
          .filter((row) => !seen.has(`${row.repository_id}@${row.digest}`));
        if (due.length === 0) break;
        for (const row of due) {
          seen.add(`${row.repository_id}@${row.digest}`);
          totals.manifestsReviewed++;
          if (await this.reviewManifest(row.repository_id, row.name, row.digest, options.dryRun, ahead)) {
            totals.manifestsDeleted++;
            options.onDelete?.('manifest', { repository: row.name, digest: row.digest });
          }
        }
      }
    }
    const seen = new Set<string>();
    for (;;) {
      const due = (await this.store.pool.query(`SELECT digest FROM gc_blob_review_queue
        WHERE review_after <= now() + $2 * interval '1 millisecond' ORDER BY review_after LIMIT $1`, [BATCH + seen.size, ahead])).rows.filter((row) => !seen.has(row.digest));
      if (due.length === 0) break;
      for (const { digest } of due) {
        seen.add(digest);
        totals.blobsReviewed++;
        const freed = await this.reviewBlob(digest, options.dryRun, ahead);
        if (freed !== undefined) {
          totals.blobsDeleted++;
          totals.bytesFreed += freed;
          options.onDelete?.('blob', { digest });
        }
      }
    }
    return totals;
  }

  /** Reviews one queued blob; the bytes freed when it was (or would be) removed. */
  async reviewBlob(digest: string, dryRun = false, aheadMs = 0): Promise<number | undefined> {
    const attempt = await this.store.locks.tryTransaction([{ key: K.blob(digest), mode: 'exclusive' }], async (c) => {
      const queued = await c.query(`SELECT 1 FROM gc_blob_review_queue WHERE digest = $1
        AND review_after <= now() + $2 * interval '1 millisecond' FOR UPDATE SKIP LOCKED`, [digest, aheadMs]);
      if (queued.rowCount === 0) return { outcome: 'skipped' as const };
      if (await referenced(c, digest)) {
        if (!dryRun) await c.query('DELETE FROM gc_blob_review_queue WHERE digest = $1', [digest]);
        return { outcome: 'kept' as const };
      }
      const size = (await c.query('SELECT size FROM blobs WHERE digest = $1', [digest])).rows[0]?.size as number | undefined;
      if (dryRun) return { outcome: 'deleted' as const, size: size ?? 0 };
      // the row (with its links and queue entry) goes in this transaction, the bytes before it commits
      await c.query('DELETE FROM blobs WHERE digest = $1', [digest]);
      // already gone (a crash after the bytes went and before the commit): the rows go now
      await this.driver.delete(paths.blobDir(parseDigest(digest))).catch((err) => { if (!isNotFound(err)) throw err; });
      return { outcome: 'deleted' as const, size: size ?? 0 };
    });
    const outcome = attempt.ran ? attempt.result.outcome : 'skipped';
    this.observer.reviewed?.('blob', outcome);
    if (!attempt.ran || attempt.result.outcome !== 'deleted') return undefined;
    if (!dryRun) this.store.emit({ type: 'blob-deleted', digest: parseDigest(digest) });
    return attempt.result.size;
  }

  /**
   * Reviews one queued manifest: it stays while a tag points at it, an index of its repository
   * lists it, or it is a referrer of a manifest still there. Removing it queues its content.
   */
  async reviewManifest(repositoryId: number, name: string, digest: string, dryRun = false, aheadMs = 0): Promise<boolean> {
    const attempt = await this.store.locks.tryTransaction([
      { key: K.repository(name), mode: 'shared' }, { key: K.manifest(name, digest), mode: 'exclusive' },
    ], async (c) => {
      const queued = await c.query(`SELECT 1 FROM gc_manifest_review_queue WHERE repository_id = $1 AND digest = $2
        AND review_after <= now() + $3 * interval '1 millisecond' FOR UPDATE SKIP LOCKED`, [repositoryId, digest, aheadMs]);
      if (queued.rowCount === 0) return undefined;
      const { rows } = await c.query(`SELECT
        EXISTS (SELECT 1 FROM tags WHERE repository_id = $1 AND digest = $2)
        OR EXISTS (SELECT 1 FROM manifest_references WHERE repository_id = $1 AND child = $2 AND kind = 'manifest')
        OR EXISTS (SELECT 1 FROM manifests m JOIN manifests s ON s.repository_id = m.repository_id AND s.digest = m.subject
                   WHERE m.repository_id = $1 AND m.digest = $2) AS kept`, [repositoryId, digest]);
      if (rows[0].kept) {
        if (!dryRun) await c.query('DELETE FROM gc_manifest_review_queue WHERE repository_id = $1 AND digest = $2', [repositoryId, digest]);
        return undefined;
      }
      if (dryRun) return [];
      return removeManifest(c, repositoryId, digest, this.store.options.graceMs, 'manifest_review');
    });
    const removed = attempt.ran ? attempt.result : undefined;
    this.observer.reviewed?.('manifest', !attempt.ran ? 'skipped' : removed ? 'deleted' : 'kept');
    if (!removed) return false;
    if (!dryRun) this.store.emit({ type: 'manifest-deleted', name, digest: parseDigest(digest), tags: removed });
    return true;
  }

  /** A collection asked for (POST /api/v1/gc, berth gc, the schedule): the due queue, and idle uploads. */
  async collect(options: GcOptions): Promise<GcReport> {
    const started = Date.now();
    const totals = await this.reviewDue(options);
    const uploadsDeleted = options.dryRun || !options.purgeUploads ? 0
      : (await options.purgeUploads(new Date(started - Math.max(0, options.graceMs)))).count;
    const durationMs = Date.now() - started;
    return {
      startedAt: new Date(started).toISOString(), finishedAt: new Date().toISOString(), dryRun: options.dryRun,
      repositories: 0, manifestsDeleted: totals.manifestsDeleted, blobsKept: totals.blobsReviewed - totals.blobsDeleted,
      blobsDeleted: totals.blobsDeleted, bytesFreed: totals.bytesFreed, layerLinksDeleted: 0, brokenTagsDeleted: 0,
      uploadsDeleted, unreadableManifests: 0, durationMs,
    };
  }
}
