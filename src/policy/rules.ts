// Which policies apply to a repository: every rule whose pattern matches it. Immutable tag
// patterns add up; of several limits of one kind the smallest holds; retention keeps the union
// of what each rule keeps (so of several `untagged` ages the longest holds).
import type { KeepRule, PoliciesConfig, PolicyRule } from './config.js';

export type QuotaKind = 'bytes' | 'tags' | 'repositories';

export interface Limit {
  limit: number;
  /** The rule that sets it, for messages. */
  where: string;
}

/** The `policies` field of GET /api/v1/repositories/<name>; any part absent when it does not apply. */
export interface PolicyView {
  immutable?: string[];
  quota?: Partial<Record<QuotaKind, { limit: number; used: number }>>;
  retention?: { last?: number; within?: string; matching?: string; protected?: string; untagged?: string };
}

export class PolicySet {
  readonly rules: PolicyRule[];

  constructor(readonly config: PoliciesConfig) {
    this.rules = config.rules;
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** Whether any rule removes tags or manifests (then retention has work to do). */
  get hasRetention(): boolean {
    return this.rules.some((r) => r.keep || r.untaggedMs !== undefined);
  }

  get hasQuotas(): boolean {
    return this.rules.some((r) => Object.keys(r.quota).length > 0);
  }

  /** Whether pull times matter: some rule keeps tags pulled within a duration. */
  get needsPullTimes(): boolean {
    return this.rules.some((r) => r.keep?.withinMs !== undefined);
  }

  matching(name: string): PolicyRule[] {
    return this.rules.filter((r) => r.patterns.some((p) => p.test(name)));
  }

  /** The rule and glob that make `tag` of `name` immutable, if any. */
  immutable(name: string, tag: string): { where: string; glob: string } | undefined {
    for (const rule of this.matching(name)) {
      const hit = rule.immutable.find((i) => i.pattern.test(tag));
      if (hit) return { where: `${rule.where}.immutable`, glob: hit.glob };
    }
    return undefined;
  }

  /** The smallest limit of `kind` the rules matching `name` set. */
  limit(name: string, kind: QuotaKind): Limit | undefined {
    let found: Limit | undefined;
    for (const rule of this.matching(name)) {
      const limit = rule.quota[kind];
      if (limit !== undefined && (!found || limit < found.limit)) found = { limit, where: `${rule.where}.quota.${kind}` };
    }
    return found;
  }

  /** Keep rules and the untagged age that apply to `name`; undefined when retention leaves it alone. */
  retention(name: string): { keeps: KeepRule[]; untaggedMs?: number } | undefined {
    const rules = this.matching(name);
    const keeps = rules.flatMap((r) => (r.keep ? [r.keep] : []));
    const ages = rules.flatMap((r) => (r.untaggedMs !== undefined ? [r.untaggedMs] : []));
    if (keeps.length === 0 && ages.length === 0) return undefined;
    return { keeps, untaggedMs: ages.length > 0 ? Math.max(...ages) : undefined };
  }

  /** Namespaces `name` lies under that have a repository-count limit (e.g. `team` for `team/app`). */
  namespacesOf(name: string): { namespace: string; limit: Limit }[] {
    const parts = name.split('/');
    const found: { namespace: string; limit: Limit }[] = [];
    for (let i = 1; i < parts.length; i++) {
      const namespace = parts.slice(0, i).join('/');
      const limit = this.limit(namespace, 'repositories');
      if (limit) found.push({ namespace, limit });
    }
    return found;
  }

  /**
   * What applies to `name`, for the management API (usage filled in by the caller, for the
   * repository or, for `repositories`, the namespace it lies under with the smallest limit).
   */
  view(name: string, used: (kind: QuotaKind, scope: string) => number): PolicyView | undefined {
    const rules = this.matching(name);
    const namespace = this.namespacesOf(name).sort((a, b) => a.limit.limit - b.limit.limit)[0];
    if (rules.length === 0 && !namespace) return undefined;
    const view: PolicyView = {};
    const immutable = [...new Set(rules.flatMap((r) => r.immutable.map((i) => i.glob)))];
    if (immutable.length > 0) view.immutable = immutable;
    const quota: PolicyView['quota'] = {};
    for (const kind of ['bytes', 'tags'] as const) {
      const limit = this.limit(name, kind);
      if (limit) quota[kind] = { limit: limit.limit, used: used(kind, name) };
    }
    if (namespace) quota.repositories = { limit: namespace.limit.limit, used: used('repositories', namespace.namespace) };
    if (Object.keys(quota).length > 0) view.quota = quota;
    const keeps = rules.flatMap((r) => (r.keep ? [r.keep] : []));
    const untagged = rules.filter((r) => r.untaggedMs !== undefined).sort((a, b) => b.untaggedMs! - a.untaggedMs!)[0];
    if (keeps.length > 0 || untagged) {
      const retention: NonNullable<PolicyView['retention']> = {};
      const lasts = keeps.flatMap((k) => (k.last !== undefined ? [k.last] : []));
      if (lasts.length > 0) retention.last = Math.max(...lasts);
      const within = keeps.filter((k) => k.withinMs !== undefined).sort((a, b) => b.withinMs! - a.withinMs!)[0];
      if (within) retention.within = within.within;
      const union = (list: (RegExp | undefined)[]) => {
        const sources = [...new Set(list.filter((r): r is RegExp => !!r).map((r) => r.source))];
        return sources.length === 0 ? undefined : sources.length === 1 ? sources[0] : sources.map((s) => `(?:${s})`).join('|');
      };
      const matching = union(keeps.map((k) => k.matching));
      if (matching) retention.matching = matching;
      const prot = union(keeps.map((k) => k.protected));
      if (prot) retention.protected = prot;
      if (untagged) retention.untagged = untagged.untagged;
      view.retention = retention;
    }
    return Object.keys(view).length > 0 ? view : undefined;
  }
}
