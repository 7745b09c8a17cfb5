// A metadata store decorator for storage where every read is a network round trip (S3): what a
// repository holds by digest -- a revision and its media type, a blob link -- is remembered
// once read, so a warm manifest GET by digest or blob HEAD costs no storage request.
//
// Only facts named by digest are kept, and only positive ones: a digest's content never
// changes, so the only way such a fact goes stale is a deletion. Deletions made through this
// process drop the entry at once (the store's events); those made by another process sharing
// the storage are seen within `ttlMs`. Tags move, so tag reads always go to storage. Writes,
// listings and collection go straight through, under the inner store's locks.
import type { ManifestRecord, MetadataEvent, MetadataStore, MissingReference } from './metadata.js';
import type { Digest } from './names.js';

const MAX_ENTRIES = 100_000;

class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; until: number }>();
  constructor(private readonly ttlMs: number) {}

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.until < Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: V): void {
    this.entries.delete(key);
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { value, until: Date.now() + this.ttlMs });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  /** Drops every entry whose key starts with `prefix` (all of them without one). */
  clear(prefix?: string): void {
    if (prefix === undefined) {
      this.entries.clear();
      return;
    }
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.entries.delete(key);
  }
}

export class CachedMetadataStore implements MetadataStore {
  private readonly revisionsSeen: TtlCache<{ mediaType: string }>;
  private readonly presentSeen: TtlCache<true>;
  private readonly linksSeen: TtlCache<true>;

  constructor(private readonly inner: MetadataStore, ttlMs: number) {
    this.revisionsSeen = new TtlCache(ttlMs);
    this.presentSeen = new TtlCache(ttlMs);
    this.linksSeen = new TtlCache(ttlMs);
    inner.subscribe((event) => this.forget(event));
  }

  private forget(event: MetadataEvent): void {
    switch (event.type) {
      case 'manifest-deleted':
        this.revisionsSeen.delete(key(event.name, event.digest));
        this.presentSeen.delete(key(event.name, event.digest));
        break;
      case 'blob-unlinked': this.linksSeen.delete(key(event.name, event.digest)); break;
      case 'blob-deleted': this.linksSeen.clear(); break; // collection: rare, and links to it are swept next
      case 'repository-deleted':
        this.revisionsSeen.clear(`${event.name}@`);
        this.presentSeen.clear(`${event.name}@`);
        this.linksSeen.clear(`${event.name}@`);
        break;
      default:
    }
  }

  /** Forgets everything: collection ran in another process. */
  forgetAll(): void {
    this.revisionsSeen.clear();
    this.presentSeen.clear();
    this.linksSeen.clear();
  }

  async revision(name: string, digest: Digest): Promise<{ mediaType: string } | undefined> {
    const k = key(name, digest);
    const known = this.revisionsSeen.get(k);
    if (known) return known;
    const found = await this.inner.revision(name, digest);
    if (found) this.revisionsSeen.set(k, found);
    return found;
  }

  async hasRevision(name: string, digest: Digest): Promise<boolean> {
    const k = key(name, digest);
    if (this.revisionsSeen.get(k) || this.presentSeen.get(k)) return true;
    const present = await this.inner.hasRevision(name, digest);
    if (present) this.presentSeen.set(k, true);
    return present;
  }

  async blobLinked(name: string, digest: Digest): Promise<boolean> {
    const k = key(name, digest);
    if (this.linksSeen.get(k)) return true;
    const linked = await this.inner.blobLinked(name, digest);
    if (linked) this.linksSeen.set(k, true);
    return linked;
  }

  // ---- straight through

  tag(name: string, tag: string): Promise<Digest | undefined> { return this.inner.tag(name, tag); }
  tags(name: string): Promise<string[]> { return this.inner.tags(name); }
  revisions(name: string): Promise<Digest[]> { return this.inner.revisions(name); }
  layers(name: string): Promise<Digest[]> { return this.inner.layers(name); }
  referrers(name: string, subject: Digest): Promise<Digest[]> { return this.inner.referrers(name, subject); }
  repositories(): Promise<string[]> { return this.inner.repositories(); }
  tagUsedAt(name: string, tag: string): Promise<number | undefined> { return this.inner.tagUsedAt(name, tag); }
  tagPushedAt(name: string, tag: string): Promise<number | undefined> { return this.inner.tagPushedAt(name, tag); }
  revisionWrittenAt(name: string, digest: Digest): Promise<number | undefined> { return this.inner.revisionWrittenAt(name, digest); }
  blobStat(digest: Digest): Promise<{ size: number; lastUsed: number } | undefined> { return this.inner.blobStat(digest); }
  commitBlob(name: string, digest: Digest, source: string): Promise<void> { return this.inner.commitBlob(name, digest, source); }
  mountBlob(name: string, digest: Digest): Promise<boolean> { return this.inner.mountBlob(name, digest); }
  unlinkBlob(name: string, digest: Digest): Promise<boolean> { return this.inner.unlinkBlob(name, digest); }
  useBlob<T>(digest: Digest, check: () => Promise<T | undefined>): Promise<T | undefined> { return this.inner.useBlob(digest, check); }
  touchTag(name: string, tag: string): Promise<void> { return this.inner.touchTag(name, tag); }
  putManifest(name: string, record: ManifestRecord, tag?: string): Promise<MissingReference[]> { return this.inner.putManifest(name, record, tag); }
  deleteManifest(name: string, digest: Digest): Promise<boolean> { return this.inner.deleteManifest(name, digest); }
  deleteTag(name: string, tag: string): Promise<boolean> { return this.inner.deleteTag(name, tag); }
  deleteRepository(name: string): Promise<boolean> { return this.inner.deleteRepository(name); }
  sweepBlob(digest: Digest, usedBefore: number): Promise<boolean> { return this.inner.sweepBlob(digest, usedBefore); }
  sweepManifest(name: string, digest: Digest, writtenBefore: number): Promise<boolean> { return this.inner.sweepManifest(name, digest, writtenBefore); }
  sweepLayerLink(name: string, digest: Digest): Promise<boolean> { return this.inner.sweepLayerLink(name, digest); }
  sweepBrokenTags(name: string, madeBefore: number): Promise<number> { return this.inner.sweepBrokenTags(name, madeBefore); }
  subscribe(listener: (event: MetadataEvent) => void): void { this.inner.subscribe(listener); }
}

function key(name: string, digest: Digest): string {
  return `${name}@${digest}`;
}
