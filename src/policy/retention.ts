// Retention: which tags and manifests the `policies` rules remove, planned per repository from
// what storage holds (a pure function of the repository's state, the rules and `now`), then
// applied through the metadata store, whose conditional removals keep anything pushed, moved or
// tagged since the plan. Removed content (blobs) is left to garbage collection.
//
// - A tag is kept when any rule keeps it (a union): it is immutable, matches a protected or
//   matching pattern, was pushed or pulled within `within`, or is among the `last` N most
//   recently pushed tags (protected and immutable tags do not take up those places). A repository
//   no `keep` rule matches keeps every tag.
// - A manifest is removed when only removed tags reached it (directly, as a child of an index, or
//   as a referrer of one), and when no tag reached it and it is older than `untagged.olderthan`.
import { mapBounded } from '../storage/many.js';
import type { MetadataStore } from '../registry/metadata.js';
import { parseDigest } from '../registry/names.js';
import { paths } from '../registry/paths.js';
import { readReport, SingleRun } from '../registry/single-run.js';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import type { KeepRule } from './config.js';
import type { PullRecorder } from './pulls.js';
import type { PolicySet } from './rules.js';

export interface TagState {
  tag: string;
  digest: string;
  pushedAt: number;
  pulledAt?: number;
}

export interface RevisionState {
  digest: string;
  /** When its revision link was last written (pushed, tagged, referenced by an index put). */
  writtenAt: number;
  children: string[];
  subject?: string;
  /** Cannot be parsed: kept, with every digest written in it. */
  unreadable?: boolean;
}

export interface RetentionInput {
  keeps: KeepRule[];
  untaggedMs?: number;
  immutable: (tag: string) => boolean;
  now: number;
}

export interface Plan {
  tags: TagState[];
  manifests: { digest: string; reason: 'untagged' | 'tag removed' }[];
}

/** The tags the rules keep: see the file's header. */
export function keptTags(tags: TagState[], input: RetentionInput): Set<string> {
  if (input.keeps.length === 0) return new Set(tags.map((t) => t.tag));
  const kept = new Set<string>();
  const protectedTag = (t: TagState) => input.immutable(t.tag) || input.keeps.some((k) => k.protected?.test(t.tag));
  for (const t of tags) if (protectedTag(t)) kept.add(t.tag);
  const byPush = tags.filter((t) => !kept.has(t.tag)).sort((a, b) => b.pushedAt - a.pushedAt || (a.tag < b.tag ? 1 : -1));
  const unprotected = [...byPush];
  for (const keep of input.keeps) {
    if (keep.last) for (const t of unprotected.slice(0, keep.last)) kept.add(t.tag);
    for (const t of unprotected) {
      if (keep.matching?.test(t.tag)) kept.add(t.tag);
      if (keep.withinMs !== undefined && Math.max(t.pushedAt, t.pulledAt ?? 0) >= input.now - keep.withinMs) kept.add(t.tag);
    }
  }
  return kept;
}

/** Every revision reached from `roots` through index children and referrers. */
function reach(roots: Iterable<string>, revisions: Map<string, RevisionState>): Set<string> {
  const reached = new Set<string>();
  const referrers = new Map<string, string[]>();
  for (const r of revisions.values()) {
    if (r.subject) referrers.set(r.subject, [...(referrers.get(r.subject) ?? []), r.digest]);
  }
  const queue = [...roots];
  while (queue.length > 0) {
    const digest = queue.pop()!;
    if (reached.has(digest)) continue;
    reached.add(digest);
    const rev = revisions.get(digest);
    if (rev) queue.push(...rev.children);
    queue.push(...(referrers.get(digest) ?? []));
  }
  return reached;
}

/** What retention removes from one repository. `revisions` is needed only when something may go. */
export function planRepository(tags: TagState[], revisions: RevisionState[] | undefined, input: RetentionInput): Plan {
  const kept = keptTags(tags, input);
  const plan: Plan = { tags: tags.filter((t) => !kept.has(t.tag)), manifests: [] };
  if (!revisions || (plan.tags.length === 0 && input.untaggedMs === undefined)) return plan;
  const byDigest = new Map(revisions.map((r) => [r.digest, r]));
  const unreadable = revisions.filter((r) => r.unreadable).map((r) => r.digest);
  const before = reach([...tags.map((t) => t.digest), ...unreadable], byDigest);
  const after = plan.tags.length === 0 ? before : reach([...tags.filter((t) => kept.has(t.tag)).map((t) => t.digest), ...unreadable], byDigest);
  for (const r of revisions) {
    if (after.has(r.digest)) continue;
    if (before.has(r.digest)) plan.manifests.push({ digest: r.digest, reason: 'tag removed' });
    else if (input.untaggedMs !== undefined && r.writtenAt < input.now - input.untaggedMs) plan.manifests.push({ digest: r.digest, reason: 'untagged' });
  }
  return plan;
}

