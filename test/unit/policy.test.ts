// The policies block: every mistake stops startup naming the key; durations and sizes; how rules
// combine; the retention planner on given states and times (no waiting for days).
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { parsePolicyDuration, parseSize } from '../../src/policy/config.js';
import { planRepository, type RevisionState, type TagState } from '../../src/policy/retention.js';
import { PolicySet } from '../../src/policy/rules.js';

const DAY = 86_400_000;

function load(policies: unknown, env: NodeJS.ProcessEnv = {}) {
  return loadConfig({ env, overrides: { policies } });
}

describe('policies configuration', () => {
  it('reads the documented example', () => {
    const config = load({
      interval: '1h', dryrun: false,
      rules: [
        { repositories: ['team/**'], keep: { last: 10, within: '30d', matching: '^v[0-9]', protected: '^release-' },
          untagged: { olderthan: '7d' }, immutable: ['v*'], quota: { bytes: '10GiB', tags: 1000 } },
        { repositories: ['team'], quota: { repositories: 50 } },
      ],
    });
    const p = config.policies;
    assert.equal(p.intervalMs, 3_600_000);
    assert.equal(p.rules[0]!.keep!.withinMs, 30 * DAY);
    assert.equal(p.rules[0]!.untaggedMs, 7 * DAY);
    assert.equal(p.rules[0]!.quota.bytes, 10 * 2 ** 30);
    assert.equal(p.rules[1]!.quota.repositories, 50);
  });

  it('takes the rules from REGISTRY_POLICIES_RULES', () => {
    const config = loadConfig({ env: { REGISTRY_POLICIES_RULES: '[{"repositories": ["ci/**"], "keep": {"last": 20}}]' } });
    assert.equal(config.policies.rules[0]!.keep!.last, 20);
  });

  it('takes REGISTRY_POLICIES_INTERVAL and REGISTRY_POLICIES_DRYRUN', () => {
    const config = loadConfig({ env: { REGISTRY_POLICIES_INTERVAL: '30m', REGISTRY_POLICIES_DRYRUN: 'true' } });
    assert.equal(config.policies.intervalMs, 30 * 60_000);
    assert.equal(config.policies.dryRun, true);
    assert.deepEqual(config.policies.rules, []);
  });

  const MISTAKES: [unknown, RegExp][] = [
    [{ rules: [{ keep: { last: 1 } }] }, /policies\.rules\[0\]\.repositories must list glob patterns/],
    [{ rules: [{ repositories: ['a'], keep: { last: -1 } }] }, /policies\.rules\[0\]\.keep\.last is -1: use a whole number of at least 0/],
    [{ rules: [{ repositories: ['a'], keep: { within: '30x' } }] }, /policies\.rules\[0\]\.keep\.within is "30x": use a duration such as 30d/],
    [{ rules: [{ repositories: ['a'], keep: { matching: '^v[' } }] }, /policies\.rules\[0\]\.keep\.matching is not a valid regular expression/],
    [{ rules: [{ repositories: ['a'], keep: {} }] }, /policies\.rules\[0\]\.keep keeps nothing/],
    [{ rules: [{ repositories: ['a'], keep: { lats: 3 } }] }, /unknown configuration key policies\.rules\[0\]\.keep\.lats: remove it or use one of last, within/],
    [{ rules: [{ repositories: ['a'], untagged: { olderthan: 'soon' } }] }, /policies\.rules\[0\]\.untagged\.olderthan is "soon"/],
    [{ rules: [{ repositories: ['a'], quota: { bytes: '10 gigs' } }] }, /policies\.rules\[0\]\.quota\.bytes is "10 gigs": use a size such as 10GiB/],
    [{ rules: [{ repositories: ['a'], quota: { tags: 0 } }] }, /policies\.rules\[0\]\.quota\.tags is 0: use a whole number of at least 1/],
    [{ rules: [{ repositories: ['a'], immutable: [] }] }, /policies\.rules\[0\]\.immutable must list glob patterns, e.g. \["v\*"\]/],
    [{ rules: [{ repositories: ['a'] }] }, /policies\.rules\[0\] does nothing/],
    [{ rules: [{ repositories: ['a'], retain: 3 }] }, /unknown configuration key policies\.rules\[0\]\.retain/],
    [{ interval: 'hourly' }, /policies\.interval is "hourly"/],
    [{ rules: 'none' }, /policies\.rules/],
    [{ cadence: '1h' }, /unknown configuration key policies\.cadence/],
  ];
  for (const [policies, message] of MISTAKES) {
    it(`refuses ${JSON.stringify(policies)}`, () => {
      assert.throws(() => load(policies), (err: unknown) => err instanceof ConfigError && message.test(err.message));
    });
  }

  it('parses durations and sizes', () => {
    assert.equal(parsePolicyDuration('1w2d'), 9 * DAY);
    assert.equal(parsePolicyDuration('90m'), 90 * 60_000);
    assert.equal(parsePolicyDuration('0'), 0);
    assert.equal(parsePolicyDuration('3 days'), undefined);
    assert.equal(parseSize('500MB'), 500e6);
    assert.equal(parseSize('1.5KiB'), 1536);
    assert.equal(parseSize(4096), 4096);
    assert.equal(parseSize('lots'), undefined);
  });

  it('combines rules: immutable patterns add up, the smallest limit holds, keeps are a union', () => {
    const set = new PolicySet(load({ rules: [
      { repositories: ['team/**'], immutable: ['v*'], quota: { bytes: '1MiB', tags: 10 }, keep: { last: 3, matching: '^v' }, untagged: { olderthan: '7d' } },
      { repositories: ['team/app'], immutable: ['release-*'], quota: { tags: 5 }, keep: { within: '30d', protected: '^release-' }, untagged: { olderthan: '14d' } },
      { repositories: ['team'], quota: { repositories: 2 } },
    ] }).policies);
    assert.deepEqual(set.immutable('team/app', 'v1'), { where: 'policies.rules[0].immutable', glob: 'v*' });
    assert.deepEqual(set.immutable('team/app', 'release-2'), { where: 'policies.rules[1].immutable', glob: 'release-*' });
    assert.equal(set.immutable('team/other', 'release-2'), undefined);
    assert.deepEqual(set.limit('team/app', 'tags'), { limit: 5, where: 'policies.rules[1].quota.tags' });
    assert.deepEqual(set.namespacesOf('team/app').map((n) => n.namespace), ['team']);
    assert.deepEqual(set.view('team/app', (kind, scope) => (kind === 'repositories' ? scope.length : 1)), {
      immutable: ['v*', 'release-*'],
      quota: { bytes: { limit: 2 ** 20, used: 1 }, tags: { limit: 5, used: 1 }, repositories: { limit: 2, used: 4 } },
      retention: { last: 3, within: '30d', matching: '^v', protected: '^release-', untagged: '14d' },
    });
    assert.deepEqual(set.view('team', () => 0), undefined, 'a namespace limit shows on the repositories under it');
    assert.equal(set.view('elsewhere', () => 0), undefined);
  });
});

