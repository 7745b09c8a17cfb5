// Statements shared by the store, the reviewer of the collection queues and the import: each
// runs on the client of a transaction its caller holds (under the locks the caller took).
import type { PoolClient } from './pool.js';

type Q = Pick<PoolClient, 'query'>;

/** The id of a repository, or undefined when there is none. */
export async function repositoryId(c: Q, name: string): Promise<number | undefined> {
  return (await c.query('SELECT id FROM repositories WHERE name = $1', [name])).rows[0]?.id;
}

/** The id of a repository, made when missing (under its shared lock, so it cannot be deleted meanwhile). */
export async function ensureRepository(c: Q, name: string): Promise<number> {
  const made = await c.query('INSERT INTO repositories (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id', [name]);
  return made.rows[0]?.id ?? (await repositoryId(c, name))!;
}

/** Marks a repository as holding manifests (it joins the catalog); true when that is new. */
export async function markHasManifests(c: Q, id: number): Promise<boolean> {
  const marked = await c.query('UPDATE repositories SET manifests_at = now() WHERE id = $1 AND manifests_at IS NULL', [id]);
  if (marked.rowCount === 0) return false;
  await c.query('UPDATE catalog_version SET version = version + 1');
  return true;
}

/**
 * Queues stored content for review after `graceMs` (a review already due later keeps its time).
 * Only content with a row can be queued: the queue never names content that is not stored.
 */
export async function queueBlobs(c: Q, digests: string[], graceMs: number, event: string): Promise<void> {
  if (digests.length === 0) return;
  await c.query(`INSERT INTO gc_blob_review_queue (digest, review_after, event)
    SELECT b.digest, now() + $2 * interval '1 millisecond', $3 FROM blobs b WHERE b.digest = ANY($1::text[])
    ON CONFLICT (digest) DO UPDATE SET review_after = greatest(gc_blob_review_queue.review_after, EXCLUDED.review_after), event = EXCLUDED.event`,
  [[...new Set(digests)], graceMs, event]);
}

/** Queues manifests of a repository for review after `graceMs`. */
export async function queueManifests(c: Q, repositoryId: number, digests: string[], graceMs: number, event: string): Promise<void> {
  if (digests.length === 0) return;
  await c.query(`INSERT INTO gc_manifest_review_queue (repository_id, digest, review_after, event)
    SELECT m.repository_id, m.digest, now() + $3 * interval '1 millisecond', $4 FROM manifests m
    WHERE m.repository_id = $1 AND m.digest = ANY($2::text[])
    ON CONFLICT (repository_id, digest) DO UPDATE SET review_after = greatest(gc_manifest_review_queue.review_after, EXCLUDED.review_after), event = EXCLUDED.event`,
  [repositoryId, [...new Set(digests)], graceMs, event]);
}

/**
 * Removes a manifest from a repository with its tags and references (one statement each, in the
 * caller's transaction), and queues what it referenced: its own document and blobs for the blob
 * review, its index children and its referrers for the manifest review. Returns the tags it
 * removed, or undefined when the manifest was not there.
 */
export async function removeManifest(c: Q, repositoryId: number, digest: string, graceMs: number, event: string): Promise<string[] | undefined> {
  const tags = await c.query('DELETE FROM tags WHERE repository_id = $1 AND digest = $2 RETURNING name', [repositoryId, digest]);
  const refs = await c.query('SELECT child, kind FROM manifest_references WHERE repository_id = $1 AND parent = $2', [repositoryId, digest]);
  const removed = await c.query('DELETE FROM manifests WHERE repository_id = $1 AND digest = $2 RETURNING digest', [repositoryId, digest]);
  if (removed.rowCount === 0) return undefined;
  await c.query('DELETE FROM gc_manifest_review_queue WHERE repository_id = $1 AND digest = $2', [repositoryId, digest]);
  const blobs = [digest, ...refs.rows.filter((r) => r.kind === 'blob').map((r) => r.child as string)];
  await queueBlobs(c, blobs, graceMs, event);
  const referrers = await c.query('SELECT digest FROM manifests WHERE repository_id = $1 AND subject = $2', [repositoryId, digest]);
  await queueManifests(c, repositoryId, [...refs.rows.filter((r) => r.kind === 'manifest').map((r) => r.child as string),
    ...referrers.rows.map((r) => r.digest as string)], graceMs, event);
  return tags.rows.map((r) => r.name as string).sort();
}