// ------------------------------------------------------------------ running it

export interface RetentionReport {
  dryRun: boolean;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** The time the rules were evaluated against. */
  now: string;
  /** Repositories some retention rule applies to. */
  repositories: number;
  tagsRemoved: number;
  manifestsRemoved: number;
  /** The first REPORTED of each (all of them when `truncated` is false). */
  tags: { repository: string; tag: string; digest: string; pushedAt: string; pulledAt?: string }[];
  manifests: { repository: string; digest: string; reason: string }[];
  truncated: boolean;
  errors: { repository: string; message: string }[];
}

export interface RetentionHooks {
  onRemove?: (what: 'tag' | 'manifest', detail: Record<string, string>, dryRun: boolean) => void;
  onProgress?: (detail: Record<string, unknown>, message: string) => void;
}

const REPORT = '/berth/retention/last.json';
const REPORTED = 1000;
const PARALLEL = 8;
const MAX_CACHED_REFERENCES = 200_000;

export function lastRetentionReport(driver: StorageDriver): Promise<RetentionReport | undefined> {
  return readReport<RetentionReport>(driver, REPORT);
}

/** Runs retention one run at a time (a run asked with other settings waits for the current one); keeps the last report. */
export class Retention extends SingleRun<RetentionReport> {
  /** Parsed references of stored manifests by digest (content never changes). */
  private readonly references = new Map<string, Omit<RevisionState, 'digest' | 'writtenAt'>>();

  constructor(private readonly store: MetadataStore, private readonly driver: StorageDriver, readonly policies: PolicySet,
              private readonly pulls: PullRecorder | undefined, private readonly hooks: RetentionHooks = {}) {
    super();
  }

  /** The last report of this process, else the one in storage (a `berth retention` run, or another process). */
  async lastReport(): Promise<RetentionReport | undefined> {
    const stored = await lastRetentionReport(this.driver).catch(() => undefined);
    if (!this.last) return stored;
    return stored && stored.finishedAt > this.last.finishedAt ? stored : this.last;
  }

  run(options: { dryRun?: boolean; now?: number } = {}): Promise<RetentionReport> {
    return this.single(options.dryRun === undefined && options.now === undefined,
      () => this.execute(options.dryRun ?? this.policies.config.dryRun, options.now ?? Date.now()), () => this.run(options));
  }

  private async execute(dryRun: boolean, now: number): Promise<RetentionReport> {
    const started = Date.now();
    const report: RetentionReport = {
      dryRun, startedAt: new Date(started).toISOString(), finishedAt: '', durationMs: 0, now: new Date(now).toISOString(),
      repositories: 0, tagsRemoved: 0, manifestsRemoved: 0, tags: [], manifests: [], truncated: false, errors: [],
    };
    await this.pulls?.flush().catch(() => undefined);
    const names = (await this.store.repositories()).filter((name) => this.policies.retention(name));
    this.hooks.onProgress?.({ repositories: names.length, dryRun, now: report.now }, 'retention: evaluating');
    await mapBounded(names, async (name) => {
      try {
        await this.repository(name, dryRun, now, started, report);
      } catch (err) {
        report.errors.push({ repository: name, message: (err as Error).message });
      }
    }, PARALLEL);
    if (!dryRun) await this.pulls?.flush().catch(() => undefined);
    report.finishedAt = new Date().toISOString();
    report.durationMs = Date.now() - started;
    await this.driver.putContent(REPORT, JSON.stringify(report), { durable: false }).catch(() => undefined);
    return report;
  }

