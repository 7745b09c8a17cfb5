// Manifests: validated on push, stored as blobs, linked into the repository as revisions, and
// served back byte for byte with the media type they were pushed with.
import { createHash } from 'node:crypto';
import { isNotFound } from '../storage/driver.js';
import type { BlobStore } from './blobs.js';
import { RegistryError, RegistryErrors } from './errors.js';
import { declaredMediaType, MANIFEST_TYPES, parseManifest } from './media-types.js';
import type { MetadataStore } from './metadata.js';
import { Digest, isTag, looksLikeDigest, parseDigest, validateTag } from './names.js';

export interface Manifest {
  digest: Digest;
  mediaType: string;
  content: Buffer;
}

export interface PutResult {
  digest: Digest;
  subject?: Digest;
}

/** Stored bytes and the mediaType they declare (null: none). */
interface Stored {
  content: Buffer;
  declared: string | null;
}

/** Immutable manifest bytes by digest, kept in memory up to a byte budget. */
class ManifestCache {
  private readonly entries = new Map<string, Stored>();
  private bytes = 0;
  constructor(private readonly budget: number) {}

  get(key: string): Stored | undefined {
    return this.entries.get(key);
  }

  set(key: string, stored: Stored): void {
    if (this.entries.has(key) || stored.content.length > this.budget / 16) return;
    this.entries.set(key, stored);
    this.bytes += stored.content.length;
    for (const [oldest, entry] of this.entries) {
      if (this.bytes <= this.budget) break;
      this.entries.delete(oldest);
      this.bytes -= entry.content.length;
    }
  }
}

const MAX_UNDECLARED = 10_000;

export class ManifestService {
  private readonly cache = new ManifestCache(32 << 20);
  /** The media type a revision whose document declares none was pushed with, by name@digest. */
  private readonly undeclared = new Map<string, string>();

  constructor(private readonly store: MetadataStore, private readonly blobs: BlobStore, readonly maxSize: number) {
    store.subscribe((event) => {
      if (event.type === 'manifest-deleted') this.undeclared.delete(`${event.name}@${event.digest}`);
      if (event.type === 'repository-deleted') this.undeclared.clear();
    });
  }

  /** Resolves a tag or digest to the digest of a manifest present in the repository. */
  async resolve(name: string, reference: string): Promise<Digest> {
    if (looksLikeDigest(reference)) {
      const digest = parseDigest(reference);
      if (!(await this.store.hasRevision(name, digest))) throw manifestUnknown(reference);
      return digest;
    }
    return this.resolveTag(name, reference);
  }

  /**
   * A manifest and the media type it was pushed with. By digest, the revision link and the bytes
   * are read at once; by tag, the tag's link then the bytes (a tag only ever points at a revision
   * of its repository: a revision's tags go before it, under the same lock). A document that
   * declares its mediaType needs no other read; the bytes of a digest never change, so they are
   * kept in memory once read.
   */
  async get(name: string, reference: string): Promise<Manifest> {
    let digest: Digest;
    let stored: Stored | undefined;
    if (looksLikeDigest(reference)) {
      digest = parseDigest(reference);
      const [present, bytes] = await Promise.all([this.store.hasRevision(name, digest), this.stored(name, digest)]);
      if (!present) throw manifestUnknown(reference);
      stored = bytes;
    } else {
      digest = await this.resolveTag(name, reference);
      stored = await this.stored(name, digest);
    }
    if (!stored) throw manifestUnknown(reference);
    const mediaType = stored.declared ?? (await this.undeclaredType(name, digest));
    if (!mediaType) throw manifestUnknown(reference);
    return { digest, mediaType, content: stored.content };
  }

  private async undeclaredType(name: string, digest: Digest): Promise<string | undefined> {
    const key = `${name}@${digest}`;
    const known = this.undeclared.get(key);
    if (known) return known;
    const mediaType = (await this.store.revision(name, digest))?.mediaType;
    if (mediaType) {
      if (this.undeclared.size >= MAX_UNDECLARED) this.undeclared.delete(this.undeclared.keys().next().value!);
      this.undeclared.set(key, mediaType);
    }
    return mediaType;
  }

  private async resolveTag(name: string, reference: string): Promise<Digest> {
    if (!isTag(reference)) throw manifestUnknown(reference); // neither a tag nor a digest: nothing is stored under it
    const digest = await this.store.tag(name, reference);
    if (!digest) throw manifestUnknown(reference);
    return digest;
  }

  /** The stored bytes of a manifest (they are the same in every repository holding it); undefined when not stored. */
  private async stored(name: string, digest: Digest): Promise<Stored | undefined> {
    const key = digest.toString();
    const cached = this.cache.get(key);
    if (cached) return cached;
    try {
      // a store that keeps each manifest's bytes (the database) answers without a storage read
      const content = this.store.manifest
        ? (await this.store.manifest(name, digest))?.content
        : await this.blobs.getSmall(digest);
      if (!content) return undefined;
      const stored = { content, declared: declaredMediaType(content) ?? null };
      this.cache.set(key, stored);
      return stored;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
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
    const subject = parsed.subject ? parseDigest(parsed.subject.digest) : undefined;
    const missing = await this.store.putManifest(name, {
      digest, mediaType: parsed.mediaType, content, blobs: parsed.blobs, children: parsed.manifests, subject,
    }, byDigest ? undefined : reference);
    if (missing.length > 0) throw missingReferences(missing.map((m) => m.digest));
    this.cache.set(digest.toString(), { content, declared: declaredMediaType(content) ?? null });
    return { digest, subject };
  }

  /** Deletes a manifest revision, the tags that point at it and its referrers entry. */
  async delete(name: string, digest: Digest): Promise<void> {
    if (!(await this.store.deleteManifest(name, digest))) throw manifestUnknown(digest.toString());
  }
}

/** How many missing references an error lists; the message counts the rest. */
const MAX_REPORTED_MISSING = 10;

function missingReferences(missing: Digest[]): RegistryErrors {
  const errors = missing.slice(0, MAX_REPORTED_MISSING).map(blobUnknownInManifest);
  if (missing.length > MAX_REPORTED_MISSING) {
    errors[errors.length - 1]!.message += ` (and ${missing.length - MAX_REPORTED_MISSING} more references are missing)`;
  }
  return new RegistryErrors(errors);
}

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
