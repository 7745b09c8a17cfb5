// Garbage collection, mark and sweep as registry:2's garbage-collect does it: every blob a
// manifest of any repository references is kept, every other blob is deleted. Run it while no
// pushes happen: a blob uploaded but not yet referenced by a manifest would be swept.
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { readLink } from './blobs.js';
import { walkRepositories } from './catalog.js';
import { parseManifest, storedMediaType } from './media-types.js';
import { Digest, parseDigest } from './names.js';
import { paths } from './paths.js';

export interface GcOptions {
  dryRun: boolean;
  /** Also delete manifests that no tag reaches (directly, through an index, or as a referrer). */
  deleteUntagged: boolean;
  onDelete?: (what: 'blob' | 'manifest', detail: Record<string, string>) => void;
}

export interface GcResult {
  repositories: number;
  manifestsDeleted: number;
  blobsKept: number;
  blobsDeleted: number;
}

async function listOrEmpty(driver: StorageDriver, path: string): Promise<string[]> {
  try {
    return await driver.list(path);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}

export interface GcReport extends GcResult {
  finishedAt: string;
  dryRun: boolean;
}

const REPORT = '/berth/gc/last.json';

/** The last run's result, which `berth gc` leaves in storage for the registry's metrics. */
export async function lastGcReport(driver: StorageDriver): Promise<GcReport | undefined> {
  try {
    return JSON.parse((await driver.getContent(REPORT)).toString('utf8')) as GcReport;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** What a stored manifest keeps alive. A manifest that cannot be read stops the collection:
 *  sweeping without knowing its references could delete layers it needs. */
function referencesOf(content: Buffer, where: string): { children: string[]; blobs: string[]; subject?: string } {
  let doc: { schemaVersion?: number; fsLayers?: { blobSum?: string }[] };
  try {
    doc = JSON.parse(content.toString('utf8'));
  } catch {
    throw new Error(`garbage collection stopped before deleting anything: manifest ${where} is not JSON`);
  }
  if (doc.schemaVersion === 1) { // Docker schema1 (written by older registries): its layers are fsLayers
    return { children: [], blobs: (doc.fsLayers ?? []).map((l) => l.blobSum).filter((d): d is string => typeof d === 'string') };
  }
  try {
    const parsed = parseManifest(content, storedMediaType(content));
    return { children: parsed.manifests.map(String), blobs: parsed.blobs.map(String), subject: parsed.subject?.digest };
  } catch (err) {
    throw new Error(`garbage collection stopped before deleting anything: manifest ${where} cannot be read (${(err as Error).message})`);
  }
}

export async function collectGarbage(driver: StorageDriver, options: GcOptions): Promise<GcResult> {
  const marked = new Set<string>();
  const result: GcResult = { repositories: 0, manifestsDeleted: 0, blobsKept: 0, blobsDeleted: 0 };
  for (const name of await walkRepositories(driver, '_manifests')) {
    result.repositories++;
    const revisions = new Map<string, { children: string[]; blobs: string[]; subject?: string }>();
    for (const algorithm of await listOrEmpty(driver, paths.revisionsRoot(name))) {
      for (const hex of await listOrEmpty(driver, `${paths.revisionsRoot(name)}/${algorithm}`)) {
        let digest: Digest;
        try {
          digest = parseDigest(`${algorithm}:${hex}`);
        } catch {
          continue;
        }
        let content: Buffer;
        try {
          content = await driver.getContent(paths.blobData(digest));
        } catch (err) {
          if (isNotFound(err)) continue;
          throw err;
        }
        revisions.set(digest.toString(), referencesOf(content, `${name}@${digest}`));
      }
    }
    // Which revisions survive: all of them, or those reachable from a tag.
    let alive = new Set(revisions.keys());
    if (options.deleteUntagged) {
      alive = new Set();
      const queue: string[] = [];
      for (const tag of await listOrEmpty(driver, paths.tagsRoot(name))) {
        const current = await readLink(driver, paths.tagCurrentLink(name, tag));
        if (current) queue.push(current.toString());
      }
      for (;;) {
        while (queue.length > 0) {
          const digest = queue.pop()!;
          if (alive.has(digest) || !revisions.has(digest)) continue;
          alive.add(digest);
          queue.push(...revisions.get(digest)!.children);
        }
        for (const [digest, info] of revisions) {
          if (!alive.has(digest) && info.subject && alive.has(info.subject)) queue.push(digest);
        }
        if (queue.length === 0) break;
      }
    }
    for (const [digest, info] of revisions) {
      if (!alive.has(digest)) {
        options.onDelete?.('manifest', { repository: name, digest });
        result.manifestsDeleted++;
        if (!options.dryRun) {
          const d = parseDigest(digest);
          await driver.delete(paths.revisionDir(name, d));
          if (info.subject) await driver.delete(paths.referrerLink(name, parseDigest(info.subject), d).replace(/\/link$/, ''));
        }
        continue;
      }
      marked.add(digest);
      for (const blob of info.blobs) marked.add(blob);
    }
  }
  // Sweep the blob store.
  const root = paths.blobsRoot();
  for (const algorithm of await listOrEmpty(driver, root)) {
    for (const prefix of await listOrEmpty(driver, `${root}/${algorithm}`)) {
      for (const hex of await listOrEmpty(driver, `${root}/${algorithm}/${prefix}`)) {
        const digest = `${algorithm}:${hex}`;
        if (marked.has(digest)) {
          result.blobsKept++;
          continue;
        }
        options.onDelete?.('blob', { digest });
        result.blobsDeleted++;
        if (!options.dryRun) await driver.delete(`${root}/${algorithm}/${prefix}/${hex}`);
      }
    }
  }
  if (!options.dryRun) {
    const report: GcReport = { finishedAt: new Date().toISOString(), dryRun: false, ...result };
    await driver.putContent(REPORT, JSON.stringify(report));
  }
  return result;
}
