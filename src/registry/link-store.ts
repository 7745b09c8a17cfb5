// Repository metadata as registry:2's link files, over any storage driver, made consistent by
// keyed locks within the process (see docs/architecture.md, "Consistency"). Writes are ordered
// so that a crash at any step leaves the old state or the new one:
// - put: content → media type → revision link → referrers entry → tag;
// - delete: tags → revision → referrers entry;
// - readers only trust a `link` that holds a digest, so a temporary file or an empty folder
//   left by a crash is never served or listed.
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { mapBounded } from '../storage/many.js';
import { readLink } from './blobs.js';
import { walkRepositories } from './catalog.js';
import { nameUnknown, RegistryError } from './errors.js';
import { ValidatedReads } from './link-cache.js';
import { excl, KeyedLocks, linking, lockKeys as K, shared, type LockRequest, type Locker } from './locks.js';
import { storedMediaType } from './media-types.js';
import type { EventRelay, ManifestRecord, MetadataEvent, MetadataStore, MissingReference } from './metadata.js';
import { parseDigest, type Digest } from './names.js';
import { paths } from './paths.js';

const MAX_TRACKED_USES = 200_000;
const MAX_KNOWN_TAG_REPOSITORIES = 10_000;
/** Tag listings kept (a listing of thousands of tags is a few hundred KiB). */
const MAX_TAG_LISTINGS = 256;

export class LinkMetadataStore implements MetadataStore {
  /** When content was last used in this process; storage keeps it too, at most `persistEveryMs` stale. */
  private readonly used = new Map<string, { at: number; persisted: number }>();
  private readonly listeners: ((event: MetadataEvent) => void)[] = [];
  /**
   * Tags of a repository whose link this process has read or written. A tag's link is only ever
   * replaced atomically, so once seen whole a tag folder stays whole until it is deleted; a
   * folder a crash left without its link is read (and left out) each time.
   */
  private readonly validTags = new Map<string, Set<string>>();
  /** Link files and tag listings read, answered again after a stat (local filesystems only). */
  private readonly links: ValidatedReads<Digest>;
  /** Layer and revision links seen holding the digest their path names. */
  private readonly namedLinks: ValidatedReads<true>;
  private readonly listings: ValidatedReads<string[]>;

  constructor(private readonly driver: StorageDriver, private readonly persistEveryMs = 60_000,
              private readonly locks: Locker = new KeyedLocks(), private readonly relay?: EventRelay) {
    this.links = new ValidatedReads(driver);
    this.namedLinks = new ValidatedReads(driver);
    this.listings = new ValidatedReads(driver, MAX_TAG_LISTINGS);
    // another worker of this registry changed something: what this process remembers of it goes
    relay?.onRemote((event) => {
      if (event.type === 'tag-deleted') this.forgetTag(event.name, event.tag);
      else if (event.type === 'manifest-deleted') for (const tag of event.tags) this.forgetTag(event.name, tag);
      else if (event.type === 'repository-deleted') this.validTags.delete(event.name);
      for (const listener of this.listeners) listener(event);
    });
  }

  subscribe(listener: (event: MetadataEvent) => void): void {
    this.listeners.push(listener);
  }

  private emit(event: MetadataEvent): void {
    this.relay?.publish(event);
    for (const listener of this.listeners) listener(event);
  }

  // ---------------------------------------------------------------- reads

  tag(name: string, tag: string): Promise<Digest | undefined> {
    return this.link(paths.tagCurrentLink(name, tag));
  }

  /** A link file's digest; on a local filesystem, one stat while it is unchanged. */
  private link(path: string): Promise<Digest | undefined> {
    return this.links.file(path, parseLink);
  }

  /**
   * Whether a layer or revision link holds `digest`, the digest its path names. Only a link
   * holding it is kept, and checked for existence alone: any link written there holds the same.
   */
  private async holdsNamed(path: string, digest: Digest): Promise<boolean> {
    const want = digest.toString();
    const parse = (content: Buffer) => (parseLink(content)?.toString() === want ? true : undefined);
    return (await this.namedLinks.file(path, parse, true)) === true;
  }

