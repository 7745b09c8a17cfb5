// htpasswd users (bcrypt, as `htpasswd -B` writes them), re-read when the file changes, and the
// throttle that slows down password guessing.
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { PasswordChecker } from './password-pool.js';

const RECHECK_MS = 1000;
const VERIFIED_TTL_MS = 2 * 60_000;
const MAX_VERIFIED = 10_000;
const BCRYPT = /^\$2[abxy]\$(\d\d)\$/;

let shared: PasswordChecker | undefined;

/** The pool used when none is given (one per process). */
export function sharedPasswordChecker(): PasswordChecker {
  return (shared ??= new PasswordChecker());
}

export class HtpasswdFile {
  private users = new Map<string, string>();
  /** Checked when a user is unknown: a hash of the cost most users have, so both take as long. */
  private dummyHash = dummyHashOfCost(10);
  private loadedMtime = -1;
  private loadedSize = -1;
  private checkedAt = 0;
  /** Successful checks of the last minutes, by a keyed hash of user, password and stored hash:
   *  a client sends its credentials with every request, and each bcrypt costs milliseconds. */
  private readonly verified = new Map<string, number>();
  private readonly cacheKey = randomBytes(32);

  constructor(readonly path: string, private readonly onReload?: (users: number) => void,
              private readonly checker: PasswordChecker = sharedPasswordChecker()) {
    this.reloadIfChanged(true);
  }

  private reloadIfChanged(force = false): void {
    const now = Date.now();
    if (!force && now - this.checkedAt < RECHECK_MS) return;
    this.checkedAt = now;
    let st;
    try {
      st = statSync(this.path);
    } catch (err) {
      if (force) throw new Error(`cannot read htpasswd file ${this.path}: ${(err as Error).message}`);
      return; // keep the last good copy while the file is being replaced
    }
    if (!force && st.mtimeMs === this.loadedMtime && st.size === this.loadedSize) return;
    const users = new Map<string, string>();
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      const trimmed = line.trim();
      if (!trimmed || trimmed.startsWith('#')) continue;
      const colon = trimmed.indexOf(':');
      if (colon > 0) users.set(trimmed.slice(0, colon), trimmed.slice(colon + 1));
    }
    this.users = users;
    this.dummyHash = dummyHashOfCost(commonCost(users.values()));
    this.loadedMtime = st.mtimeMs;
    this.loadedSize = st.size;
    this.verified.clear();
    this.onReload?.(users.size);
  }

  /** Whether this user and password passed a check within the last minutes (no bcrypt). */
  recentlyVerified(user: string, password: string): boolean {
    this.reloadIfChanged();
    const hash = this.users.get(user);
    if (!hash) return false;
    const until = this.verified.get(this.keyOf(user, password, hash));
    return until !== undefined && until > Date.now();
  }

  /** Checks a password on the worker pool; PasswordChecksBusy when too many checks are waiting. */
  async verify(user: string, password: string): Promise<boolean> {
    if (this.recentlyVerified(user, password)) return true;
    const hash = this.users.get(user);
    if (!hash || !BCRYPT.test(hash)) {
      await this.checker.compare(password, this.dummyHash); // as long as a real check
      return false;
    }
    const ok = await this.checker.compare(password, hash.replace(/^\$2y\$/, '$2b$'));
    if (ok) {
      if (this.verified.size >= MAX_VERIFIED) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(this.keyOf(user, password, hash), Date.now() + VERIFIED_TTL_MS);
    }
    return ok;
  }

  private keyOf(user: string, password: string, hash: string): string {
    return createHmac('sha256', this.cacheKey).update(`${user}\0${password}\0${hash}`).digest('base64');
  }
}

/** The bcrypt cost most of the file's hashes use (`htpasswd -B` writes 5, bcrypt libraries 10). */
function commonCost(hashes: Iterable<string>): number {
  const counts = new Map<number, number>();
  for (const hash of hashes) {
    const cost = BCRYPT.exec(hash)?.[1];
    if (cost) counts.set(Number(cost), (counts.get(Number(cost)) ?? 0) + 1);
  }
  let best = 10;
  let seen = 0;
  for (const [cost, count] of counts) if (count > seen) [best, seen] = [cost, count];
  return best;
}

/** A well-formed bcrypt hash of the given cost that no password matches (the check still runs). */
function dummyHashOfCost(cost: number): string {
  return `$2b$${String(Math.min(31, Math.max(4, cost))).padStart(2, '0')}$invalidinvalidinvalidinvalidinvalidinvalidinvalidinva`;
}

interface Failures { count: number; last: number }

/** After this many failures on a key, each attempt waits: 0.25 s, doubling up to 5 s. */
const PER_USER_AND_ADDRESS = 3;
const PER_USER = 10;
const FORGET_MS = 15 * 60_000;
const MAX_KEYS = 50_000;

/**
 * Slows down password guessing. Failures are counted per user and per (user, address): one
 * address guessing one user is slowed after 3 failures, guesses at one user from anywhere after
 * 10. A success clears only the counters of the user who succeeded (a valid login of one's own
 * between guesses at another user resets nothing). An attempt counts as a failure from the
 * moment it starts, so guesses sent in parallel see each other.
 */
export class FailureThrottle {
  private readonly failures = new Map<string, Failures>();

  /** Starts an attempt: how long it must wait, and what to call with its outcome. */
  begin(user: string, address: string): { delayMs: number; settle(ok: boolean): void; cancel(): void } {
    const keys: [string, number][] = [[`u\0${user}`, PER_USER], [`ua\0${user}\0${address}`, PER_USER_AND_ADDRESS]];
    const delayMs = Math.max(...keys.map(([key, threshold]) => delay(this.current(key), threshold)));
    for (const [key] of keys) this.bump(key, 1);
    return {
      delayMs,
      settle: (ok) => { if (ok) for (const [key] of keys) this.failures.delete(key); },
      cancel: () => { for (const [key] of keys) this.bump(key, -1); },
    };
  }

  private current(key: string): number {
    const entry = this.failures.get(key);
    return entry && Date.now() - entry.last <= FORGET_MS ? entry.count : 0;
  }

  private bump(key: string, by: number): void {
    const count = Math.max(0, this.current(key) + by);
    this.failures.delete(key); // re-inserted last: the oldest entries are evicted first
    if (count > 0) this.failures.set(key, { count, last: Date.now() });
    if (this.failures.size > MAX_KEYS) this.failures.delete(this.failures.keys().next().value!);
  }
}

function delay(count: number, threshold: number): number {
  return count < threshold ? 0 : Math.min(5000, 250 * 2 ** (count - threshold));
}
