// Garbage collection: mark from every repository's manifests (or, with deleteUntagged, from its
// tags), then sweep what nothing marked. It runs inside the serving registry, safely against
// concurrent pushes, by two rules the metadata store enforces under its locks:
// - grace: content is removed only when its last use (upload, mount, link, HEAD or GET, or
//   being referenced by a manifest put) is older than the grace period and older than the
//   start of this collection (the fence), so whatever a push in progress touched is kept;
// - re-check: each removal re-reads that time under the content's exclusive lock, so a use
//   racing the sweep either happens before (and the content is kept) or after (and finds it gone).
import type { StorageDriver } from '../storage/driver.js';
import { isNotFound } from '../storage/driver.js';
import { RegistryError } from './errors.js';
import { parseManifest, storedMediaType } from './media-types.js';
import { mapBounded } from '../storage/many.js';
import type { MetadataStore } from './metadata.js';
import { parseDigest, type Digest } from './names.js';
import { paths } from './paths.js';
import { readReport } from './single-run.js';

export interface GcOptions {
  dryRun: boolean;
  /** Also delete manifests that no tag reaches (directly, through an index, or as a referrer of one). */
  deleteUntagged: boolean;
  /** Minimum age of unreferenced content (since its last use) before it is removed. */
  graceMs: number;
  onDelete?: (what: 'blob' | 'manifest', detail: Record<string, string>) => void;
  onProgress?: (detail: Record<string, unknown>, message: string) => void;
  /** A stored manifest that cannot be read: everything it might reference is kept. */
  onUnreadable?: (name: string, digest: Digest, reason: string) => void;
  /** Removes uploads idle since before the given time; returns how many went. */
  purgeUploads?: (idleBefore: Date) => Promise<{ count: number; bytes: number }>;
}

export interface GcResult {
  repositories: number;
  manifestsDeleted: number;
  blobsKept: number;
  blobsDeleted: number;
  bytesFreed: number;
  layerLinksDeleted: number;
  /** Tag folders a crash left without their link. */
  brokenTagsDeleted: number;
  uploadsDeleted: number;
  unreadableManifests: number;
  durationMs: number;
}

export interface GcReport extends GcResult {
  startedAt: string;
  finishedAt: string;
  dryRun: boolean;
}

const REPORT = '/berth/gc/last.json';
/** Repositories marked, and blob folders swept, at once: enough to keep pace, little enough to leave the serving requests room. */
const PARALLEL = 8;

/** The last run's result, kept in storage for every process's metrics and the management API. */
export function lastGcReport(driver: StorageDriver): Promise<GcReport | undefined> {
  return readReport<GcReport>(driver, REPORT);
}

interface References {
  children: string[];
  blobs: string[];
  subject?: string;
}

const DIGEST_TEXT = /\b(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})\b/g;

/** What a stored manifest keeps alive; undefined when it cannot be read (then see `everythingIn`). */
export function referencesOf(content: Buffer): References | { unreadable: string } {
  let doc: { schemaVersion?: number; fsLayers?: { blobSum?: string }[] };
  try {
    doc = JSON.parse(content.toString('utf8'));
  } catch (err) {
    return { unreadable: `not JSON (${(err as Error).message})` };
  }
  if (doc?.schemaVersion === 1) { // Docker schema1 (written by older registries): its layers are fsLayers
    return { children: [], blobs: (doc.fsLayers ?? []).map((l) => l.blobSum).filter((d): d is string => typeof d === 'string') };
  }
  try {
    const parsed = parseManifest(content, storedMediaType(content));
    return { children: parsed.manifests.map(String), blobs: parsed.blobs.map(String), subject: parsed.subject?.digest };
  } catch (err) {
    return { unreadable: (err as Error).message };
  }
}

/** Every digest written anywhere in a document: what an unreadable manifest might reference. */
export function everythingIn(content: Buffer): string[] {
  return [...new Set(content.toString('utf8').match(DIGEST_TEXT) ?? [])];
}