  async tagUsedAt(name: string, tag: string): Promise<number | undefined> {
    try {
      await this.driver.stat(paths.tagCachedMark(name, tag)); // only tags a cache wrote
      return (await this.driver.stat(paths.tagCurrentLink(name, tag))).modTime.getTime();
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  tagPushedAt(name: string, tag: string): Promise<number | undefined> {
    return this.driver.stat(paths.tagCurrentLink(name, tag)).then((s) => s.modTime.getTime(), (err) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
  }

  revisionWrittenAt(name: string, digest: Digest): Promise<number | undefined> {
    return this.driver.stat(paths.revisionLink(name, digest)).then((s) => s.modTime.getTime(), (err) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
  }

  touchTag(name: string, tag: string): Promise<void> {
    return this.driver.touch(paths.tagCurrentLink(name, tag));
  }

  async tags(name: string): Promise<string[]> {
    // the folder's listing is kept while it is unchanged: adding or removing a tag changes it
    const listed = await this.listings.get(paths.tagsRoot(name), () => this.readTags(name));
    if (listed === undefined) {
      if (await exists(this.driver, paths.manifestsRoot(name))) return [];
      throw nameUnknown(name);
    }
    return [...listed];
  }

  /** The tags whose link is readable, sorted; kept only when every tag folder had its link. */
  private async readTags(name: string): Promise<{ value: string[]; keep: boolean } | undefined> {
    const names = await listOrUndefined(this.driver, paths.tagsRoot(name));
    if (names === undefined) return undefined;
    // a tag folder is trusted once its link was read (or written here): only new names cost a read
    const known = this.validTags.get(name);
    const present = await mapBounded(names, async (tag) => {
      if (known?.has(tag)) return tag;
      if (!(await this.tag(name, tag))) return undefined;
      this.knownTag(name, tag);
      return tag;
    }, 64);
    const tags = present.filter((t): t is string => t !== undefined).sort();
    return { value: tags, keep: tags.length === names.length };
  }

  private knownTag(name: string, tag: string): void {
    let known = this.validTags.get(name);
    if (!known) {
      if (this.validTags.size >= MAX_KNOWN_TAG_REPOSITORIES) this.validTags.delete(this.validTags.keys().next().value!);
      this.validTags.set(name, (known = new Set()));
    }
    known.add(tag);
  }

  private forgetTag(name: string, tag: string): void {
    this.validTags.get(name)?.delete(tag);
  }

  async revision(name: string, digest: Digest): Promise<{ mediaType: string } | undefined> {
    // both in one round trip: on S3 each read is one
    const [linked, stored] = await Promise.all([
      this.hasRevision(name, digest),
      this.driver.getContent(paths.revisionMediaType(name, digest)).catch((err) => {
        if (isNotFound(err)) return undefined;
        throw err;
      }),
    ]);
    if (!linked) return undefined;
    // empty when a power cut came before its unflushed bytes reached the disk: derived again, as below
    const recorded = stored?.toString('utf8').trim();
    if (recorded) return { mediaType: recorded };
    // written by registry:2 (or before Berth recorded it): derived once from the bytes, then kept
    let content: Buffer;
    try {
      content = await this.driver.getContent(paths.blobData(digest));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const mediaType = storedMediaType(content);
    // kept for next time, unless the revision went meanwhile (writing would bring its folder back)
    await this.locks.withLocks([shared(K.repository(name)), shared(K.manifest(name, digest.toString()))], async () => {
      if (await this.hasRevision(name, digest)) {
        await this.driver.putContent(paths.revisionMediaType(name, digest), mediaType, { durable: false });
      }
    }).catch(() => undefined);
    return { mediaType };
  }

  async revisions(name: string): Promise<Digest[]> {
    const found = await listDigests(this.driver, paths.revisionsRoot(name));
    const present = await mapBounded(found, async (d) =>
      ((await readLink(this.driver, paths.revisionLink(name, d)))?.toString() === d.toString() ? d : undefined));
    return present.filter((d): d is Digest => d !== undefined);
  }

  async blobLinked(name: string, digest: Digest): Promise<boolean> {
    return this.holdsNamed(paths.layerLink(name, digest), digest);
  }

  layers(name: string): Promise<Digest[]> {
    return listDigests(this.driver, paths.layersRoot(name));
  }

  async referrers(name: string, subject: Digest): Promise<Digest[]> {
    const dir = paths.referrersDir(name, subject);
    const found = await listDigests(this.driver, dir);
    const linked = await mapBounded(found, (d) => readLink(this.driver, paths.referrerLink(name, subject, d)));
    return linked.filter((d): d is Digest => d !== undefined).sort((a, b) => (a.toString() < b.toString() ? -1 : 1));
  }

  repositories(): Promise<string[]> {
    return walkRepositories(this.driver, '_manifests');
  }

  async blobStat(digest: Digest): Promise<{ size: number; lastUsed: number } | undefined> {
    try {
      const info = await this.driver.stat(paths.blobData(digest));
      if (info.isDir) return undefined;
      // storage's own time is a use already recorded: a use now need not be written again until it is stale
      const key = digest.toString();
      if (!this.used.has(key) && this.used.size < MAX_TRACKED_USES) {
        this.used.set(key, { at: info.modTime.getTime(), persisted: info.modTime.getTime() });
      }
      return { size: info.size, lastUsed: Math.max(info.modTime.getTime(), this.used.get(digest.toString())?.at ?? 0) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  // ---------------------------------------------------------------- writes

  commitBlob(name: string, digest: Digest, source: string): Promise<void> {
    return this.locks.withLocks(linking(name, digest), async () => {
      try {
        if (await this.blobStat(digest)) {
          await this.driver.stat(source);
          await this.driver.delete(source); // the same content is already stored: drop the duplicate
        } else {
          await this.driver.move(source, paths.blobData(digest)); // a rename keeps the last write's time
        }
      } catch (err) {
        // the upload was removed under us (its repository deleted, or purged)
        if (isNotFound(err)) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'the upload was removed while it was being completed; start it again');
        throw err;
      }
      await this.markUsed(digest, true); // the moved file's time is its last write, maybe long ago
      await this.driver.putContent(paths.layerLink(name, digest), digest.toString());
      this.emit({ type: 'blob-linked', name, digest });
    });
  }

  mountBlob(name: string, digest: Digest): Promise<boolean> {
    return this.locks.withLocks(linking(name, digest), async () => {
      if (!(await this.blobStat(digest))) return false;
      await this.markUsed(digest, true);
      await this.driver.putContent(paths.layerLink(name, digest), digest.toString());
      this.emit({ type: 'blob-linked', name, digest });
      return true;
    });
  }

  unlinkBlob(name: string, digest: Digest): Promise<boolean> {
    return this.locks.withLocks([shared(K.repository(name)), excl(K.layer(name, digest.toString()))], async () => {
      if (!(await this.blobLinked(name, digest))) return false;
      await this.driver.delete(dirOf(paths.layerLink(name, digest)));
      this.emit({ type: 'blob-unlinked', name, digest });
      return true;
    });
  }

  useBlob<T>(digest: Digest, check: () => Promise<T | undefined>): Promise<T | undefined> {
    return this.locks.withLocks([shared(K.blob(digest.toString()))], async () => {
      const found = await check();
      if (found !== undefined) await this.markUsed(digest, false);
      return found;
    });
  }

  putManifest(name: string, record: ManifestRecord, tag?: string): Promise<MissingReference[]> {
    const { digest } = record;
    const requests: LockRequest[] = [
      shared(K.repository(name)), excl(K.manifest(name, digest.toString())), shared(K.blob(digest.toString())),
    ];
    if (tag !== undefined) requests.push(excl(K.tag(name, tag)));
    for (const blob of record.blobs) requests.push(shared(K.layer(name, blob.toString())), shared(K.blob(blob.toString())));
    for (const child of record.children) requests.push(shared(K.manifest(name, child.toString())));
    return this.locks.withLocks(requests, async () => {
      const missing = record.deferReferences ? [] : await this.missingReferences(name, record);
      if (missing.length > 0) return missing;
      // everything it references stays in use for the grace period, from now
      await Promise.all([
        ...record.blobs.map((blob) => this.markUsed(blob, false)),
        ...record.children.map((child) => this.driver.touch(paths.revisionLink(name, child))),
      ]);
      const [stored, linked] = await Promise.all([this.blobStat(digest), this.hasRevision(name, digest)]);
      // the content is durable before the revision link names it; the media type is not flushed: a
      // power cut that empties it leaves it to be derived from the content, as for registry:2's
      // revisions (revision() above), and one flush fewer is a quarter of a push's flushes
      await Promise.all([
        stored ? this.markUsed(digest, false)
          : this.driver.putContent(paths.blobData(digest), record.content).then(() => this.noteWritten(digest)),
        linked ? undefined : this.driver.putContent(paths.revisionMediaType(name, digest), record.mediaType, { durable: false }),
      ]);
      if (linked) {
        await this.driver.touch(paths.revisionLink(name, digest)); // named again: collection measures from now
      } else {
        await this.driver.putContent(paths.revisionLink(name, digest), digest.toString());
      }
      if (record.subject) {
        await this.driver.putContent(paths.referrerLink(name, record.subject, digest), digest.toString());
      }
      if (tag !== undefined) {
        // the index is history, kept for registry:2's layout; only `current` has to survive a power cut
        await this.driver.putContent(paths.tagIndexLink(name, tag, digest), digest.toString(), { durable: false });
        await this.driver.putContent(paths.tagCurrentLink(name, tag), digest.toString());
        if (record.deferReferences) await this.driver.putContent(paths.tagCachedMark(name, tag), '', { durable: false });
        this.knownTag(name, tag);
      }
      this.emit({ type: 'manifest-put', name, record, tag });
      return [];
    });
  }

  deleteManifest(name: string, digest: Digest): Promise<boolean> {
    return this.locks.withLocks([shared(K.repository(name)), excl(K.manifest(name, digest.toString()))],
      async () => this.removeRevision(name, digest));
  }

  deleteTag(name: string, tag: string, expected?: Digest): Promise<boolean> {
    return this.locks.withLocks([shared(K.repository(name)), excl(K.tag(name, tag))], async () => {
      const current = await this.tag(name, tag);
      if (expected && current && current.toString() !== expected.toString()) return false; // moved meanwhile
      this.forgetTag(name, tag);
      if (!current) return false;
      await this.driver.delete(paths.tagDir(name, tag));
      this.emit({ type: 'tag-deleted', name, tag });
      return true;
    });
  }

  deleteRepository(name: string): Promise<boolean> {
    return this.locks.withLocks([excl(K.repository(name))], async () => {
      const parts = ['_manifests', '_layers', '_uploads', '_referrers'];
      const present = await listOrUndefined(this.driver, paths.repository(name));
      if (!present || !present.some((p) => parts.includes(p))) return false;
      // only this repository's own folders: a nested repository (name/other) lives beside them
      this.validTags.delete(name);
      for (const part of ['_manifests', '_referrers', '_layers', '_uploads']) {
        await this.driver.delete(`${paths.repository(name)}/${part}`);
      }
      this.emit({ type: 'repository-deleted', name });
      return true;
    });
  }

  // ---------------------------------------------------------------- collection

  sweepBlob(digest: Digest, usedBefore: number): Promise<boolean> {
    return this.locks.withLocks([excl(K.blob(digest.toString()))], async () => {
      const stat = await this.blobStat(digest);
      if (!stat) { // no data: a crash left the folder (or a temporary file) behind
        const folder = await this.driver.stat(paths.blobDir(digest)).catch(() => undefined);
        if (folder && folder.modTime.getTime() < usedBefore) await this.driver.delete(paths.blobDir(digest));
        return false;
      }
      if (stat.lastUsed >= usedBefore) return false;
      await this.driver.delete(paths.blobDir(digest));
      this.used.delete(digest.toString());
      this.emit({ type: 'blob-deleted', digest });
      return true;
    });
  }

  sweepManifest(name: string, digest: Digest, writtenBefore: number): Promise<boolean> {
    return this.locks.withLocks([shared(K.repository(name)), excl(K.manifest(name, digest.toString()))], async () => {
      let written: number;
      try {
        written = (await this.driver.stat(paths.revisionLink(name, digest))).modTime.getTime();
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
      if (written >= writtenBefore) return false; // pushed, tagged or referenced since the mark
      return this.removeRevision(name, digest, true);
    });
  }

  sweepLayerLink(name: string, digest: Digest): Promise<boolean> {
    return this.locks.withLocks(linking(name, digest), async () => {
      if (await this.blobStat(digest)) return false;
      await this.driver.delete(dirOf(paths.layerLink(name, digest)));
      return true;
    });
  }

  async sweepBrokenTags(name: string, madeBefore: number): Promise<number> {
    let removed = 0;
    for (const tag of (await listOrUndefined(this.driver, paths.tagsRoot(name))) ?? []) {
      if (this.validTags.get(name)?.has(tag)) continue;
      removed += await this.locks.withLocks([shared(K.repository(name)), excl(K.tag(name, tag))], async () => {
        if (await this.tag(name, tag)) return 0;
        const folder = await this.driver.stat(paths.tagDir(name, tag)).catch(() => undefined);
        if (!folder || folder.modTime.getTime() >= madeBefore) return 0;
        await this.driver.delete(paths.tagDir(name, tag));
        return 1;
      });
    }
    return removed;
  }

  // ---------------------------------------------------------------- internals

  /**
   * Under the revision's exclusive lock: tags first, then the revision, then its referrers entry.
   * For collection (`onlyUntagged`), a revision some tag points at is kept.
   */
  private async removeRevision(name: string, digest: Digest, onlyUntagged = false): Promise<boolean> {
    if (!(await this.hasRevision(name, digest))) return false;
    const tags = (await listOrUndefined(this.driver, paths.tagsRoot(name))) ?? [];
    if (onlyUntagged) {
      const pointing = await mapBounded(tags, async (tag) => (await this.tag(name, tag))?.toString() === digest.toString());
      if (pointing.some(Boolean)) return false;
    }
    const removedTags: string[] = [];
    for (const tag of tags) {
      await this.locks.withLocks([excl(K.tag(name, tag))], async () => {
        if ((await this.tag(name, tag))?.toString() !== digest.toString()) return;
        this.forgetTag(name, tag);
        await this.driver.delete(paths.tagDir(name, tag));
        removedTags.push(tag);
      });
    }
    const subject = await this.subjectOf(digest);
    await this.driver.delete(paths.revisionDir(name, digest));
    if (subject) await this.driver.delete(dirOf(paths.referrerLink(name, subject, digest)));
    this.emit({ type: 'manifest-deleted', name, digest, tags: removedTags });
    return true;
  }

  /** The subject a stored manifest names, read leniently: a junk document simply has none. */
  private async subjectOf(digest: Digest): Promise<Digest | undefined> {
    try {
      const doc = JSON.parse((await this.driver.getContent(paths.blobData(digest))).toString('utf8')) as { subject?: { digest?: unknown } };
      return typeof doc?.subject?.digest === 'string' ? parseDigest(doc.subject.digest) : undefined;
    } catch {
      return undefined;
    }
  }

  async hasRevision(name: string, digest: Digest): Promise<boolean> {
    return this.holdsNamed(paths.revisionLink(name, digest), digest);
  }

  private async missingReferences(name: string, record: ManifestRecord): Promise<MissingReference[]> {
    const checks: (() => Promise<MissingReference | undefined>)[] = [];
    const seen = new Set<string>();
    for (const blob of record.blobs) {
      if (seen.has(blob.toString())) continue;
      seen.add(blob.toString());
      checks.push(async () => ((await this.blobLinked(name, blob)) && (await this.blobStat(blob)) ? undefined : { digest: blob, kind: 'blob' }));
    }
    for (const child of record.children) {
      if (seen.has(child.toString())) continue;
      seen.add(child.toString());
      checks.push(async () => ((await this.hasRevision(name, child)) ? undefined : { digest: child, kind: 'manifest' }));
    }
    const results = await mapBounded(checks, (check) => check());
    return results.filter((m): m is MissingReference => m !== undefined);
  }

  /** Content just written: storage's own time is fresh, nothing to persist. */
  private noteWritten(digest: Digest): void {
    const now = Date.now();
    this.used.delete(digest.toString());
    if (this.used.size >= MAX_TRACKED_USES) this.used.delete(this.used.keys().next().value!);
    this.used.set(digest.toString(), { at: now, persisted: now });
  }

  /** Records a use of content now; storage learns of it when its own record is older than the persistence step. */
  private async markUsed(digest: Digest, persistNow: boolean): Promise<void> {
    const key = digest.toString();
    const now = Date.now();
    const entry = this.used.get(key);
    const persist = persistNow || !entry || now - entry.persisted >= this.persistEveryMs;
    if (entry) this.used.delete(key); // most recently used last: eviction takes the least recent
    else if (this.used.size >= MAX_TRACKED_USES) this.used.delete(this.used.keys().next().value!);
    this.used.set(key, { at: now, persisted: persist ? now : entry!.persisted });
    if (persist) await this.driver.touch(paths.blobData(digest));
  }
}

/** A link file's digest; undefined when it does not hold one. */
export function parseLink(content: Buffer): Digest | undefined {
  try {
    return parseDigest(content.toString('utf8').trim());
  } catch {
    return undefined;
  }
}

function dirOf(linkPath: string): string {
  return linkPath.replace(/\/link$/, '');
}

async function listOrUndefined(driver: StorageDriver, path: string): Promise<string[] | undefined> {
  try {
    return await driver.list(path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

async function exists(driver: StorageDriver, path: string): Promise<boolean> {
  try {
    await driver.stat(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** `<root>/<algorithm>/<hex>` folders as digests; anything else (temporary files, junk) is skipped. */
async function listDigests(driver: StorageDriver, root: string): Promise<Digest[]> {
  const found: Digest[] = [];
  for (const algorithm of (await listOrUndefined(driver, root)) ?? []) {
    for (const hex of (await listOrUndefined(driver, `${root}/${algorithm}`)) ?? []) {
      try {
        found.push(parseDigest(`${algorithm}:${hex}`));
      } catch { /* not a digest folder */ }
    }
  }
  return found;
}

