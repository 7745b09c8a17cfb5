// What a repository holds, manifest by manifest, for people browsing it: each tag with the
// digest it points at, its size (the manifest, its config and layers, and for an index every
// platform's image), its platforms and when it was pushed; and the manifests no tag names.
// Built on the metadata store, the manifest service and the usage index: no second record.
// A manifest's summary is computed once per repository and digest (manifests are immutable).
import type { BlobStore } from './blobs.js';
import type { ManifestService } from './manifests.js';
import type { MetadataStore } from './metadata.js';
import { parseDigest, type Digest } from './names.js';
import type { UsageIndex } from './usage.js';

export interface ManifestSummary {
  digest: string;
  mediaType: string;
  kind: 'image' | 'index' | 'artifact';
  /** The manifest's own bytes plus everything it references (for an index: every child image). */
  size: number;
  /** os/architecture[/variant] of an image, or of every child of an index. */
  platforms: string[];
  artifactType?: string;
  /** The digest this manifest is attached to (a referrer: a signature, an SBOM, ...). */
  subject?: string;
  /** Index children, by digest. */
  children: string[];
}

export interface TagDetail extends ManifestSummary {
  name: string;
  pushedAt: string | undefined;
}

export interface UntaggedDetail extends ManifestSummary {
  /** Why it is kept without a tag: listed by an index, attached to a subject, or nothing (collection may remove it). */
  role: 'platform' | 'referrer' | 'untagged';
}

/** Config blobs read to learn an image's platform are small documents; a larger one is not read. */
const MAX_CONFIG_BYTES = 1 << 20;
/** Summaries kept in memory (each a few hundred bytes). */
const MAX_CACHED = 50_000;
/** Manifests summarised at once. */
const PARALLEL = 16;
const IMAGE_CONFIGS = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

interface Doc {
  mediaType?: unknown;
  artifactType?: unknown;
  config?: { mediaType?: unknown; digest?: unknown; size?: unknown };
  layers?: { size?: unknown }[];
  manifests?: { digest?: unknown; size?: unknown; platform?: { os?: unknown; architecture?: unknown; variant?: unknown } }[];
  subject?: { digest?: unknown };
}

function platformOf(p: { os?: unknown; architecture?: unknown; variant?: unknown } | undefined): string | undefined {
  if (!p || typeof p.os !== 'string' || typeof p.architecture !== 'string') return undefined;
  if (p.os === 'unknown' && p.architecture === 'unknown') return undefined; // attestation manifests of buildx
  return [p.os, p.architecture, typeof p.variant === 'string' && p.variant ? p.variant : undefined].filter(Boolean).join('/');
}

const sizeOf = (value: unknown): number => (typeof value === 'number' && value >= 0 ? value : 0);

/** Runs `work` over `items`, `limit` at a time, keeping the order of the results. */
async function mapLimited<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]!);
    }
  }));
  return out;
}

export class RepositoryInventory {
  private readonly cache = new Map<string, ManifestSummary>();

  constructor(private readonly store: MetadataStore, private readonly manifests: ManifestService,
              private readonly blobs: BlobStore, private readonly usage: UsageIndex) {}

  /** Every tag, newest push first (then by name), with its manifest's summary; tags removed meanwhile are left out. */
  async tags(name: string): Promise<TagDetail[]> {
    const times = [...this.usage.tagTimes(name)].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const details = await mapLimited(times, PARALLEL, async ([tag, at]): Promise<TagDetail | undefined> => {
      const digest = await this.store.tag(name, tag).catch(() => undefined);
      const summary = digest && await this.summary(name, digest);
      return summary ? { name: tag, pushedAt: at ? new Date(at).toISOString() : undefined, ...summary } : undefined;
    });
    return details.filter((d): d is TagDetail => d !== undefined);
  }

  /** Manifests no tag points at, with why each is kept (or not). */
  async untagged(name: string, tags: TagDetail[]): Promise<UntaggedDetail[]> {
    const tagged = new Set(tags.map((t) => t.digest));
    const revisions = (await this.store.revisions(name)).filter((d) => !tagged.has(d.toString()));
    const summaries = (await mapLimited(revisions, PARALLEL, (d) => this.summary(name, d)))
      .filter((s): s is ManifestSummary => s !== undefined);
    const children = new Set([...tags, ...summaries].flatMap((s) => s.children));
    return summaries.map((s) => ({ ...s, role: s.subject ? 'referrer' : children.has(s.digest) ? 'platform' : 'untagged' }));
  }

  /** The summary of one manifest present in `name`; undefined when it is gone or unreadable. */
  async summary(name: string, digest: Digest, depth = 0): Promise<ManifestSummary | undefined> {
    const key = `${name}@${digest}`;
    const cached = this.cache.get(key);
    if (cached) return cached;
    let manifest;
    try {
      manifest = await this.manifests.get(name, digest.toString());
    } catch {
      return undefined;
    }
    let doc: Doc;
    try {
      doc = JSON.parse(manifest.content.toString('utf8')) as Doc;
    } catch {
      return undefined;
    }
    const summary: ManifestSummary = {
      digest: digest.toString(), mediaType: manifest.mediaType, kind: 'image', size: manifest.content.length, platforms: [], children: [],
    };
    if (typeof doc.subject?.digest === 'string') summary.subject = doc.subject.digest;
    if (typeof doc.artifactType === 'string') summary.artifactType = doc.artifactType;
    // a summary that lacks something not stored yet (a mirrored image's children and config arrive when pulled) is not kept
    let complete = true;
    if (Array.isArray(doc.manifests)) {
      summary.kind = 'index';
      for (const child of doc.manifests) {
        if (typeof child.digest !== 'string') continue;
        summary.children.push(child.digest);
        const platform = platformOf(child.platform);
        if (platform) summary.platforms.push(platform);
        let childDigest: Digest | undefined;
        try { childDigest = parseDigest(child.digest); } catch { /* not one of ours */ }
        const inner = childDigest && depth < 2 ? await this.summary(name, childDigest, depth + 1) : undefined;
        summary.size += inner ? inner.size : sizeOf(child.size);
        if (!inner) complete = false;
      }
    } else {
      const configType = typeof doc.config?.mediaType === 'string' ? doc.config.mediaType : undefined;
      if (configType && !IMAGE_CONFIGS.has(configType)) {
        summary.kind = 'artifact';
        summary.artifactType ??= configType;
      } else if (summary.artifactType) {
        summary.kind = 'artifact';
      }
      summary.size += sizeOf(doc.config?.size);
      if (Array.isArray(doc.layers)) for (const layer of doc.layers) summary.size += sizeOf(layer?.size);
      if (summary.kind === 'image') {
        const { platform, stored } = await this.configPlatform(doc.config);
        if (platform) summary.platforms.push(platform);
        if (!stored) complete = false;
      }
    }
    if (!complete) return summary;
    if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, summary);
    return summary;
  }

  /** An image's platform, from its config blob; `stored` is false when the blob is not (yet) there. */
  private async configPlatform(config: Doc['config']): Promise<{ platform?: string; stored: boolean }> {
    if (typeof config?.digest !== 'string' || sizeOf(config.size) > MAX_CONFIG_BYTES) return { stored: true };
    let content: Buffer;
    try {
      content = await this.blobs.getSmall(parseDigest(config.digest));
    } catch {
      return { stored: false };
    }
    try {
      return { platform: platformOf(JSON.parse(content.toString('utf8')) as { os?: unknown; architecture?: unknown; variant?: unknown }), stored: true };
    } catch {
      return { stored: true };
    }
  }
}
