// What the catalog and the usage figures read when the database is the index: a few queries
// instead of a walk of storage.
import type { RepositorySource } from '../registry/catalog.js';
import type { RepoEntry, UsageSource } from '../registry/usage.js';
import { asUnavailable } from './pool.js';
import type { PgMetadataStore } from './store.js';

export class PgRepositorySource implements RepositorySource {
  constructor(private readonly store: PgMetadataStore) {}
  list(): Promise<string[]> { return this.store.repositories(); }
  version(): Promise<string> { return this.store.catalogVersion(); }
}

export class PgUsageSource implements UsageSource {
  constructor(private readonly store: PgMetadataStore) {}

  async load(): Promise<Map<string, RepoEntry>> {
    try {
      return await this.read();
    } catch (err) {
      throw asUnavailable(err);
    }
  }

  private async read(): Promise<Map<string, RepoEntry>> {
    const { pool } = this.store;
    // three scans, each in the order of its primary key; a blob's size comes from its row (0 when not stored)
    const [manifests, references, tags] = await Promise.all([
      pool.query(`SELECT r.name, m.digest, m.size FROM manifests m JOIN repositories r ON r.id = m.repository_id`),
      pool.query(`SELECT r.name, mr.parent, mr.child, coalesce(b.size, 0) AS size FROM manifest_references mr
        JOIN repositories r ON r.id = mr.repository_id LEFT JOIN blobs b ON b.digest = mr.child WHERE mr.kind = 'blob'`),
      pool.query(`SELECT r.name, t.name AS tag, t.pushed_at FROM tags t JOIN repositories r ON r.id = t.repository_id`),
    ]);
    const repos = new Map<string, RepoEntry>();
    const repo = (name: string): RepoEntry => {
      let entry = repos.get(name);
      if (!entry) repos.set(name, (entry = { tags: new Map(), manifests: new Map(), lastPush: 0 }));
      return entry;
    };
    for (const row of (await pool.query('SELECT name FROM repositories WHERE manifests_at IS NOT NULL')).rows) repo(row.name);
    for (const row of manifests.rows) {
      repo(row.name).manifests.set(row.digest, { size: row.size, blobs: new Map([[row.digest as string, row.size as number]]) });
    }
    for (const row of references.rows) repos.get(row.name)?.manifests.get(row.parent)?.blobs.set(row.child, row.size);
    for (const row of tags.rows) {
      const entry = repo(row.name);
      const at = (row.pushed_at as Date).getTime();
      entry.tags.set(row.tag, at);
      entry.lastPush = Math.max(entry.lastPush, at);
    }
    return repos;
  }
}
