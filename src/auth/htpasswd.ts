// htpasswd users (bcrypt, as `htpasswd -B` writes them), re-read when the file changes.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import bcrypt from 'bcryptjs';

const RECHECK_MS = 1000;
const VERIFIED_TTL_MS = 5 * 60_000;

export class HtpasswdFile {
  private users = new Map<string, string>();
  private loadedMtime = -1;
  private loadedSize = -1;
  private checkedAt = 0;
  /** bcrypt costs tens of milliseconds: remember recent successful checks (by a hash of the pair). */
  private readonly verified = new Map<string, number>();

  constructor(readonly path: string, private readonly onReload?: (users: number) => void) {
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
    this.loadedMtime = st.mtimeMs;
    this.loadedSize = st.size;
    this.verified.clear();
    this.onReload?.(users.size);
  }

  async verify(user: string, password: string): Promise<boolean> {
    this.reloadIfChanged();
    const hash = this.users.get(user);
    if (!hash || !/^\$2[abxy]\$/.test(hash)) {
      await bcrypt.compare(password, '$2b$10$invalidinvalidinvalidinvalidinvalidinvalidinvalidinva'); // same cost either way
      return false;
    }
    const key = createHash('sha256').update(`${user}\0${password}\0${hash}`).digest('base64');
    const until = this.verified.get(key);
    if (until && until > Date.now()) return true;
    const ok = await bcrypt.compare(password, hash.replace(/^\$2y\$/, '$2b$'));
    if (ok) {
      if (this.verified.size > 10_000) this.verified.clear();
      this.verified.set(key, Date.now() + VERIFIED_TTL_MS);
    }
    return ok;
  }
}

/** Slows down repeated failures from one address: 0 s for the first three, then doubling to 5 s. */
export class FailureThrottle {
  private readonly failures = new Map<string, { count: number; last: number }>();

  delayFor(key: string): number {
    const entry = this.failures.get(key);
    if (!entry || Date.now() - entry.last > 15 * 60_000) return 0;
    return entry.count < 3 ? 0 : Math.min(5000, 250 * 2 ** (entry.count - 3));
  }

  fail(key: string): void {
    const entry = this.failures.get(key);
    if (this.failures.size > 50_000) this.failures.clear();
    this.failures.set(key, { count: (entry?.count ?? 0) + 1, last: Date.now() });
  }

  succeed(key: string): void {
    this.failures.delete(key);
  }
}
