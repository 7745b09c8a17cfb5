// The catalog: every repository holding manifests, sorted. The tree walk is cached for a few
// seconds so that paging through tens of thousands of repositories costs one walk, not one
// per page; repositories this process creates are added at once, others within the TTL.
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

  constructor(private readonly driver: StorageDriver, private readonly ttlMs = 10_000, private readonly source?: RepositorySource) {}

  async list(): Promise<string[]> {
    if (this.source) return this.listFromSource(this.source);
    if (this.names && Date.now() - this.builtAt < this.ttlMs) return this.names;
    this.building ??= this.walk().then((names) => {
      this.names = names;
      this.builtAt = Date.now();
      return names;
    }).finally(() => { this.building = undefined; });
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
    if (!this.names) return;
    let lo = 0;
    let hi = this.names.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.names[mid]! < name) lo = mid + 1; else hi = mid;
    }
    if (this.names[lo] !== name) this.names.splice(lo, 0, name);
  }

  /** Drops a repository deleted here, so it leaves the catalog at once. */
  remove(name: string): void {
    if (!this.names) return;
    const at = this.names.indexOf(name);
    if (at !== -1) this.names.splice(at, 1);
  }

  walk(): Promise<string[]> {
    if (this.source) return this.source.list();
    return walkRepositories(this.driver, '_manifests');
  }
}

/** Walks `repositories/` for directories holding `marker` (`_manifests`: a repository with content). */
export async function walkRepositories(driver: StorageDriver, marker: string): Promise<string[]> {
  const found: string[] = [];
  const root = paths.repositoriesRoot();
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
