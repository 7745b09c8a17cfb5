// The catalog: every repository holding manifests, sorted. The tree walk is cached for a few
// seconds so that paging through tens of thousands of repositories costs one walk, not one
// per page; repositories this process creates or deletes show at once, others within twice the
// TTL: a copy older than the TTL is still served while a new walk runs behind it. Processes
// serving one registry together (its workers) share each walk's result, so paging through the
// catalog across their connections walks the tree once, not once per process.
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

/** Walk results shared with the other processes serving one registry (its workers). */
export interface WalkShare {
  /** Tells the others that a walk started here: they wait for its result rather than walk too. */
  starting(): void;
  /** Tells the others of a walk that started at `startedAt` (ms since the epoch) and found `names` (none: it failed). */
  publish(names: string[] | undefined, startedAt: number): void;
  /** Called when another process starts a walk, and when it has finished one (no names: it failed, or its process is gone). */
  onRemote(listener: { started(): void; walked(names: string[] | undefined, startedAt: number): void }): void;
}

/** How long a walk another process started is waited for, before walking here instead. */
const REMOTE_WALK_WAIT_MS = 30_000;
/** A change is applied again to a shared walk that started up to this long after it. */
const CHANGE_SLACK_MS = 1_000;

export class CatalogService {
  private names: string[] | undefined;
  private builtAt = 0;
  private building: Promise<string[]> | undefined;
  private builtVersion: string | undefined;
  /** The adds and removes of the last CHANGE_SLACK_MS, and of the time a walk here or elsewhere runs, in order. */
  private readonly changeLog: { at: number; name: string; added: boolean }[] = [];
  /** A walk another process announced: resolved when its result arrives, or after REMOTE_WALK_WAIT_MS. */
  private remoteWalk: { done: Promise<void>; finish(): void } | undefined;

  constructor(private readonly driver: StorageDriver, private readonly ttlMs = 10_000, private readonly source?: RepositorySource,
              private readonly share?: WalkShare) {
    share?.onRemote({
      started: () => this.remoteStarted(),
      walked: (names, startedAt) => {
        if (names) this.adopt(names, startedAt);
        this.remoteWalk?.finish();
      },
    });
  }

  private remoteStarted(): void {
    if (this.remoteWalk) return;
    let finish!: () => void;
    const done = new Promise<void>((resolve) => { finish = resolve; });
    const timer = setTimeout(() => walk.finish(), REMOTE_WALK_WAIT_MS);
    timer.unref();
    const walk = {
      done,
      finish: () => {
        clearTimeout(timer);
        if (this.remoteWalk === walk) this.remoteWalk = undefined;
        finish();
      },
    };
    this.remoteWalk = walk;
  }

  /**
   * Takes another process's walk as this one's copy when it is newer. What changed since shortly
   * before that walk started is applied again, in order: a change the walk already saw ends the
   * same, one it missed is not lost.
   */
  private adopt(names: string[], startedAt: number): void {
    if (this.names && this.builtAt >= startedAt) return;
    this.applyChanges(names, startedAt - CHANGE_SLACK_MS);
    this.names = names;
    this.builtAt = startedAt;
  }

  /** Applies to a walk's result, in order, what changed from `since` on. */
  private applyChanges(names: string[], since: number): void {
    for (const change of this.changeLog) {
      if (change.at < since) continue;
      if (change.added) insertSorted(names, change.name);
      else removeName(names, change.name);
    }
  }

  private logChange(name: string, added: boolean): void {
    const now = Date.now();
    this.changeLog.push({ at: now, name, added });
    if (this.building || this.remoteWalk) return; // kept until that walk's result is corrected by it
    let old = 0;
    while (old < this.changeLog.length && this.changeLog[old]!.at < now - CHANGE_SLACK_MS) old++;
    if (old > 0) this.changeLog.splice(0, old);
  }

  async list(): Promise<string[]> {
    if (this.source) return this.listFromSource(this.source);
    const age = Date.now() - this.builtAt;
    if (this.names && age < this.ttlMs) return this.names;
    if (this.remoteWalk && !this.building) {
      // another worker is walking: its result is this one's too
      await this.remoteWalk.done;
      if (this.names && Date.now() - this.builtAt < this.ttlMs) return this.names;
    }
    const walking = this.rewalk();
    if (this.names && age < 2 * this.ttlMs) {
      walking.catch(() => undefined); // its failure is the next caller's, once the copy is too old
      return this.names;
    }
    return walking;
  }

  private rewalk(): Promise<string[]> {
    if (this.building) return this.building;
    const startedAt = Date.now();
    this.share?.starting();
    this.building = this.walk().then((names) => {
      this.share?.publish(names, startedAt);
      this.applyChanges(names, startedAt);
      this.names = names;
      this.builtAt = Date.now();
      return names;
    }, (err: unknown) => {
      this.share?.publish(undefined, startedAt);
      throw err;
    }).finally(() => {
      this.building = undefined;
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
    this.logChange(name, true);
    if (this.names) insertSorted(this.names, name);
  }

  /** Drops a repository deleted here, so it leaves the catalog at once. */
  remove(name: string): void {
    this.logChange(name, false);
    if (this.names) removeName(this.names, name);
  }

  walk(): Promise<string[]> {
    if (this.source) return this.source.list();
    return walkRepositories(this.driver, '_manifests', { reuse: true });
  }
}

/** Where `name` is or would go in the sorted `names`. */
function position(names: string[], name: string): number {
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (names[mid]! < name) lo = mid + 1; else hi = mid;
  }
  return lo;
}

function removeName(names: string[], name: string): void {
  const at = position(names, name);
  if (names[at] === name) names.splice(at, 1);
}

function insertSorted(names: string[], name: string): void {
  const at = position(names, name);
  if (names[at] !== name) names.splice(at, 0, name);
}

/**
 * Walks `repositories/` for directories holding `marker` (`_manifests`: a repository with content).
 * `reuse` lets the driver skip what it can prove unchanged since its last such walk (the catalog);
 * collection walks without it.
 */
export async function walkRepositories(driver: StorageDriver, marker: string, options?: { reuse?: boolean }): Promise<string[]> {
  const root = paths.repositoriesRoot();
  if (driver.findFolders) return driver.findFolders(root, marker, options);
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
