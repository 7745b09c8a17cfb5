// Who is calling and what they may do: identities, resource scopes, and the authorization
// policy (per-repository glob rules granting pull, push and delete to users, groups and
// anonymous callers).
import { ConfigError } from '../config/load.js';

export type Action = 'pull' | 'push' | 'delete';
export const ACTIONS: readonly Action[] = ['pull', 'push', 'delete'];

export interface Identity {
  /** Undefined for anonymous callers. */
  user?: string;
}

/** One resource and actions on it, as in the Docker token specification's scopes. */
export interface Scope {
  type: 'repository' | 'registry';
  name: string;
  actions: string[];
}

export function formatScope(scope: Scope): string {
  return `${scope.type}:${scope.name}:${scope.actions.join(',')}`;
}

/** Parses "repository:NAME:pull,push" (NAME may hold ':' only in a registry host, which we refuse). */
export function parseScope(text: string): Scope | undefined {
  const first = text.indexOf(':');
  const last = text.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const type = text.slice(0, first);
  if (type !== 'repository' && type !== 'registry') return undefined;
  return { type, name: text.slice(first + 1, last), actions: text.slice(last + 1).split(',').filter(Boolean) };
}

interface Rule {
  patterns: RegExp[];
  /** Whether one of its patterns is `**`: the rule covers every repository there is or will be. */
  everywhere: boolean;
  anonymous: Set<Action>;
  users: Map<string, Set<Action>>;
  groups: Map<string, Set<Action>>;
}

/** `*` matches within one path component, `**` across components. */
export function globToRegExp(glob: string): RegExp {
  const escaped = glob.split('**').map((part) => part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*'));
  return new RegExp(`^${escaped.join('.*')}$`);
}

function actions(value: unknown, where: string): Set<Action> {
  const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',').map((v) => v.trim()) : undefined;
  if (!list || list.some((a) => !ACTIONS.includes(a as Action))) {
    throw new ConfigError(`${where} must list actions among pull, push, delete (got ${JSON.stringify(value)})`);
  }
  return new Set(list as Action[]);
}

function actionMap(value: unknown, where: string): Map<string, Set<Action>> {
  if (value === undefined) return new Map();
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`${where} must map names to actions, e.g. {alice: [pull, push]}`);
  }
  return new Map(Object.entries(value).map(([name, list]) => [name, actions(list, `${where}.${name}`)]));
}

/**
 * The authorization policy. Without rules: authenticated callers may do everything, anonymous
 * callers nothing (registry:2's behaviour once authentication is on). With rules: a caller gets
 * the union of what every rule matching the repository grants them; no match, no access.
 */
export class AccessPolicy {
  private readonly rules: Rule[];
  private readonly groupsOf = new Map<string, string[]>();

  constructor(config: { groups: Record<string, unknown>; rules: Record<string, unknown>[] }) {
    for (const [group, members] of Object.entries(config.groups)) {
      if (!Array.isArray(members)) throw new ConfigError(`access.groups.${group} must be a list of user names`);
      for (const user of members.map(String)) this.groupsOf.set(user, [...(this.groupsOf.get(user) ?? []), group]);
    }
    this.rules = config.rules.map((rule, i) => {
      const where = `access.rules[${i}]`;
      for (const key of Object.keys(rule)) {
        if (!['repositories', 'anonymous', 'users', 'groups'].includes(key)) {
          throw new ConfigError(`unknown key ${where}.${key}: use repositories, anonymous, users or groups`);
        }
      }
      const repositories = Array.isArray(rule.repositories) ? rule.repositories.map(String)
        : typeof rule.repositories === 'string' ? [rule.repositories] : undefined;
      if (!repositories || repositories.length === 0) throw new ConfigError(`${where}.repositories must list glob patterns, e.g. ["team/*"]`);
      return {
        patterns: repositories.map(globToRegExp),
        everywhere: repositories.includes('**'),
        anonymous: rule.anonymous === undefined ? new Set() : actions(rule.anonymous, `${where}.anonymous`),
        users: actionMap(rule.users, `${where}.users`),
        groups: actionMap(rule.groups, `${where}.groups`),
      };
    });
  }

  get hasRules(): boolean {
    return this.rules.length > 0;
  }

  /** Whether anonymous callers can do anything at all (then /v2/ answers them). */
  get allowsAnonymous(): boolean {
    return this.rules.some((r) => r.anonymous.size > 0);
  }

  allowed(identity: Identity, repository: string): Set<Action> {
    return this.granted(identity, (rule) => rule.patterns.some((p) => p.test(repository)));
  }

  /** What the caller may do on every repository (rules for `**`): registry-wide operations need it. */
  allowedEverywhere(identity: Identity): Set<Action> {
    return this.granted(identity, (rule) => rule.everywhere);
  }

  private granted(identity: Identity, applies: (rule: Rule) => boolean): Set<Action> {
    if (!this.hasRules) return identity.user ? new Set(ACTIONS) : new Set();
    const granted = new Set<Action>();
    const groups = identity.user ? this.groupsOf.get(identity.user) ?? [] : [];
    for (const rule of this.rules) {
      if (!applies(rule)) continue;
      const add = (set?: Set<Action>) => set?.forEach((a) => granted.add(a));
      add(rule.anonymous);
      if (identity.user) {
        add(rule.users.get('*'));
        add(rule.users.get(identity.user));
        for (const g of groups) add(rule.groups.get(g));
      }
    }
    return granted;
  }

  /** What of `scope` to grant: the intersection of what is asked and what is allowed. */
  grant(identity: Identity, scope: Scope): string[] {
    if (scope.type === 'registry') {
      return scope.name === 'catalog' && scope.actions.includes('*') && (identity.user || this.allowsAnonymous) ? ['*'] : [];
    }
    const allowed = this.allowed(identity, scope.name);
    return scope.actions.filter((a) => allowed.has(a as Action));
  }
}
