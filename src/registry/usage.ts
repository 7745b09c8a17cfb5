// Usage accounting: per repository, its tags, manifests, total and unique bytes and last push.
// Built once from a source (a walk of storage, usage-walk.ts, or a database's queries) in the
// background at startup, then kept up to date from the metadata store's events, so answering
// never walks storage. Changes made by other processes sharing the storage are picked up by the
// next rebuild (after each collection, and on a timer).
import type { MetadataEvent, MetadataStore } from './metadata.js';
import type { Digest } from './names.js';

export interface RepositoryUsage {
  name: string;
  tags: number;
  manifests: number;
  /** Bytes of every distinct blob and manifest the repository references. */
  bytes: number;
  /** Of those, the bytes no other repository references. */
  uniqueBytes: number;
  lastPush?: string;
}

export interface ManifestEntry {
  size: number;
  /** Blobs with their sizes, from the manifest's own descriptors. */
  blobs: Map<string, number>;
}

export interface RepoEntry {
  tags: Map<string, number>;
  manifests: Map<string, ManifestEntry>;
  lastPush: number;
}

/** Digest and size of every descriptor (config, layers) a stored manifest lists; lenient. */
function blobsOf(content: Buffer): Map<string, number> {
  const blobs = new Map<string, number>();
  try {
    const doc = JSON.parse(content.toString('utf8')) as { config?: unknown; layers?: unknown; fsLayers?: unknown };
    const add = (d: unknown) => {
      const { digest, size } = (d ?? {}) as { digest?: unknown; size?: unknown };
      if (typeof digest === 'string') blobs.set(digest, typeof size === 'number' && size >= 0 ? size : 0);
    };
    add(doc.config);
    if (Array.isArray(doc.layers)) doc.layers.forEach(add);
  } catch { /* unreadable: counts its own bytes only */ }
  return blobs;
}

/** A manifest's own bytes count as one of the blobs it keeps. */
export function entryFor(digest: Digest, content: Buffer): ManifestEntry {
  const blobs = blobsOf(content);
  blobs.set(digest.toString(), content.length);
  return { size: content.length, blobs };
}

/** Where the figures come from: a walk of storage (usage-walk.ts), or a database's queries. */
export interface UsageSource {
  /** Every repository's entry; `previous` is what the last load gave, as kept up to date since. */
  load(previous?: ReadonlyMap<string, RepoEntry>): Promise<Map<string, RepoEntry>>;
}

export class UsageIndex {
  private repos = new Map<string, RepoEntry>();
  /** Blob → the repositories referencing it, with how many of their manifests do. */
  private refs = new Map<string, Map<string, number>>();
  /** The first successful walk (reset when it fails, so a later call tries again). */
  private first: Promise<void> | undefined;
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  /** Events arriving during a walk, applied again after it (one walk at a time). */
  private pending: MetadataEvent[] | undefined;

  constructor(store: MetadataStore, private readonly source: UsageSource) {
    store.subscribe((event) => {
      // applied at once (quotas read these figures), and again after a walk in progress, which may
      // have read the repository before the change (every event applies idempotently)
      this.apply(event);
      this.pending?.push(event);
    });
  }

  /** Resolves once a first walk is done. */
  ready(): Promise<void> {
    this.first ??= this.rebuild().catch((err) => {
      this.first = undefined;
      throw err;
    });
    return this.first;
  }

  /** Walks storage again. One walk runs at a time; requests meanwhile share one walk after it. */
  rebuild(): Promise<void> {
    if (!this.running) {
      this.running = this.walk().finally(() => { this.running = undefined; });
      return this.running;
    }
    this.queued ??= this.running.catch(() => undefined).then(() => {
      this.queued = undefined;
      return this.rebuild();
    });
    return this.queued;
  }

  private async walk(): Promise<void> {
    this.pending = [];
    try {
      const repos = await this.source.load(this.repos);
      this.repos = repos;
      this.refs = new Map();
      for (const [name, repo] of repos) for (const m of repo.manifests.values()) this.addRefs(name, m);
    } finally {
      const events = this.pending;
      this.pending = undefined;
      events.forEach((e) => this.apply(e));
    }
  }

  names(): string[] {
    return [...this.repos.keys()].sort();
  }

  /** Every distinct blob and manifest a repository's manifests reference, with its size. */
  referenced(name: string): Map<string, number> {
    const blobs = new Map<string, number>();
    for (const m of this.repos.get(name)?.manifests.values() ?? []) for (const [blob, size] of m.blobs) blobs.set(blob, size);
    return blobs;
  }

  usage(name: string): RepositoryUsage | undefined {
    const repo = this.repos.get(name);
    if (!repo) return undefined;
    const blobs = this.referenced(name);
    let bytes = 0;
    let uniqueBytes = 0;
    for (const [blob, size] of blobs) {
      bytes += size;
      if ((this.refs.get(blob)?.size ?? 0) <= 1) uniqueBytes += size;
    }
    return {
      name, tags: repo.tags.size, manifests: repo.manifests.size, bytes, uniqueBytes,
      lastPush: repo.lastPush ? new Date(repo.lastPush).toISOString() : undefined,
    };
  }

  /** Every repository together: how many, and the bytes of the distinct blobs and manifests they reference. */
  totals(): { repositories: number; bytes: number } {
    const sizes = new Map<string, number>();
    for (const repo of this.repos.values()) for (const m of repo.manifests.values()) for (const [blob, size] of m.blobs) sizes.set(blob, size);
    let bytes = 0;
    for (const size of sizes.values()) bytes += size;
    return { repositories: this.repos.size, bytes };
  }

  /** Tags of a repository with the time each was last pushed (ms since the epoch). */
  tagTimes(name: string): Map<string, number> {
    return new Map(this.repos.get(name)?.tags ?? []);
  }

  private addRefs(name: string, m: ManifestEntry, delta = 1): void {
    for (const blob of m.blobs.keys()) {
      let by = this.refs.get(blob);
      if (!by) this.refs.set(blob, (by = new Map()));
      const n = (by.get(name) ?? 0) + delta;
      if (n > 0) by.set(name, n); else by.delete(name);
      if (by.size === 0) this.refs.delete(blob);
    }
  }

  private repo(name: string): RepoEntry {
    let repo = this.repos.get(name);
    if (!repo) this.repos.set(name, (repo = { tags: new Map(), manifests: new Map(), lastPush: 0 }));
    return repo;
  }

  private apply(event: MetadataEvent): void {
    switch (event.type) {
      case 'manifest-put': {
        const repo = this.repo(event.name);
        const key = event.record.digest.toString();
        if (!repo.manifests.has(key)) {
          const entry = entryFor(event.record.digest, event.record.content);
          repo.manifests.set(key, entry);
          this.addRefs(event.name, entry);
        }
        repo.lastPush = Date.now();
        if (event.tag !== undefined) repo.tags.set(event.tag, repo.lastPush);
        break;
      }
      case 'manifest-deleted': {
        const repo = this.repos.get(event.name);
        const entry = repo?.manifests.get(event.digest.toString());
        if (!repo || !entry) break;
        repo.manifests.delete(event.digest.toString());
        this.addRefs(event.name, entry, -1);
        for (const tag of event.tags) repo.tags.delete(tag);
        break;
      }
      case 'tag-deleted':
        this.repos.get(event.name)?.tags.delete(event.tag);
        break;
      case 'repository-deleted': {
        const repo = this.repos.get(event.name);
        if (!repo) break;
        for (const m of repo.manifests.values()) this.addRefs(event.name, m, -1);
        this.repos.delete(event.name);
        break;
      }
      default:
        break;
    }
  }
}
