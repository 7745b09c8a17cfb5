// The `policies:` block: retention, tag immutability and quotas per repository pattern, checked
// once at startup. A mistake stops startup with the key's path and what to write instead.
import { globToRegExp } from '../auth/access.js';
import { ConfigError } from '../config/load.js';

export interface KeepRule {
  /** Keep the N most recently pushed tags (tags kept as protected do not count). */
  last?: number;
  /** Keep tags pushed or pulled within this long (ms), shown as written. */
  withinMs?: number;
  within?: string;
  matching?: RegExp;
  protected?: RegExp;
}

export interface PolicyRule {
  /** Where the rule sits in the configuration, for messages: `policies.rules[0]`. */
  where: string;
  repositories: string[];
  patterns: RegExp[];
  keep?: KeepRule;
  /** Remove manifests no tag reaches once they are older than this (ms). */
  untaggedMs?: number;
  untagged?: string;
  /** Tag globs whose tags cannot be moved or deleted once pushed. */
  immutable: { glob: string; pattern: RegExp }[];
  quota: { bytes?: number; bytesText?: string; tags?: number; repositories?: number };
}

export interface PoliciesConfig {
  /** How often retention runs; 0: only on demand. */
  intervalMs: number;
  dryRun: boolean;
  rules: PolicyRule[];
}

export const NO_POLICIES: PoliciesConfig = { intervalMs: 0, dryRun: false, rules: [] };

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** `30d`, `12h`, `1w2d`, `90m`, `45s`; a bare 0 is zero. */
export function parsePolicyDuration(value: unknown): number | undefined {
  if (value === 0 || value === '0') return 0;
  if (typeof value !== 'string') return undefined;
  let total = 0;
  let consumed = 0;
  for (const match of value.matchAll(/(\d+(?:\.\d+)?)([smhdw])/g)) {
    if (match.index !== consumed) return undefined;
    total += Number(match[1]) * DURATION_UNITS[match[2]!]!;
    consumed += match[0].length;
  }
  return consumed > 0 && consumed === value.length ? total : undefined;
}

const SIZE_UNITS: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};

/** `10GiB`, `500MB`, `1.5TiB`, or a whole number of bytes. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  if (!match) return undefined;
  const unit = SIZE_UNITS[(match[2] || 'b').toLowerCase()];
  return unit === undefined ? undefined : Math.floor(Number(match[1]) * unit);
}

type Tree = Record<string, unknown>;

function mapping(value: unknown, where: string, keys: string[]): Tree {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${where} must be a mapping`);
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) throw new ConfigError(`unknown configuration key ${where}.${key}: remove it or use one of ${keys.join(', ')}`);
  }
  return value as Tree;
}

function stringList(value: unknown, where: string, example: string): string[] {
  const list = Array.isArray(value) ? value : typeof value === 'string' ? [value] : undefined;
  if (!list || list.length === 0 || list.some((v) => typeof v !== 'string' || v === '')) {
    throw new ConfigError(`${where} must list glob patterns, e.g. ${example}`);
  }
  return list as string[];
}

function count(value: unknown, where: string, min: number): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min) {
    throw new ConfigError(`${where} is ${JSON.stringify(value)}: use a whole number of at least ${min}`);
  }
  return n;
}

function duration(value: unknown, where: string): { ms: number; text: string } {
  const ms = parsePolicyDuration(value);
  if (ms === undefined || ms <= 0) throw new ConfigError(`${where} is ${JSON.stringify(value)}: use a duration such as 30d, 12h or 90m`);
  return { ms, text: String(value) };
}

function regex(value: unknown, where: string): RegExp {
  if (typeof value !== 'string' || value === '') throw new ConfigError(`${where} must be a regular expression, e.g. "^v[0-9]"`);
  try {
    return new RegExp(value);
  } catch (err) {
    throw new ConfigError(`${where} is not a valid regular expression: ${(err as Error).message}`);
  }
}

function keepRule(value: unknown, where: string): KeepRule {
  const t = mapping(value, where, ['last', 'within', 'matching', 'protected']);
  const keep: KeepRule = {};
  if (t.last !== undefined) keep.last = count(t.last, `${where}.last`, 0);
  if (t.within !== undefined) {
    const d = duration(t.within, `${where}.within`);
    keep.withinMs = d.ms;
    keep.within = d.text;
  }
  if (t.matching !== undefined) keep.matching = regex(t.matching, `${where}.matching`);
  if (t.protected !== undefined) keep.protected = regex(t.protected, `${where}.protected`);
  if (Object.keys(keep).length === 0) {
    throw new ConfigError(`${where} keeps nothing, so every tag would be removed: give at least one of last, within, matching, protected`);
  }
  return keep;
}

function rule(value: unknown, i: number): PolicyRule {
  const where = `policies.rules[${i}]`;
  const t = mapping(value, where, ['repositories', 'keep', 'untagged', 'immutable', 'quota']);
  const repositories = stringList(t.repositories, `${where}.repositories`, '["team/**"]');
  const out: PolicyRule = { where, repositories, patterns: repositories.map(globToRegExp), immutable: [], quota: {} };
  if (t.keep !== undefined && t.keep !== null) out.keep = keepRule(t.keep, `${where}.keep`);
  if (t.untagged !== undefined && t.untagged !== null) {
    const u = mapping(t.untagged, `${where}.untagged`, ['olderthan']);
    const d = duration(u.olderthan, `${where}.untagged.olderthan`);
    out.untaggedMs = d.ms;
    out.untagged = d.text;
  }
  if (t.immutable !== undefined && t.immutable !== null) {
    out.immutable = stringList(t.immutable, `${where}.immutable`, '["v*"]').map((glob) => ({ glob, pattern: globToRegExp(glob) }));
  }
  if (t.quota !== undefined && t.quota !== null) {
    const q = mapping(t.quota, `${where}.quota`, ['bytes', 'tags', 'repositories']);
    if (q.bytes !== undefined) {
      const bytes = parseSize(q.bytes);
      if (bytes === undefined || bytes <= 0) {
        throw new ConfigError(`${where}.quota.bytes is ${JSON.stringify(q.bytes)}: use a size such as 10GiB, 500MB or a number of bytes`);
      }
      out.quota.bytes = bytes;
      out.quota.bytesText = String(q.bytes);
    }
    if (q.tags !== undefined) out.quota.tags = count(q.tags, `${where}.quota.tags`, 1);
    if (q.repositories !== undefined) out.quota.repositories = count(q.repositories, `${where}.quota.repositories`, 1);
  }
  if (!out.keep && out.untaggedMs === undefined && out.immutable.length === 0 && Object.keys(out.quota).length === 0) {
    throw new ConfigError(`${where} does nothing: give it keep, untagged, immutable or quota`);
  }
  return out;
}

/** Checks the `policies` block (already past the schema's key check for interval and dryrun). */
export function parsePolicies(t: { interval?: unknown; dryrun?: unknown; rules?: unknown[] } | undefined): PoliciesConfig {
  if (!t) return NO_POLICIES;
  const interval = t.interval === undefined || t.interval === null ? '1h' : t.interval;
  const intervalMs = parsePolicyDuration(interval);
  if (intervalMs === undefined) {
    throw new ConfigError(`policies.interval is ${JSON.stringify(interval)}: use a duration such as 1h or 30m, or 0 to run only on demand`);
  }
  if (intervalMs > 0 && intervalMs < 10_000) throw new ConfigError(`policies.interval is ${JSON.stringify(interval)}: use at least 10s (or 0)`);
  return { intervalMs, dryRun: t.dryrun === true, rules: (t.rules ?? []).map(rule) };
}
