// Keyed reader/writer locks: the registry serialises operations on the same repository, tag,
// manifest or blob, and never anything else. An operation names every key it needs up front;
// they are taken in one global order (see `lockOrder`), so two operations can never wait on
// each other in a cycle. Locks guard metadata steps only (small link files), never a transfer
// of a blob's bytes, so no lock is held across unbounded I/O.

export type LockMode = 'shared' | 'exclusive';

export interface LockRequest {
  key: string;
  mode: LockMode;
}

/** Acquires several keyed locks for the duration of `work`. */
export interface Locker {
  withLocks<T>(requests: LockRequest[], work: () => Promise<T>): Promise<T>;
}

interface Waiter {
  mode: LockMode;
  grant: () => void;
}

interface KeyState {
  readers: number;
  writer: boolean;
  queue: Waiter[];
}

/** Keys: "repo:", "manifest:", "tag:", "layer:", "blob:"; earlier kinds are always taken first. */
const RANK: Record<string, number> = { repo: 0, manifest: 1, tag: 2, layer: 3, blob: 4 };

export function lockOrder(a: LockRequest, b: LockRequest): number {
  const ra = RANK[a.key.slice(0, a.key.indexOf(':'))] ?? 9;
  const rb = RANK[b.key.slice(0, b.key.indexOf(':'))] ?? 9;
  return ra - rb || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

/** Merges duplicate keys (exclusive wins) and sorts them into the global order. */
export function normaliseRequests(requests: LockRequest[]): LockRequest[] {
  const byKey = new Map<string, LockMode>();
  for (const { key, mode } of requests) {
    if (byKey.get(key) !== 'exclusive') byKey.set(key, mode);
  }
  return [...byKey].map(([key, mode]) => ({ key, mode })).sort(lockOrder);
}

/** Locks within one process (the filesystem and in-memory storage). Fair: FIFO per key. */
export class KeyedLocks implements Locker {
  private readonly keys = new Map<string, KeyState>();

  async withLocks<T>(requests: LockRequest[], work: () => Promise<T>): Promise<T> {
    const held: LockRequest[] = [];
    try {
      for (const request of normaliseRequests(requests)) {
        await this.acquire(request);
        held.push(request);
      }
      return await work();
    } finally {
      for (const request of held.reverse()) this.release(request);
    }
  }

  /** How many keys are locked or awaited now (for tests and metrics). */
  get size(): number {
    return this.keys.size;
  }

  private acquire({ key, mode }: LockRequest): Promise<void> {
    let state = this.keys.get(key);
    if (!state) this.keys.set(key, (state = { readers: 0, writer: false, queue: [] }));
    const free = mode === 'shared' ? !state.writer && state.queue.length === 0 : !state.writer && state.readers === 0;
    if (free) {
      if (mode === 'shared') state.readers++; else state.writer = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => state!.queue.push({ mode, grant: resolve }));
  }

  private release({ key, mode }: LockRequest): void {
    const state = this.keys.get(key)!;
    if (mode === 'shared') state.readers--; else state.writer = false;
    while (state.queue.length > 0 && !state.writer) {
      const next = state.queue[0]!;
      if (next.mode === 'exclusive') {
        if (state.readers > 0) break;
        state.queue.shift();
        state.writer = true;
        next.grant();
        break;
      }
      state.queue.shift();
      state.readers++;
      next.grant();
    }
    if (!state.writer && state.readers === 0 && state.queue.length === 0) this.keys.delete(key);
  }
}

export const lockKeys = {
  repository: (name: string) => `repo:${name}`,
  manifest: (name: string, digest: string) => `manifest:${name}@${digest}`,
  tag: (name: string, tag: string) => `tag:${name}:${tag}`,
  layer: (name: string, digest: string) => `layer:${name}@${digest}`,
  blob: (digest: string) => `blob:${digest}`,
};

export const shared = (key: string): LockRequest => ({ key, mode: 'shared' });
export const excl = (key: string): LockRequest => ({ key, mode: 'exclusive' });

/** What making content reachable from a repository locks (a blob commit or mount), in every store. */
export function linking(name: string, digest: { toString(): string }): LockRequest[] {
  const d = digest.toString();
  return [shared(lockKeys.repository(name)), excl(lockKeys.layer(name, d)), shared(lockKeys.blob(d))];
}