describe('retention planner', () => {
  const now = Date.UTC(2026, 0, 31);
  const tag = (name: string, daysAgo: number, digest = name, pulledDaysAgo?: number): TagState =>
    ({ tag: name, digest, pushedAt: now - daysAgo * DAY, pulledAt: pulledDaysAgo === undefined ? undefined : now - pulledDaysAgo * DAY });
  const rev = (digest: string, daysAgo: number, extra: Partial<RevisionState> = {}): RevisionState =>
    ({ digest, writtenAt: now - daysAgo * DAY, children: [], ...extra });
  const plan = (tags: TagState[], keeps: object[], revisions?: RevisionState[], untaggedDays?: number, immutable: string[] = []) =>
    planRepository(tags, revisions, {
      keeps: keeps.map((k) => load({ rules: [{ repositories: ['r'], keep: k }] }).policies.rules[0]!.keep!),
      untaggedMs: untaggedDays === undefined ? undefined : untaggedDays * DAY, immutable: (t) => immutable.includes(t), now,
    });
  const removed = (p: ReturnType<typeof plan>) => p.tags.map((t) => t.tag).sort();

  it('keeps the last N pushed; protected and immutable tags take no place among them', () => {
    const tags = [tag('a', 5), tag('b', 4), tag('c', 3), tag('release-1', 1), tag('d', 2), tag('pinned', 0)];
    assert.deepEqual(removed(plan(tags, [{ last: 2, protected: '^release-' }], undefined, undefined, ['pinned'])), ['a', 'b']);
    assert.deepEqual(removed(plan(tags, [{ last: 0, protected: '^release-' }])), ['a', 'b', 'c', 'd', 'pinned']);
  });

  it('keeps tags pushed or pulled within the duration', () => {
    const tags = [tag('old', 60), tag('pulled', 60, 'pulled', 2), tag('new', 1)];
    assert.deepEqual(removed(plan(tags, [{ within: '30d' }])), ['old']);
  });

  it('keeps tags matching a pattern; several rules keep the union', () => {
    const tags = [tag('v1', 90), tag('dev-1', 90), tag('dev-2', 1), tag('x', 50)];
    assert.deepEqual(removed(plan(tags, [{ matching: '^v' }])), ['dev-1', 'dev-2', 'x']);
    assert.deepEqual(removed(plan(tags, [{ matching: '^v' }, { last: 1 }, { within: '60d' }])), ['dev-1']);
  });

  it('removes manifests only removed tags reached, with their index children and referrers', () => {
    const tags = [tag('old', 90, 'idx'), tag('new', 1, 'm3')];
    const revisions = [rev('idx', 90, { children: ['m1', 'm2'] }), rev('m1', 90), rev('m2', 90), rev('sig', 90, { subject: 'idx' }),
      rev('m3', 1), rev('shared', 90)];
    const p = plan(tags, [{ last: 1 }], revisions);
    assert.deepEqual(removed(p), ['old']);
    assert.deepEqual(p.manifests.map((m) => `${m.digest}:${m.reason}`).sort(), ['idx:tag removed', 'm1:tag removed', 'm2:tag removed', 'sig:tag removed']);
  });

  it('removes untagged manifests older than the age, never a child of a kept index or an unreadable one', () => {
    const tags = [tag('latest', 100, 'idx')];
    const revisions = [rev('idx', 100, { children: ['child'] }), rev('child', 100), rev('stale', 10), rev('fresh', 3),
      rev('junk', 100, { unreadable: true, children: ['kept-by-junk'] }), rev('kept-by-junk', 100)];
    const p = plan(tags, [], revisions, 7);
    assert.deepEqual(p.tags, []);
    assert.deepEqual(p.manifests, [{ digest: 'stale', reason: 'untagged' }]);
  });
});
