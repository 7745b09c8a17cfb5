// What the read handlers ask of the registry: manifests, blobs and tag lists of a repository.
// `LocalContent` answers from storage; a decorator (src/proxy/) answers for repositories that
// mirror an upstream, falling back to this one. `RepositoryPolicy` is what the dispatcher asks
// before a request reaches a handler: which stored repository a request names, and whether the
// operation is allowed there.
import type { Writable } from 'node:stream';
import type { BlobDescriptor, BlobStore } from './blobs.js';
import type { Manifest, ManifestService } from './manifests.js';
import type { Digest } from './names.js';
import type { TagService } from './tags.js';

/** Response headers a read adds (e.g. that a cached copy was served because the upstream failed). */
export type Notes = Record<string, string>;

export interface BlobBody extends BlobDescriptor {
  /** Whether `send` honours a byte range (a blob still arriving from an upstream does not). */
  ranges: boolean;
  notes?: Notes;
  /** Where the client is sent for the bytes instead (a presigned storage URL), when set. */
  redirect?: string;
  /** Sends bytes [start, end] to `dest` (which the caller ends). */
  send(dest: Writable, start?: number, end?: number): Promise<void>;
}

export interface ContentReader {
  manifest(name: string, reference: string): Promise<Manifest & { notes?: Notes }>;
  /** A blob's descriptor (HEAD); BLOB_UNKNOWN when there is none. */
  blobStat(name: string, digest: Digest): Promise<BlobDescriptor & { notes?: Notes }>;
  blob(name: string, digest: Digest): Promise<BlobBody>;
  tags(name: string): Promise<{ tags: string[]; notes?: Notes }>;
}

export type Effect = 'read' | 'write' | 'delete';

export interface RepositoryPolicy {
  /** The stored repository a request names (containerd's `?ns=` may place it under a prefix). */
  localName(name: string, query: URLSearchParams): string;
  /** Throws when `effect` is not allowed on `name` (pushes to a mirrored repository). */
  check(name: string, effect: Effect): void;
}

export const OPEN_POLICY: RepositoryPolicy = { localName: (name) => name, check: () => undefined };

export class LocalContent implements ContentReader {
  constructor(private readonly blobs: BlobStore, private readonly manifests: ManifestService, private readonly tagService: TagService,
              /** Whether downloads go to storage's own URLs when it has them (storage.redirect). */
              private readonly redirects = false) {}

  manifest(name: string, reference: string): Promise<Manifest> {
    return this.manifests.get(name, reference);
  }

  blobStat(name: string, digest: Digest): Promise<BlobDescriptor> {
    return this.blobs.stat(name, digest);
  }

  async blob(name: string, digest: Digest): Promise<BlobBody> {
    const { size } = await this.blobs.stat(name, digest);
    const redirect = this.redirects && size > 0 ? await this.blobs.downloadUrl(digest) : undefined;
    return { digest, size, ranges: true, redirect, send: (dest, start, end) => this.blobs.copyTo(digest, dest, start, end) };
  }

  async tags(name: string): Promise<{ tags: string[] }> {
    return { tags: await this.tagService.list(name) };
  }
}
