// Manifests: validated on push, stored as blobs, linked into the repository as revisions, and
// served back byte for byte with the media type they were pushed with.
import { createHash } from 'node:crypto';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { readLink, type BlobStore } from './blobs.js';
import { RegistryError, RegistryErrors } from './errors.js';
import { MANIFEST_TYPES, parseManifest, storedMediaType, type ParsedManifest } from './media-types.js';
import { Digest, looksLikeDigest, parseDigest, validateTag } from './names.js';
import { paths } from './paths.js';
import type { TagService } from './tags.js';

export interface Manifest {
  digest: Digest;
  mediaType: string;
  content: Buffer;
}

export interface PutResult {
  digest: Digest;
  subject?: Digest;
}

/** Immutable manifest bytes by digest, kept in memory up to a byte budget. */
class ManifestCache {
  private readonly entries = new Map<string, Manifest>();
  private bytes = 0;
  constructor(private readonly budget: number) {}

  get(digest: Digest): Manifest | undefined {
    return this.entries.get(digest.toString());
  }

  set(manifest: Manifest): void {
    const key = manifest.digest.toString();
    if (this.entries.has(key) || manifest.content.length > this.budget / 16) return;
    this.entries.set(key, manifest);
    this.bytes += manifest.content.length;
    for (const [oldest, entry] of this.entries) {
      if (this.bytes <= this.budget) break;
      this.entries.delete(oldest);
      this.bytes -= entry.content.length;
    }
  }
}

export class ManifestService {
  private readonly cache = new ManifestCache(32 << 20);

  constructor(private readonly driver: StorageDriver, private readonly blobs: BlobStore,
              private readonly tags: TagService, readonly maxSize: number) {}

  /** Resolves a tag or digest to the digest of a manifest present in the repository. */
  async resolve(name: string, reference: string): Promise<Digest> {
    if (looksLikeDigest(reference)) {
      const digest = parseDigest(reference);
      const linked = await readLink(this.driver, paths.revisionLink(name, digest));
      if (linked?.toString() !== digest.toString()) throw manifestUnknown(reference);
      return digest;
    }
    validateTag(reference);
    // A tag only ever points at a revision of its repository (deleting a revision deletes its
    // tags), so the revision link need not be read again.
    const digest = await this.tags.get(name, reference);
    if (!digest) throw manifestUnknown(reference);
    return digest;
  }

  async get(name: string, reference: string): Promise<Manifest> {
    const digest = await this.resolve(name, reference);
    const cached = this.cache.get(digest);
    if (cached) return cached;
    let content: Buffer;
    try {
      content = await this.blobs.getSmall(digest);
    } catch (err) {
      if (isNotFound(err)) throw manifestUnknown(reference);
      throw err;
    }
    const manifest = { digest, mediaType: storedMediaType(content), content };
    this.cache.set(manifest);
    return manifest;
  }

  async exists(name: string, digest: Digest): Promise<boolean> {
    const linked = await readLink(this.driver, paths.revisionLink(name, digest));
    return linked?.toString() === digest.toString();
  }

  async put(name: string, reference: string, content: Buffer, contentType: string | undefined): Promise<PutResult> {
    if (content.length > this.maxSize) {
      throw new RegistryError('MANIFEST_TOO_LARGE', `manifest is ${content.length} bytes; the limit is ${this.maxSize}`);
    }
    const byDigest = looksLikeDigest(reference);
    const expected = byDigest ? parseDigest(reference) : undefined;
    if (!byDigest) validateTag(reference);
    const parsed = parseManifest(content, contentType);
    const algorithm = expected?.algorithm ?? 'sha256';
    const digest = new Digest(algorithm, createHash(algorithm).update(content).digest('hex'));
    if (expected && expected.hex !== digest.hex) {
      throw new RegistryError('DIGEST_INVALID', `manifest content has digest ${digest}, not ${expected}`,
        { digest: expected.toString() });
    }
    await this.checkReferences(name, parsed);

    // the content is durable before anything names it; the names that point at it (revision,
    // referrers entry, tag) are then written together: readers never find a name without content
    await this.blobs.putSmall(digest, content);
    const subject = parsed.subject ? parseDigest(parsed.subject.digest) : undefined;
    await Promise.all([
      this.driver.putContent(paths.revisionLink(name, digest), digest.toString()),
      subject ? this.driver.putContent(paths.referrerLink(name, subject, digest), digest.toString()) : undefined,
      byDigest ? undefined : this.tags.set(name, reference, digest),
    ]);
    this.cache.set({ digest, mediaType: parsed.mediaType, content });
    return { digest, subject };
  }

  /** Deletes a manifest revision, the tags that point at it and its referrers entry. */
  async delete(name: string, digest: Digest): Promise<void> {
    if (!(await this.exists(name, digest))) throw manifestUnknown(digest.toString());
    let subject: Digest | undefined;
    try {
      const parsed = parseManifest(await this.blobs.getSmall(digest), undefined);
      if (parsed.subject) subject = parseDigest(parsed.subject.digest);
    } catch { /* an unreadable or foreign manifest has no referrers entry to clean */ }
    await this.tags.removeAllPointingAt(name, digest);
    await this.driver.delete(paths.revisionDir(name, digest));
    if (subject) await this.driver.delete(paths.referrerLink(name, subject, digest).replace(/\/link$/, ''));
  }

  /** Every blob and child manifest must be in the repository. Checked a few at a time, and only
   *  the first missing ones are reported (a manifest may list a thousand references). */
  private async checkReferences(name: string, parsed: ParsedManifest): Promise<void> {
    const checks = new Map<string, () => Promise<boolean>>();
    for (const digest of parsed.blobs) checks.set(digest.toString(), () => this.blobs.present(name, digest));
    for (const digest of parsed.manifests) {
      if (!checks.has(digest.toString())) checks.set(digest.toString(), () => this.exists(name, digest));
    }
    const digests = [...checks.keys()];
    const found = new Array<boolean>(digests.length);
    let next = 0;
    const worker = async () => {
      while (next < digests.length) {
        const i = next++;
        found[i] = await checks.get(digests[i]!)!();
      }
    };
    await Promise.all(Array.from({ length: Math.min(REFERENCE_CHECKS, digests.length) }, worker));
    const missing = digests.filter((_, i) => !found[i]);
    if (missing.length === 0) return;
    const reported = missing.slice(0, REPORTED_MISSING).map((digest) => blobUnknownInManifest(parseDigest(digest)));
    if (missing.length > reported.length) {
      const last = reported[reported.length - 1]!;
      reported[reported.length - 1] = new RegistryError(last.code,
        `${last.message}; ${missing.length - reported.length} more references are missing too`, last.detail);
    }
    throw new RegistryErrors(reported);
  }
}

/** Storage lookups one manifest push runs at once, and missing references it reports. */
const REFERENCE_CHECKS = 16;
const REPORTED_MISSING = 10;

export function acceptsMediaType(accept: string | undefined, mediaType: string): boolean {
  if (!accept) return true;
  const listed = accept.split(',').map((part) => part.split(';')[0]!.trim().toLowerCase()).filter(Boolean);
  // Only a list made purely of manifest types is a constraint; anything generic accepts all.
  if (listed.length === 0 || !listed.every((type) => MANIFEST_TYPES.has(type))) return true;
  return listed.includes(mediaType);
}

function manifestUnknown(reference: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${reference.slice(0, 200)}`,
    { reference: reference.slice(0, 200) });
}

function blobUnknownInManifest(digest: Digest): RegistryError {
  return new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest references ${digest}, which is not in this repository`,
    { digest: digest.toString() });
}
