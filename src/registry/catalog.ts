// The catalog: every repository holding manifests, sorted. The tree walk is cached for a few
// seconds so that paging through tens of thousands of repositories costs one walk, not one
// per page; repositories this process creates or deletes show at once, others within twice the
// TTL: a copy older than the TTL is still served while a new walk runs behind it.
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { paths } from './paths.js';

const WALK_CONCURRENCY = 32;

/**
 * Where the names come from when not from a walk of storage (a database): `version` changes
 * whenever a repository joins or leaves, so a copy is reused exactly as long as it is current.
 */
export interface RepositorySource {
  list(): Promise<string[]>;
  version(): Promise<string>;
}

export class CatalogService {
  private names: string[] | undefined;
  private builtAt = 0;
  private building: Promise<string[]> | undefined;
  private builtVersion: string | undefined;
  /** What this process created and deleted while a walk was running, applied to its result. */
  private changes: { added: Set<string>; removed: Set<string> } | undefined;

  constructor(private readonly driver: StorageDriver, private readonly ttlMs = 10_000, private readonly source?: RepositorySource) {}

  async list(): Promise<string[]> {
    if (this.source) return this.listFromSource(this.source);
    const age = Date.now() - this.builtAt;
    if (this.names && age < this.ttlMs) return this.names;
    const walking = this.rewalk();
    if (this.names && age < 2 * this.ttlMs) {
      walking.catch(() => undefined); // its failure is the next caller's, once the copy is too old
      return this.names;
    }
    return walking;
  }

  private rewalk(): Promise<string[]> {
    if (this.building) return this.building;
    const changes = (this.changes = { added: new Set<string>(), removed: new Set<string>() });
    this.building = this.walk().then((names) => {
      for (const name of changes.removed) {
        const at = names.indexOf(name);
        if (at !== -1) names.splice(at, 1);
      }
      for (const name of changes.added) insertSorted(names, name);
      this.names = names;
      this.builtAt = Date.now();
      return names;
    }).finally(() => {
      this.building = undefined;
      this.changes = undefined;
    });
    return this.building;
  }

  private async listFromSource(source: RepositorySource): Promise<string[]> {
    const version = await source.version();
    if (this.names && version === this.builtVersion) return this.names;
    // the version is read before the names: a change between the two only makes the next call read them again
    this.building ??= source.list().then((names) => {
      this.names = names;
      this.builtVersion = version;
      return names;
    }).finally(() => { this.building = undefined; });
    return this.building;
  }

  /** Records a repository created here, so it shows before the next walk. */
  add(name: string): void {
    this.changes?.removed.delete(name);
    this.changes?.added.add(name);
    if (this.names) insertSorted(this.names, name);
  }

  /** Drops a repository deleted here, so it leaves the catalog at once. */
  remove(name: string): void {
    this.changes?.added.delete(name);
    this.changes?.removed.add(name);
    if (!this.names) return;
    const at = this.names.indexOf(name);
    if (at !== -1) this.names.splice(at, 1);
  }

  walk(): Promise<string[]> {
    if (this.source) return this.source.list();
    return walkRepositories(this.driver, '_manifests');
  }
}

function insertSorted(names: string[], name: string): void {
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (names[mid]! < name) lo = mid + 1; else hi = mid;
  }
  if (names[lo] !== name) names.splice(lo, 0, name);
}

/** Walks `repositories/` for directories holding `marker` (`_manifests`: a repository with content). */
export async function walkRepositories(driver: StorageDriver, marker: string): Promise<string[]> {
  const root = paths.repositoriesRoot();
  if (driver.findFolders) return driver.findFolders(root, marker);
  const found: string[] = [];
  let queue: string[] = [''];
  while (queue.length > 0) {
    const next: string[] = [];
    for (let i = 0; i < queue.length; i += WALK_CONCURRENCY) {
      await Promise.all(queue.slice(i, i + WALK_CONCURRENCY).map(async (prefix) => {
        let children: string[];
        try {
          children = await driver.list(prefix ? `${root}/${prefix}` : root);
        } catch (err) {
          if (isNotFound(err)) return;
          throw err;
        }
        for (const child of children) {
          if (child === marker) found.push(prefix);
          else if (!child.startsWith('_') && !child.startsWith('.')) next.push(prefix ? `${prefix}/${child}` : child);
        }
      }));
    }
    queue = next;
  }
  return found.sort();
}
