// The write guard: a MetadataStore decorator that consults `policies` before each write a client
// asks for — blob commit and mount (bytes, a new repository under a namespace), manifest put (a
// tag moved, new tags, bytes, a new repository), tag, manifest and repository deletes (immutable
// tags) — and refuses with 403 DENIED naming the rule, the limit and the current usage. Reads and
// collection pass straight through; so do the pull-through cache's writes (they go to the inner
// store, and copies of an upstream's manifests are never refused).
//
// A check and the write it guards run under the guard's own keyed locks, taken before the inner
// store's locks and never while holding them: the tag (for immutability), the repository (for
// its bytes and tags) and each namespace with a repository limit the repository lies under. So
// two pushes racing for the last bytes, the last tag or the last repository of a namespace are
// ordered, and the second sees what the first used.
import { excl, KeyedLocks, type LockRequest } from '../registry/locks.js';
import { RegistryError } from '../registry/errors.js';
import type { ManifestRecord, MetadataEvent, MetadataStore, MissingReference } from '../registry/metadata.js';
import type { Digest } from '../registry/names.js';
import type { StorageDriver } from '../storage/driver.js';
import type { UsageIndex } from '../registry/usage.js';
import type { QuotaLedger } from './quota.js';
import type { PolicySet } from './rules.js';


export class GuardedMetadataStore implements MetadataStore {
  private readonly locks = new KeyedLocks();

  constructor(private readonly inner: MetadataStore, private readonly policies: PolicySet, private readonly quotas: QuotaLedger,
              private readonly usage: UsageIndex, private readonly driver: StorageDriver) {
    if (inner.manifest) this.manifest = (name, digest) => inner.manifest!(name, digest);
  }

  // ---- reads and collection: unchanged
  tag(name: string, tag: string) { return this.inner.tag(name, tag); }
  tags(name: string) { return this.inner.tags(name); }
  revision(name: string, digest: Digest) { return this.inner.revision(name, digest); }
  hasRevision(name: string, digest: Digest) { return this.inner.hasRevision(name, digest); }
  revisions(name: string) { return this.inner.revisions(name); }
  readonly manifest?: MetadataStore['manifest'];
  blobLinked(name: string, digest: Digest) { return this.inner.blobLinked(name, digest); }
  layers(name: string) { return this.inner.layers(name); }
  referrers(name: string, subject: Digest) { return this.inner.referrers(name, subject); }
  repositories() { return this.inner.repositories(); }
  tagUsedAt(name: string, tag: string) { return this.inner.tagUsedAt(name, tag); }
  tagPushedAt(name: string, tag: string) { return this.inner.tagPushedAt(name, tag); }
  revisionWrittenAt(name: string, digest: Digest) { return this.inner.revisionWrittenAt(name, digest); }
  blobStat(digest: Digest) { return this.inner.blobStat(digest); }
  unlinkBlob(name: string, digest: Digest) { return this.inner.unlinkBlob(name, digest); }
  useBlob<T>(digest: Digest, check: () => Promise<T | undefined>) { return this.inner.useBlob(digest, check); }
  touchTag(name: string, tag: string) { return this.inner.touchTag(name, tag); }
  sweepBlob(digest: Digest, usedBefore: number) { return this.inner.sweepBlob(digest, usedBefore); }
  sweepManifest(name: string, digest: Digest, writtenBefore: number) { return this.inner.sweepManifest(name, digest, writtenBefore); }
  sweepLayerLink(name: string, digest: Digest) { return this.inner.sweepLayerLink(name, digest); }
  sweepBrokenTags(name: string, madeBefore: number) { return this.inner.sweepBrokenTags(name, madeBefore); }
  subscribe(listener: (event: MetadataEvent) => void) { this.inner.subscribe(listener); }

  // ---- guarded writes

  async commitBlob(name: string, digest: Digest, source: string): Promise<void> {
    if (!this.quotaApplies(name)) return this.inner.commitBlob(name, digest, source);
    const size = await this.driver.stat(source).then((s) => s.size, () => 0);
    return this.withQuota(name, async () => {
      this.checkBlob(name, digest, size);
      await this.inner.commitBlob(name, digest, source);
      this.quotas.reserve(name, digest.toString(), size);
    });
  }

  async mountBlob(name: string, digest: Digest): Promise<boolean> {
    if (!this.quotaApplies(name)) return this.inner.mountBlob(name, digest);
    return this.withQuota(name, async () => {
      const stat = await this.inner.blobStat(digest);
      if (!stat) return false;
      this.checkBlob(name, digest, stat.size);
      const mounted = await this.inner.mountBlob(name, digest);
      if (mounted) this.quotas.reserve(name, digest.toString(), stat.size);
      return mounted;
    });
  }