  private async repository(name: string, dryRun: boolean, now: number, started: number, report: RetentionReport): Promise<void> {
    const rules = this.policies.retention(name)!;
    report.repositories++;
    const tagNames = await this.store.tags(name).catch((err) => {
      if ((err as { code?: string }).code === 'NAME_UNKNOWN') return [] as string[];
      throw err;
    });
    const pulled = rules.keeps.some((k) => k.withinMs !== undefined) && this.pulls ? await this.pulls.pulls(name) : new Map<string, number>();
    const tags = (await mapBounded(tagNames, async (tag): Promise<TagState | undefined> => {
      const digest = await this.store.tag(name, tag);
      if (!digest) return undefined;
      const pushedAt = (await this.store.tagPushedAt(name, tag).catch(() => undefined)) ?? 0;
      return { tag, digest: digest.toString(), pushedAt, pulledAt: pulled.get(tag) };
    })).filter((t): t is TagState => t !== undefined);
    const input = { ...rules, immutable: (tag: string) => !!this.policies.immutable(name, tag), now };
    // revisions are read only when something may go
    const needRevisions = rules.untaggedMs !== undefined || keptTags(tags, input).size < tags.length;
    const revisions = needRevisions ? await this.revisions(name) : undefined;
    const plan = planRepository(tags, revisions, input);
    const removedTags: string[] = [];
    let changed = false;
    for (const t of plan.tags) {
      if (!dryRun && !(await this.store.deleteTag(name, t.tag, parseDigest(t.digest)))) { // moved or gone since
        changed = true;
        continue;
      }
      removedTags.push(t.tag);
      report.tagsRemoved++;
      const detail = { repository: name, tag: t.tag, digest: t.digest, pushedAt: new Date(t.pushedAt).toISOString(),
        ...(t.pulledAt ? { pulledAt: new Date(t.pulledAt).toISOString() } : {}) };
      if (report.tags.length < REPORTED) report.tags.push(detail); else report.truncated = true;
      this.hooks.onRemove?.('tag', detail, dryRun);
    }
    for (const m of plan.manifests) {
      // a tag changed under the plan: what it would orphan is looked at again next run
      if (changed && m.reason === 'tag removed') continue;
      // written before the plan (or before the untagged age): anything pushed or tagged since stays
      const writtenBefore = m.reason === 'untagged' ? Math.min(now - rules.untaggedMs!, started) : started;
      if (!dryRun && !(await this.store.sweepManifest(name, parseDigest(m.digest), writtenBefore))) continue;
      report.manifestsRemoved++;
      const detail = { repository: name, digest: m.digest, reason: m.reason };
      if (report.manifests.length < REPORTED) report.manifests.push(detail); else report.truncated = true;
      this.hooks.onRemove?.('manifest', detail, dryRun);
    }
    if (!dryRun) await this.pulls?.forget(name, removedTags);
  }

  private async revisions(name: string): Promise<RevisionState[]> {
    const found = await mapBounded(await this.store.revisions(name), async (digest): Promise<RevisionState | undefined> => {
      const key = digest.toString();
      const writtenAt = await this.store.revisionWrittenAt(name, digest).catch(() => undefined);
      if (writtenAt === undefined) return undefined;
      let refs = this.references.get(key);
      if (!refs) {
        let content: Buffer;
        try {
          content = await this.driver.getContent(paths.blobData(digest));
        } catch (err) {
          if (isNotFound(err)) return undefined;
          throw err;
        }
        refs = referencesOf(content);
        if (this.references.size >= MAX_CACHED_REFERENCES) this.references.delete(this.references.keys().next().value!);
        this.references.set(key, refs);
      }
      return { digest: key, writtenAt, ...refs };
    });
    return found.filter((r): r is RevisionState => r !== undefined);
  }
}

const DIGEST_TEXT = /\b(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})\b/g;

/** Index children and subject of a stored manifest, read leniently. */
function referencesOf(content: Buffer): Omit<RevisionState, 'digest' | 'writtenAt'> {
  try {
    const doc = JSON.parse(content.toString('utf8')) as { manifests?: { digest?: unknown }[]; subject?: { digest?: unknown } };
    if (typeof doc !== 'object' || doc === null) throw new Error('not an object');
    const children = Array.isArray(doc.manifests) ? doc.manifests.map((m) => m?.digest).filter((d): d is string => typeof d === 'string') : [];
    const subject = typeof doc.subject?.digest === 'string' ? doc.subject.digest : undefined;
    return { children, subject };
  } catch {
    return { children: [...new Set(content.toString('utf8').match(DIGEST_TEXT) ?? [])], unreadable: true };
  }
}
