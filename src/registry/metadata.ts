// The repository metadata contract: every read and write of what a repository holds (tags,
// manifest revisions, blob links, referrers) and the coordination that keeps them consistent
// under concurrency. The services above (blobs, uploads, manifests, tags, gc) hold no storage
// logic of their own for metadata: they validate, cache and call this interface. The link-file
// implementation (link-store.ts) coordinates one process with keyed locks; an implementation on
// a database coordinates several.
import type { Digest } from './names.js';

/** What a manifest put writes, already parsed and validated by the manifest service. */
export interface ManifestRecord {
  digest: Digest;
  /** The media type as pushed (the validated Content-Type or the document's mediaType). */
  mediaType: string;
  content: Buffer;
  /** Blobs the manifest needs in its repository (config and layers). */
  blobs: Digest[];
  /** Manifests it needs in its repository (index children). */
  children: Digest[];
  subject?: Digest;
  /** A copy of an upstream's manifest (pull-through cache): what it references is fetched when
   *  pulled, so its presence is not required. */
  deferReferences?: boolean;
}

/** A reference a manifest put found missing. */
export interface MissingReference {
  digest: Digest;
  kind: 'blob' | 'manifest';
}

export type MetadataEvent =
  | { type: 'manifest-put'; name: string; record: ManifestRecord; tag?: string }
  | { type: 'manifest-deleted'; name: string; digest: Digest; tags: string[] }
  | { type: 'tag-deleted'; name: string; tag: string }
  | { type: 'blob-linked'; name: string; digest: Digest }
  | { type: 'blob-unlinked'; name: string; digest: Digest }
  | { type: 'blob-deleted'; digest: Digest }
  | { type: 'repository-deleted'; name: string };

/** Metadata events shared with the other processes of one registry (its workers). */
export interface EventRelay {
  /** Tells the others of a change made here. */
  publish(event: MetadataEvent): void;
  /** Called for each change another process made. */
  onRemote(listener: (event: MetadataEvent) => void): void;
}

export interface MetadataStore {
  // ---- reads (no locks: each answers from one consistent step) ----
  tag(name: string, tag: string): Promise<Digest | undefined>;
  /** Tags whose current link is readable, sorted; NAME_UNKNOWN when the repository holds no manifests. */
  tags(name: string): Promise<string[]>;
  /** The stored media type of a revision present in `name`, or undefined when it is not present. */
  revision(name: string, digest: Digest): Promise<{ mediaType: string } | undefined>;
  /** Whether a revision is present in `name`: revision() without reading its media type. */
  hasRevision(name: string, digest: Digest): Promise<boolean>;
  revisions(name: string): Promise<Digest[]>;
  /** A store that keeps a copy of each manifest's bytes answers a GET from it, with no storage read. */
  manifest?(name: string, digest: Digest): Promise<{ mediaType: string; content: Buffer } | undefined>;
  blobLinked(name: string, digest: Digest): Promise<boolean>;
  layers(name: string): Promise<Digest[]>;
  referrers(name: string, subject: Digest): Promise<Digest[]>;
  /** Every repository holding manifests, sorted. */
  repositories(): Promise<string[]>;
  /** When a tag was last pushed (written), or undefined when it is missing. */
  tagPushedAt(name: string, tag: string): Promise<number | undefined>;
  /** When a revision was last written (pushed again, or named by a tag or index), or undefined when it is not present. */
  revisionWrittenAt(name: string, digest: Digest): Promise<number | undefined>;
  /** When a tag a cache wrote was last written or pulled (touchTag); undefined for other tags and missing ones. */
  tagUsedAt(name: string, tag: string): Promise<number | undefined>;
  /** Content size when stored, whatever links it. */
  blobStat(digest: Digest): Promise<{ size: number; lastUsed: number } | undefined>;

  // ---- writes (each one atomic with respect to the others) ----
  /** Makes verified upload bytes at `source` the content of `digest` and links it into `name`. */
  commitBlob(name: string, digest: Digest, source: string): Promise<void>;
  /** Links stored content into `name` (a mount); false when the content is not stored. */
  mountBlob(name: string, digest: Digest): Promise<boolean>;
  unlinkBlob(name: string, digest: Digest): Promise<boolean>;
  /**
   * Runs `check` (is the content there for this request?) so that it is ordered with collection's
   * sweep of that content, and when it finds it records a use: the content is then kept for the
   * grace period. A HEAD that answers 200 is never followed by the sweep of what it found.
   */
  useBlob<T>(digest: Digest, check: () => Promise<T | undefined>): Promise<T | undefined>;
  /** Records that a cached tag was pulled: its expiry is measured from now. */
  touchTag(name: string, tag: string): Promise<void>;
  /** Stores a manifest, its revision, referrers entry and tag; returns what was missing (nothing written then). */
  putManifest(name: string, record: ManifestRecord, tag?: string): Promise<MissingReference[]>;
  /** Removes a revision and every tag pointing at it; false when it was not present. */
  deleteManifest(name: string, digest: Digest): Promise<boolean>;
  /** Removes a tag; with `expected`, only while it still points there. False when nothing was removed. */
  deleteTag(name: string, tag: string, expected?: Digest): Promise<boolean>;
  /** Removes a repository's tags, revisions, links and uploads; false when it did not exist. */
  deleteRepository(name: string): Promise<boolean>;

  // ---- collection ----
  /** Deletes stored content last used before `usedBefore`, unless something uses it meanwhile. */
  sweepBlob(digest: Digest, usedBefore: number): Promise<boolean>;
  /** Deletes an untagged revision written before `writtenBefore`, unless a tag reached it meanwhile. */
  sweepManifest(name: string, digest: Digest, writtenBefore: number): Promise<boolean>;
  /** Removes a repository's link to content that is no longer stored. */
  sweepLayerLink(name: string, digest: Digest): Promise<boolean>;
  /** Removes tag folders a crash left without their link, made before `madeBefore`; returns how many. */
  sweepBrokenTags(name: string, madeBefore: number): Promise<number>;

  subscribe(listener: (event: MetadataEvent) => void): void;
}