  async putManifest(name: string, record: ManifestRecord, tag?: string): Promise<MissingReference[]> {
    if (record.deferReferences) return this.inner.putManifest(name, record, tag); // a cache's copy of an upstream
    const immutable = tag !== undefined ? this.policies.immutable(name, tag) : undefined;
    const quota = this.quotaApplies(name);
    if (!immutable && !quota) return this.inner.putManifest(name, record, tag);
    const keys = quota ? this.quotaKeys(name) : [];
    if (immutable) keys.push(excl(`policy-tag:${name}:${tag}`));
    if (quota) await this.usage.ready();
    return this.locks.withLocks(keys, async () => {
      if (immutable) {
        const current = await this.inner.tag(name, tag!);
        if (current && current.toString() !== record.digest.toString()) {
          throw new RegistryError('DENIED', `tag ${tag} of ${name} is immutable (it matches ${immutable.glob} in ${immutable.where}): ` +
            `it points at ${current} and cannot be moved to ${record.digest}; push under a new tag`,
          { tag, repository: name, digest: current.toString(), rule: immutable.where, pattern: immutable.glob });
        }
      }
      if (quota) {
        this.quotas.checkNewRepository(name);
        if (tag !== undefined) this.quotas.checkNewTag(name, tag);
        if (this.policies.limit(name, 'bytes')) {
          // what manifests reference after this put: its own bytes and the blobs it brings in
          let extra = this.quotas.referenced(name, record.digest.toString()) ? 0 : record.content.length;
          for (const blob of new Set(record.blobs.map(String))) {
            if (this.quotas.referenced(name, blob)) continue;
            const digest = record.blobs.find((b) => b.toString() === blob)!;
            extra += (await this.inner.blobStat(digest))?.size ?? 0;
          }
          this.quotas.checkBytes(name, extra, `manifest ${record.digest} with the blobs it references`, false);
        }
      }
      return this.inner.putManifest(name, record, tag);
    });
  }

  async deleteTag(name: string, tag: string, expected?: Digest): Promise<boolean> {
    const immutable = this.policies.immutable(name, tag);
    if (immutable && (await this.inner.tag(name, tag))) throw cannotDelete(name, tag, immutable);
    return this.inner.deleteTag(name, tag, expected);
  }

  async deleteManifest(name: string, digest: Digest): Promise<boolean> {
    for (const tag of await this.immutableTags(name, digest)) throw cannotDelete(name, tag, this.policies.immutable(name, tag)!);
    return this.inner.deleteManifest(name, digest);
  }

  async deleteRepository(name: string): Promise<boolean> {
    for (const tag of await this.immutableTags(name)) throw cannotDelete(name, tag, this.policies.immutable(name, tag)!);
    return this.inner.deleteRepository(name);
  }

  // ---- internals

  /** Immutable tags of `name` (pointing at `digest`, when given). */
  private async immutableTags(name: string, digest?: Digest): Promise<string[]> {
    if (!this.policies.matching(name).some((r) => r.immutable.length > 0)) return [];
    const tags = await this.inner.tags(name).catch(() => [] as string[]);
    const found: string[] = [];
    for (const tag of tags) {
      if (!this.policies.immutable(name, tag)) continue;
      if (digest && (await this.inner.tag(name, tag))?.toString() !== digest.toString()) continue;
      found.push(tag);
    }
    return found;
  }

  private quotaApplies(name: string): boolean {
    return !!(this.policies.limit(name, 'bytes') || this.policies.limit(name, 'tags') || this.policies.namespacesOf(name).length > 0);
  }

  private quotaKeys(name: string): LockRequest[] {
    return [excl(`quota-repo:${name}`), ...this.policies.namespacesOf(name).map(({ namespace }) => excl(`quota-ns:${namespace}`))];
  }

  private async withQuota<T>(name: string, work: () => Promise<T>): Promise<T> {
    await this.usage.ready();
    return this.locks.withLocks(this.quotaKeys(name), work);
  }

  private checkBlob(name: string, digest: Digest, size: number): void {
    this.quotas.checkNewRepository(name);
    if (!this.quotas.counted(name, digest.toString())) this.quotas.checkBytes(name, size, `blob ${digest}`);
  }
}

function cannotDelete(name: string, tag: string, rule: { where: string; glob: string }): RegistryError {
  return new RegistryError('DENIED', `tag ${tag} of ${name} is immutable (it matches ${rule.glob} in ${rule.where}) and cannot be deleted`,
    { tag, repository: name, rule: rule.where, pattern: rule.glob });
}
