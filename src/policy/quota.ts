// Quota accounting: what a repository uses now, for the limits `policies` sets. Bytes are every
// distinct blob and manifest the repository's manifests reference (the usage index), plus blobs
// committed or mounted into it in this process that no manifest references yet (a push in
// progress): those are reserved at their commit and count until a manifest references them, or
// until the grace period passes (collection may remove them then). Repositories under a
// namespace are those holding manifests plus those a push in progress started.
import { RegistryError } from '../registry/errors.js';
import type { MetadataStore } from '../registry/metadata.js';
import type { UsageIndex } from '../registry/usage.js';
import type { Limit, PolicySet, QuotaKind } from './rules.js';

export class QuotaLedger {
  /** Repository → blob → [size, reserved at]. */
  private readonly pending = new Map<string, Map<string, [number, number]>>();
  /** Repositories a push started (a blob committed) that hold no manifest yet → when. */
  private readonly starting = new Map<string, number>();

  constructor(private readonly policies: PolicySet, private readonly usage: UsageIndex, store: MetadataStore,
              private readonly reserveMs: number, private readonly now: () => number = Date.now) {
    store.subscribe((event) => {
      if (event.type === 'manifest-put') {
        const held = this.pending.get(event.name);
        if (held) {
          held.delete(event.record.digest.toString());
          for (const blob of event.record.blobs) held.delete(blob.toString());
          if (held.size === 0) this.pending.delete(event.name);
        }
        this.starting.delete(event.name);
      } else if (event.type === 'blob-unlinked') {
        this.pending.get(event.name)?.delete(event.digest.toString());
      } else if (event.type === 'repository-deleted') {
        this.pending.delete(event.name);
        this.starting.delete(event.name);
      }
    });
  }

  /** Bytes `name` uses: what its manifests reference and what pushes in progress reserved. */
  bytesUsed(name: string): number {
    const referenced = this.usage.referenced(name);
    let used = 0;
    for (const size of referenced.values()) used += size;
    for (const [digest, [size]] of this.live(name)) if (!referenced.has(digest)) used += size;
    return used;
  }

  tagsUsed(name: string): number {
    return this.usage.tagTimes(name).size;
  }

  /** Repositories under `namespace/` that hold manifests or that a push in progress started. */
  repositoriesUnder(namespace: string): number {
    const prefix = `${namespace}/`;
    const names = new Set(this.usage.names().filter((n) => n.startsWith(prefix)));
    const cutoff = this.now() - this.reserveMs;
    for (const [name, at] of this.starting) {
      if (at < cutoff) this.starting.delete(name);
      else if (name.startsWith(prefix)) names.add(name);
    }
    return names.size;
  }

  /** Bytes the manifests of `name` reference (what the usage index reports). */
  referencedBytes(name: string): number {
    let used = 0;
    for (const size of this.usage.referenced(name).values()) used += size;
    return used;
  }

  /** Usage as the management API and metrics show it: for bytes, what manifests reference (never above the limit). */
  used(name: string, kind: QuotaKind): number {
    return kind === 'bytes' ? this.referencedBytes(name) : kind === 'tags' ? this.tagsUsed(name) : this.repositoriesUnder(name);
  }

  /** Whether `digest` already counts against `name` (referenced or reserved). */
  counted(name: string, digest: string): boolean {
    return this.usage.referenced(name).has(digest) || this.live(name).has(digest);
  }

  exists(name: string): boolean {
    if (this.usage.usage(name) !== undefined) return true;
    const started = this.starting.get(name);
    return started !== undefined && started >= this.now() - this.reserveMs;
  }

  /** Whether `digest` is referenced by a manifest of `name` (reservations aside). */
  referenced(name: string, digest: string): boolean {
    return this.usage.referenced(name).has(digest);
  }

  /**
   * Refuses when `extra` more bytes would take `name` past its limit: at a blob commit counting
   * the reservations of pushes in progress, at a manifest put (`reserved` false) only what
   * manifests reference, so that racing pushes that reserved the rest between them cannot shut
   * each other out.
   */
  checkBytes(name: string, extra: number, what: string, reserved = true): void {
    const limit = this.policies.limit(name, 'bytes');
    if (!limit || extra === 0) return;
    const used = reserved ? this.bytesUsed(name) : this.referencedBytes(name);
    if (used + extra > limit.limit) {
      throw exceeded('bytes', name, limit, used,
        `${name} may store ${bytes(limit.limit)} (${limit.where}) and stores ${bytes(used)}; ${what} needs ${bytes(extra)} more. ` +
        'Delete tags (then collect garbage), or raise the limit');
    }
  }

  /** Refuses a new repository `name` when a namespace it lies under is full. */
  checkNewRepository(name: string): void {
    if (this.exists(name)) return;
    for (const { namespace, limit } of this.policies.namespacesOf(name)) {
      const used = this.repositoriesUnder(namespace);
      if (used + 1 > limit.limit) {
        throw exceeded('repositories', namespace, limit, used,
          `namespace ${namespace} may hold ${plural(limit.limit, 'repository', 'repositories')} (${limit.where}) and holds ${used}; ${name} would be one more. ` +
          'Push to an existing repository, delete one, or raise the limit');
      }
    }
  }

  checkNewTag(name: string, tag: string): void {
    const limit = this.policies.limit(name, 'tags');
    if (!limit) return;
    const tags = this.usage.tagTimes(name);
    if (tags.has(tag)) return;
    if (tags.size + 1 > limit.limit) {
      throw exceeded('tags', name, limit, tags.size,
        `${name} may hold ${plural(limit.limit, 'tag', 'tags')} (${limit.where}) and holds ${tags.size}; tag ${tag} would be one more. ` +
        'Delete a tag, push to an existing one, or raise the limit');
    }
  }

  /** Records a blob committed or mounted into `name` (and the repository, when it is new). */
  reserve(name: string, digest: string, size: number): void {
    const at = this.now();
    if (this.usage.usage(name) === undefined) this.starting.set(name, at);
    if (!this.policies.limit(name, 'bytes')) return;
    let held = this.pending.get(name);
    if (!held) this.pending.set(name, (held = new Map()));
    held.set(digest, [size, at]);
  }

  /** Reservations of `name` younger than the grace period (older ones are dropped). */
  private live(name: string): Map<string, [number, number]> {
    const held = this.pending.get(name);
    if (!held) return new Map();
    const cutoff = this.now() - this.reserveMs;
    for (const [digest, [, at]] of held) if (at < cutoff) held.delete(digest);
    if (held.size === 0) this.pending.delete(name);
    return held;
  }
}

function exceeded(quota: QuotaKind, scope: string, limit: Limit, used: number, message: string): RegistryError {
  return new RegistryError('DENIED', `quota exceeded: ${message}`, { quota, [quota === 'repositories' ? 'namespace' : 'repository']: scope,
    limit: limit.limit, used, rule: limit.where });
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** 1536 → "1.5 KiB"; exact byte counts below 1 KiB. */
export function bytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} bytes` : `${value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2).replace(/\.?0+$/, '')} ${units[unit]} (${n} bytes)`;
}
