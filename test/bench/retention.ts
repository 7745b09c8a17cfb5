// How long retention takes to evaluate REPOS repositories of TAGS tags each (default 10,000 x 50).
// The storage is written directly in registry:2's layout on the filesystem (as a registry that
// ran for months would have left it: every tag pushed on its own day, 50 manifests shared by
// every repository, as with a common base image), then the real retention code runs over it
// through the filesystem driver: a dry run (cold: every manifest read once), a second dry run
// (warm), and the planner alone over the same states in memory.
//
//   npm run build && node dist/test/bench/retention.js [REPOS] [TAGS]
import { createHash } from 'node:crypto';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { LinkMetadataStore } from '../../src/registry/link-store.js';
import { PullRecorder } from '../../src/policy/pulls.js';
import { planRepository, Retention, type TagState } from '../../src/policy/retention.js';
import { PolicySet } from '../../src/policy/rules.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { tempDir } from '../helpers/registry.js';

const REPOS = Number(process.argv[2] ?? 10_000);
const TAGS = Number(process.argv[3] ?? 50);
const DAY = 86_400_000;
const root = tempDir('bench-retention-');
const v2 = join(root, 'docker/registry/v2');
const now = Date.now();

function write(path: string, content: string | Buffer, mtime?: number): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
  if (mtime !== undefined) utimesSync(path, new Date(mtime), new Date(mtime));
}

// ---- the storage: TAGS manifests shared by every repository, tag i pushed i days ago
const started = process.hrtime.bigint();
const manifests: string[] = [];
for (let i = 0; i < TAGS; i++) {
  const content = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 2 },
    layers: [], annotations: { build: String(i) },
  }));
  const hex = createHash('sha256').update(content).digest('hex');
  write(join(v2, 'blobs/sha256', hex.slice(0, 2), hex, 'data'), content);
  manifests.push(hex);
}
const tagName = (i: number) => (i % 10 === 0 ? `v1.${i}` : i % 7 === 0 ? `release-${i}` : `build-${i}`);
for (let r = 0; r < REPOS; r++) {
  const repo = join(v2, 'repositories', `team${r % 100}`, `app${r}`, '_manifests');
  for (let i = 0; i < TAGS; i++) {
    const hex = manifests[i]!;
    const at = now - i * DAY;
    write(join(repo, 'revisions/sha256', hex, 'link'), `sha256:${hex}`, at);
    write(join(repo, 'tags', tagName(i), 'index/sha256', hex, 'link'), `sha256:${hex}`);
    write(join(repo, 'tags', tagName(i), 'current/link'), `sha256:${hex}`, at);
  }
  if (r % 1000 === 999) process.stderr.write(`wrote ${r + 1} repositories\n`);
}
const setupSeconds = Number(process.hrtime.bigint() - started) / 1e9;

// ---- the rules of the documented example
const config = loadConfig({ env: {}, overrides: { policies: { interval: '0', rules: [
  { repositories: ['team*/**'], keep: { last: 10, within: '30d', matching: '^v[0-9]', protected: '^release-' }, untagged: { olderthan: '7d' } },
] } } });
const policies = new PolicySet(config.policies);
const driver = new FilesystemDriver(root);
const retention = new Retention(new LinkMetadataStore(driver, 0), driver, policies, new PullRecorder(driver));

async function timed<T>(what: () => Promise<T>): Promise<[T, number]> {
  const t = process.hrtime.bigint();
  const value = await what();
  return [value, Number(process.hrtime.bigint() - t) / 1e9];
}

const [cold, coldSeconds] = await timed(() => retention.run({ dryRun: true }));
const [, warmSeconds] = await timed(() => retention.run({ dryRun: true }));

// ---- the planner alone, over the same states
const states: TagState[] = Array.from({ length: TAGS }, (_, i) => ({ tag: tagName(i), digest: `sha256:${manifests[i]}`, pushedAt: now - i * DAY }));
const revisions = states.map((t) => ({ digest: t.digest, writtenAt: t.pushedAt, children: [] }));
const rule = policies.retention('team0/app0')!;
const planStart = process.hrtime.bigint();
let planned = 0;
for (let r = 0; r < REPOS; r++) planned += planRepository(states, revisions, { ...rule, immutable: () => false, now }).tags.length;
const planSeconds = Number(process.hrtime.bigint() - planStart) / 1e9;

const rss = Math.round(process.memoryUsage().rss / 2 ** 20);
process.stdout.write(`${JSON.stringify({
  repositories: REPOS, tagsPerRepository: TAGS, setupSeconds: +setupSeconds.toFixed(1),
  dryRunCold: { seconds: +coldSeconds.toFixed(2), repositories: cold.repositories, tagsToRemove: cold.tagsRemoved, manifestsToRemove: cold.manifestsRemoved },
  dryRunWarmSeconds: +warmSeconds.toFixed(2),
  plannerOnly: { seconds: +planSeconds.toFixed(3), tagsToRemove: planned },
  rssMiB: rss,
}, null, 2)}\n`);
