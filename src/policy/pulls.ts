// When tags were last pulled, for retention's `within`: recorded in memory on every manifest read
// by tag (a ContentReader decorator), and written to storage in batches — one small file per
// repository pulled since the last flush, `berth/pulls/<name>/_pulls.json`, merged with what is
// there — at most every flush interval and when the registry stops. A pull never costs a write.
// (`_pulls.json` cannot be a repository name component, which starts with a letter or digit.)
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import type { BlobBody, ContentReader, Notes } from '../registry/content.js';
import type { Manifest } from '../registry/manifests.js';
import { isTag, type Digest } from '../registry/names.js';

/** How often recorded pulls are written to storage. */
export const PULL_FLUSH_MS = 60_000;

const pullsPath = (name: string) => `/berth/pulls/${name}/_pulls.json`;

export class PullRecorder {
  /** Repository → tag → last pull (ms), not yet in storage. */
  private pending = new Map<string, Map<string, number>>();
  private flushing: Promise<void> | undefined;

  constructor(private readonly driver: StorageDriver, private readonly now: () => number = Date.now) {}

  record(name: string, tag: string): void {
    let tags = this.pending.get(name);
    if (!tags) this.pending.set(name, (tags = new Map()));
    tags.set(tag, this.now());
  }

  /** Last pull of each tag of `name`: storage's record merged with what is not flushed yet. */
  async pulls(name: string): Promise<Map<string, number>> {
    const stored = await this.read(name);
    for (const [tag, at] of this.pending.get(name) ?? []) stored.set(tag, Math.max(at, stored.get(tag) ?? 0));
    return stored;
  }

  /** Writes what was recorded since the last flush (one flush at a time). */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => { this.flushing = undefined; });
    return this.flushing;
  }

  /** Drops the record of tags that no longer exist (retention removed them). */
  async forget(name: string, tags: string[]): Promise<void> {
    if (tags.length === 0) return;
    await this.flush();
    const stored = await this.read(name);
    if (!tags.some((t) => stored.has(t))) return;
    for (const tag of tags) stored.delete(tag);
    await this.driver.putContent(pullsPath(name), JSON.stringify(Object.fromEntries(stored)), { durable: false });
  }

  private async write(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    for (const [name, tags] of batch) {
      try {
        const stored = await this.read(name);
        for (const [tag, at] of tags) stored.set(tag, Math.max(at, stored.get(tag) ?? 0));
        await this.driver.putContent(pullsPath(name), JSON.stringify(Object.fromEntries(stored)), { durable: false });
      } catch (err) {
        // kept for the next flush
        for (const [tag, at] of tags) if (!this.pending.get(name)?.has(tag)) this.recordAt(name, tag, at);
        throw err;
      }
    }
  }

  private recordAt(name: string, tag: string, at: number): void {
    let tags = this.pending.get(name);
    if (!tags) this.pending.set(name, (tags = new Map()));
    tags.set(tag, at);
  }

  private async read(name: string): Promise<Map<string, number>> {
    try {
      const doc = JSON.parse((await this.driver.getContent(pullsPath(name))).toString('utf8')) as Record<string, unknown>;
      return new Map(Object.entries(doc).filter((e): e is [string, number] => typeof e[1] === 'number'));
    } catch (err) {
      if (isNotFound(err) || err instanceof SyntaxError) return new Map();
      throw err;
    }
  }
}

/** Records every manifest read by tag (GET or HEAD) that succeeds; everything else passes through. */
export class PullRecordingContent implements ContentReader {
  constructor(private readonly inner: ContentReader, private readonly recorder: PullRecorder) {}

  async manifest(name: string, reference: string): Promise<Manifest & { notes?: Notes }> {
    const found = await this.inner.manifest(name, reference);
    if (isTag(reference)) this.recorder.record(name, reference);
    return found;
  }

  blobStat(name: string, digest: Digest) { return this.inner.blobStat(name, digest); }
  blob(name: string, digest: Digest): Promise<BlobBody> { return this.inner.blob(name, digest); }
  tags(name: string) { return this.inner.tags(name); }
}
