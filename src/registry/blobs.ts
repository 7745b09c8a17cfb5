// Blobs: content-addressed data shared by every repository, reachable from a repository only
// through its link files (which gives deduplication and cross-repository mounts for free).
import type { Writable } from 'node:stream';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { RegistryError } from './errors.js';
import { parseDigest, type Digest } from './names.js';
import { paths } from './paths.js';

export interface BlobDescriptor {
  digest: Digest;
  size: number;
}

const MAX_CACHED_SIZES = 100_000;

export class BlobStore {
  /** Content is immutable, so a blob's size never changes; only garbage collection removes it. */
  private readonly sizes = new Map<string, number>();

  constructor(private readonly driver: StorageDriver) {}

  /** Size of a blob linked into `name`; BLOB_UNKNOWN when it is not. */
  async stat(name: string, digest: Digest): Promise<BlobDescriptor> {
    const [linked, stored] = await Promise.all([this.isLinked(name, digest), this.statGlobal(digest)]);
    if (!linked || !stored) throw blobUnknown(digest);
    return stored;
  }

  /** The blob's descriptor if its content is stored, whatever repository links it. */
  async statGlobal(digest: Digest): Promise<BlobDescriptor | undefined> {
    const key = digest.toString();
    const known = this.sizes.get(key);
    if (known !== undefined) return { digest, size: known };
    try {
      const info = await this.driver.stat(paths.blobData(digest));
      if (this.sizes.size >= MAX_CACHED_SIZES) this.sizes.delete(this.sizes.keys().next().value!);
      this.sizes.set(key, info.size);
      return { digest, size: info.size };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Asks storage itself, bypassing the cache: used before dropping bytes as duplicates. */
  async storedNow(digest: Digest): Promise<boolean> {
    this.sizes.delete(digest.toString());
    return (await this.statGlobal(digest)) !== undefined;
  }

  /** Forgets cached sizes (after garbage collection in this process). */
  forget(digest: Digest): void {
    this.sizes.delete(digest.toString());
  }

  /** Forgets every cached size: garbage collection ran (possibly in another process). */
  forgetAll(): void {
    this.sizes.clear();
  }

  async isLinked(name: string, digest: Digest): Promise<boolean> {
    return readLink(this.driver, paths.layerLink(name, digest)).then((linked) => linked?.toString() === digest.toString());
  }

  /** Sends bytes [start, end] of a blob to `dest` (which the caller ends). */
  async copyTo(digest: Digest, dest: Writable, start?: number, end?: number): Promise<void> {
    try {
      await this.driver.copyTo(paths.blobData(digest), dest, start, end);
    } catch (err) {
      if (isNotFound(err)) {
        this.forget(digest); // removed behind our back (garbage collection)
        throw blobUnknown(digest);
      }
      throw err;
    }
  }

  /** Whether `name` links the blob and its content is in storage now (no cache): for manifest checks. */
  async present(name: string, digest: Digest): Promise<boolean> {
    return (await this.isLinked(name, digest)) && this.storedNow(digest);
  }

  async link(name: string, digest: Digest): Promise<void> {
    await this.driver.putContent(paths.layerLink(name, digest), digest.toString());
  }

  async unlink(name: string, digest: Digest): Promise<void> {
    if (!(await this.isLinked(name, digest))) throw blobUnknown(digest);
    await this.driver.delete(paths.layerLink(name, digest).replace(/\/link$/, ''));
  }

  /**
   * Makes the file at `source` (fully written, digest verified) the content of `digest`, by one
   * atomic move. When the content is already stored, the duplicate is simply dropped.
   */
  async commit(source: string, digest: Digest): Promise<void> {
    if (await this.storedNow(digest)) {
      await this.driver.delete(source);
      return;
    }
    await this.driver.move(source, paths.blobData(digest));
  }

  /** Stores small content (a manifest) under its digest. */
  async putSmall(digest: Digest, content: Buffer): Promise<void> {
    if (await this.storedNow(digest)) return;
    await this.driver.putContent(paths.blobData(digest), content);
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