export async function collectGarbage(store: MetadataStore, driver: StorageDriver, options: GcOptions): Promise<GcReport> {
  const started = Date.now();
  // the fence: nothing used after the collection started is removed, whatever the grace
  const usedBefore = started - Math.max(0, options.graceMs);
  const progress = options.onProgress ?? (() => undefined);
  const result: GcResult = {
    repositories: 0, manifestsDeleted: 0, blobsKept: 0, blobsDeleted: 0, bytesFreed: 0,
    layerLinksDeleted: 0, brokenTagsDeleted: 0, uploadsDeleted: 0, unreadableManifests: 0, durationMs: 0,
  };
  const marked = new Set<string>();
  const layerLinks = new Map<string, Digest[]>();
  const repositories = await store.repositories();
  progress({ repositories: repositories.length, graceMs: options.graceMs, dryRun: options.dryRun }, 'garbage collection: marking');

  await mapBounded(repositories, async (name) => {
    result.repositories++;
    if (result.repositories % 1000 === 0) progress({ done: result.repositories, of: repositories.length }, 'garbage collection: marking');
    const revisions = new Map<string, References & { unreadable?: boolean }>();
    const contents = await mapBounded(await store.revisions(name), async (digest) => {
      try {
        return { digest, content: await driver.getContent(paths.blobData(digest)) };
      } catch (err) {
        if (isNotFound(err)) return undefined; // a revision whose content is gone: nothing to keep for it
        throw err;
      }
    });
    for (const { digest, content } of contents.filter((c): c is { digest: Digest; content: Buffer } => c !== undefined)) {
      const refs = referencesOf(content);
      if ('unreadable' in refs) {
        result.unreadableManifests++;
        options.onUnreadable?.(name, digest, refs.unreadable);
        revisions.set(digest.toString(), { children: everythingIn(content), blobs: everythingIn(content), unreadable: true });
      } else {
        revisions.set(digest.toString(), refs);
      }
    }
    let alive = new Set(revisions.keys());
    if (options.deleteUntagged) {
      alive = new Set();
      // roots: what the tags point at, and every unreadable manifest (its references are unknown)
      const queue = [...revisions].filter(([, info]) => info.unreadable).map(([digest]) => digest);
      // any error reading the tags stops the collection: guessing "no tags" would sweep tagged images
      for (const tag of await store.tags(name).catch((err) => {
        if (err instanceof RegistryError && err.code === 'NAME_UNKNOWN') return [] as string[];
        throw err;
      })) {
        const current = await store.tag(name, tag);
        if (current) queue.push(current.toString());
      }
      for (;;) {
        while (queue.length > 0) {
          const digest = queue.pop()!;
          if (alive.has(digest) || !revisions.has(digest)) continue;
          alive.add(digest);
          queue.push(...revisions.get(digest)!.children);
        }
        // referrers of a kept manifest are kept
        for (const [digest, info] of revisions) {
          if (!alive.has(digest) && info.subject && alive.has(info.subject)) queue.push(digest);
        }
        if (queue.length === 0) break;
      }
    }
    for (const [digest, info] of revisions) {
      if (!alive.has(digest)) {
        const removed = options.dryRun
          ? await revisionOlderThan(driver, name, digest, usedBefore)
          : await store.sweepManifest(name, parseDigest(digest), usedBefore);
        if (removed) {
          options.onDelete?.('manifest', { repository: name, digest });
          result.manifestsDeleted++;
          continue;
        }
        // pushed, tagged or referenced since: it stays, and so does what it references
      }
      marked.add(digest);
      for (const blob of info.blobs) marked.add(blob);
      for (const child of info.children) marked.add(child);
    }
    layerLinks.set(name, await store.layers(name));
    if (!options.dryRun) result.brokenTagsDeleted += await store.sweepBrokenTags(name, usedBefore);
  }, PARALLEL);

  progress({ marked: marked.size }, 'garbage collection: sweeping blobs');
  const stored = new Set<string>();
  const root = paths.blobsRoot();
  for (const algorithm of await listOrEmpty(driver, root)) {
    await mapBounded(await listOrEmpty(driver, `${root}/${algorithm}`), async (prefix) => {
      for (const hex of await listOrEmpty(driver, `${root}/${algorithm}/${prefix}`)) {
        let digest: Digest;
        try {
          digest = parseDigest(`${algorithm}:${hex}`);
        } catch {
          continue;
        }
        const key = digest.toString();
        if (marked.has(key)) {
          stored.add(key);
          result.blobsKept++;
          continue;
        }
        const stat = await store.blobStat(digest);
        if (!stat) { // a folder a crash left without its data
          if (!options.dryRun) await store.sweepBlob(digest, usedBefore);
          continue;
        }
        const removed = options.dryRun ? stat.lastUsed < usedBefore : await store.sweepBlob(digest, usedBefore);
        if (!removed) {
          stored.add(key);
          result.blobsKept++;
          continue;
        }
        options.onDelete?.('blob', { digest: key });
        result.blobsDeleted++;
        result.bytesFreed += stat.size;
      }
    }, PARALLEL);
  }
  if (!options.dryRun) {
    // links to content that is no longer stored are garbage too
    const dangling = [...layerLinks].flatMap(([name, digests]) => digests.filter((d) => !stored.has(d.toString())).map((d) => ({ name, d })));
    await mapBounded(dangling, async ({ name, d }) => {
      if (await store.sweepLayerLink(name, d)) result.layerLinksDeleted++;
    });
    if (options.purgeUploads) {
      result.uploadsDeleted = (await options.purgeUploads(new Date(usedBefore))).count;
    }
  }
  result.durationMs = Date.now() - started;
  const report: GcReport = { startedAt: new Date(started).toISOString(), finishedAt: new Date().toISOString(), dryRun: options.dryRun, ...result };
  if (!options.dryRun) await driver.putContent(REPORT, JSON.stringify(report), { durable: false });
  return report;
}

async function revisionOlderThan(driver: StorageDriver, name: string, digest: string, before: number): Promise<boolean> {
  try {
    return (await driver.stat(paths.revisionLink(name, parseDigest(digest)))).modTime.getTime() < before;
  } catch {
    return false;
  }
}

async function listOrEmpty(driver: StorageDriver, path: string): Promise<string[]> {
  try {
    return await driver.list(path);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}
