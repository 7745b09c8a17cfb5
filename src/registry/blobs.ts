// Blobs: content-addressed data shared by every repository, reachable from a repository only
// through its link files (which gives deduplication and cross-repository mounts for free).
// What links what, and when content may go, is the metadata store's; this service adds the
// size cache and streams the bytes.
import type { Writable } from 'node:stream';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { RegistryError } from './errors.js';
import type { MetadataStore } from './metadata.js';
import { parseDigest, type Digest } from './names.js';
import { paths } from './paths.js';

export interface BlobDescriptor {
  digest: Digest;
  size: number;
}

const MAX_CACHED_SIZES = 100_000;

export class BlobStore {
  /** Content is immutable, so a blob's size never changes; only collection removes it, and tells us. */
  private readonly sizes = new Map<string, number>();

  constructor(private readonly driver: StorageDriver, private readonly store: MetadataStore) {
    store.subscribe((event) => {
      if (event.type === 'blob-deleted') this.forget(event.digest);
    });
  }

  /** Size of a blob linked into `name`; BLOB_UNKNOWN when it is not. A found blob counts as used. */
  async stat(name: string, digest: Digest): Promise<BlobDescriptor> {
    const found = await this.store.useBlob(digest, async () => {
      const [linked, stored] = await Promise.all([this.store.blobLinked(name, digest), this.statGlobal(digest)]);
      return linked ? stored : undefined;
    });
    if (!found) throw blobUnknown(digest);
    return found;
  }

  /** The blob's descriptor if its content is stored, whatever repository links it. */
  async statGlobal(digest: Digest): Promise<BlobDescriptor | undefined> {
    const key = digest.toString();
    const known = this.sizes.get(key);
    if (known !== undefined) return { digest, size: known };
    const stat = await this.store.blobStat(digest);
    if (!stat) return undefined;
    if (this.sizes.size >= MAX_CACHED_SIZES) this.sizes.delete(this.sizes.keys().next().value!);
    this.sizes.set(key, stat.size);
    return { digest, size: stat.size };
  }

  /** Forgets a cached size (the content was removed, here or behind our back). */
  forget(digest: Digest): void {
    this.sizes.delete(digest.toString());
  }

  /** Forgets every cached size: collection ran in another process. */
  forgetAll(): void {
    this.sizes.clear();
  }

  /** Sends bytes [start, end] of a blob to `dest` (which the caller ends). */
  async copyTo(digest: Digest, dest: Writable, start?: number, end?: number): Promise<void> {
    try {
      await this.driver.copyTo(paths.blobData(digest), dest, start, end);
    } catch (err) {
      if (isNotFound(err)) {
        this.forget(digest); // removed behind our back (collection in another process)
        throw blobUnknown(digest);
      }
      throw err;
    }
  }

  /** Whether `name` links the blob and its content is in storage now (no cache). */
  async present(name: string, digest: Digest): Promise<boolean> {
    return (await this.store.blobLinked(name, digest)) && (await this.store.blobStat(digest)) !== undefined;
  }

  /** Links stored content into `name` (cross-repository mount); false when it is not stored. */
  mount(name: string, digest: Digest): Promise<boolean> {
    return this.store.mountBlob(name, digest);
  }

  async unlink(name: string, digest: Digest): Promise<void> {
    if (!(await this.store.unlinkBlob(name, digest))) throw blobUnknown(digest);
  }

  /** Where a client may download the blob from directly, when storage has such URLs. */
  downloadUrl(digest: Digest): Promise<string> | undefined {
    return this.driver.downloadUrl?.(paths.blobData(digest));
  }

  async getSmall(digest: Digest): Promise<Buffer> {
    return this.driver.getContent(paths.blobData(digest));
  }
}

export function blobUnknown(digest: Digest): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', `blob unknown to registry: ${digest}`, { digest: digest.toString() });
}

/** Reads a link file; undefined when it does not exist or does not hold a digest. */
export async function readLink(driver: StorageDriver, path: string): Promise<Digest | undefined> {
  try {
    const content = (await driver.getContent(path)).toString('utf8').trim();
    return parseDigest(content);
  } catch (err) {
    if (isNotFound(err) || err instanceof RegistryError) return undefined;
    throw err;
  }
}
