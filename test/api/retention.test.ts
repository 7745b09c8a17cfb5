// Retention against a real Berth: images pushed over the API (and an index with skopeo), ages set
// on the stored files as an older registry would have left them, the rules run through
// POST /api/v1/retention, and what they removed checked in tags/list, the report, the metrics,
// and after garbage collection in the blobs themselves.
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeHtpasswd } from '../helpers/pki.js';
import { CLI, IMAGE_TOOLS, needs, run, testImages, type TestImages } from '../helpers/clients.js';
import { pushImage, startRegistry, tempDir, type TestRegistry } from '../helpers/registry.js';
import type { RetentionReport } from '../../src/policy/retention.js';

const DAY = 86_400_000;
const V2 = 'docker/registry/v2/repositories';

/** Makes a tag look pushed `days` ago (the modification time of its current link, as registry:2 keeps it). */
function agePush(r: TestRegistry, name: string, tag: string, days: number): void {
  const at = new Date(Date.now() - days * DAY);
  utimesSync(join(r.root, V2, name, '_manifests/tags', tag, 'current/link'), at, at);
}

/** Makes a revision look written `days` ago. */
function ageRevision(r: TestRegistry, name: string, digest: string, days: number): void {
  const at = new Date(Date.now() - days * DAY);
  utimesSync(join(r.root, V2, name, '_manifests/revisions/sha256', digest.slice('sha256:'.length), 'link'), at, at);
}

async function tags(r: TestRegistry, name: string): Promise<string[]> {
  const res = await fetch(`${r.url}/v2/${name}/tags/list`);
  return ((await res.json()) as { tags: string[] }).tags ?? [];
}

async function retention(r: TestRegistry, dryRun = false): Promise<RetentionReport> {
  const res = await fetch(`${r.url}/api/v1/retention?wait=true${dryRun ? '&dryrun=true' : ''}`, { method: 'POST' });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as RetentionReport;
}

const removedTags = (report: RetentionReport, name: string) => report.tags.filter((t) => t.repository === name).map((t) => t.tag).sort();

describe('retention', () => {
  let r: TestRegistry;
  const skip = needs(...IMAGE_TOOLS);
  let images: TestImages | undefined;

  before(async () => {
    r = await startRegistry({
      overrides: {
        'storage.maintenance.gc.grace': '0s',
        policies: {
          interval: '0',
          rules: [
            { repositories: ['last/*'], keep: { last: 2 } },
            { repositories: ['within/*'], keep: { within: '30d' } },
            { repositories: ['match/*'], keep: { last: 1, matching: '^v[0-9]', protected: '^release-' } },
            { repositories: ['union/app'], keep: { last: 1 } },
            { repositories: ['union/*'], keep: { matching: '^keep-' } },
            { repositories: ['untagged/*'], untagged: { olderthan: '7d' } },
            { repositories: ['pinned/*'], keep: { last: 1 }, immutable: ['v*'] },
          ],
        },
      },
    });
    if (!skip) images = await testImages(join(tempDir('retention-images-'), 'img'));
  });
  after(async () => { await r?.close(); });

  it('keeps the last N pushed tags; a dry run reports the same and removes nothing', async () => {
    for (const [i, t] of ['t1', 't2', 't3', 't4', 't5'].entries()) {
      await pushImage(r.url, 'last/app', t, `last-${t}`);
      agePush(r, 'last/app', t, 10 - i); // t1 the oldest
    }
    const dry = await retention(r, true);
    assert.equal(dry.dryRun, true);
    assert.deepEqual(removedTags(dry, 'last/app'), ['t1', 't2', 't3']);
    assert.deepEqual(await tags(r, 'last/app'), ['t1', 't2', 't3', 't4', 't5'], 'a dry run removes nothing');
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    assert.match(metrics, /berth_retention_last_tags\{mode="dryrun"\} 3/);

    const report = await retention(r);
    assert.equal(report.dryRun, false);
    assert.deepEqual(removedTags(report, 'last/app'), ['t1', 't2', 't3']);
    assert.deepEqual(await tags(r, 'last/app'), ['t4', 't5']);
    const status = (await (await fetch(`${r.url}/api/v1/retention`)).json()) as { last: RetentionReport; running: boolean };
    assert.equal(status.running, false);
    assert.equal(status.last.finishedAt, report.finishedAt);
    assert.match(await (await fetch(`${r.url}/metrics`)).text(), /berth_retention_last_tags\{mode="applied"\} 3/);
  });

  it('keeps tags pushed or pulled within the duration (a pull counts without a write per pull)', async () => {
    for (const t of ['old', 'pulled', 'new']) await pushImage(r.url, 'within/app', t, `within-${t}`);
    agePush(r, 'within/app', 'old', 60);
    agePush(r, 'within/app', 'pulled', 60);
    const pull = await fetch(`${r.url}/v2/within/app/manifests/pulled`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(pull.status, 200);
    await pull.arrayBuffer();
    const report = await retention(r);
    assert.deepEqual(removedTags(report, 'within/app'), ['old']);
    assert.deepEqual(await tags(r, 'within/app'), ['new', 'pulled']);
    assert.ok(report.tags.find((t) => t.tag === 'old')?.pushedAt, 'the report says when the removed tag was pushed');
  });

  it('keeps matching and protected tags; protected ones take no place among the last N', async () => {
    const ages: Record<string, number> = { 'v1.0': 90, 'release-1': 80, 'dev-1': 70, 'dev-2': 1, 'dev-3': 50 };
    for (const [t, days] of Object.entries(ages)) {
      await pushImage(r.url, 'match/app', t, `match-${t}`);
      agePush(r, 'match/app', t, days);
    }
    const report = await retention(r);
    assert.deepEqual(removedTags(report, 'match/app'), ['dev-1', 'dev-3']);
    assert.deepEqual(await tags(r, 'match/app'), ['dev-2', 'release-1', 'v1.0']);
  });

  it('applies every matching rule as a union of keeps', async () => {
    const ages: Record<string, number> = { 'keep-a': 90, 'x-old': 60, 'x-new': 1 };
    for (const [t, days] of Object.entries(ages)) {
      await pushImage(r.url, 'union/app', t, `union-${t}`);
      agePush(r, 'union/app', t, days);
    }
    const report = await retention(r);
    assert.deepEqual(removedTags(report, 'union/app'), ['x-old']);
    assert.deepEqual(await tags(r, 'union/app'), ['keep-a', 'x-new']);
  });

  it('never removes an immutable tag', async () => {
    for (const [i, t] of ['v1', 'dev', 'v2', 'dev2'].entries()) {
      await pushImage(r.url, 'pinned/app', t, `pinned-${t}`);
      agePush(r, 'pinned/app', t, 30 - i);
    }
    await retention(r);
    assert.deepEqual(await tags(r, 'pinned/app'), ['dev2', 'v1', 'v2'], 'v1 and v2 are immutable, dev2 is the last pushed');
  });

  it('removes untagged manifests older than the age, and keeps the platform manifests of a tagged index', { skip }, async () => {
    const old = await pushImage(r.url, 'untagged/app', 'tmp', 'untagged-old');
    const fresh = await pushImage(r.url, 'untagged/app', 'tmp2', 'untagged-fresh');
    for (const t of ['tmp', 'tmp2']) assert.equal((await fetch(`${r.url}/v2/untagged/app/manifests/${t}`, { method: 'DELETE' })).status, 202);
    ageRevision(r, 'untagged/app', old.digest, 10);
    ageRevision(r, 'untagged/app', fresh.digest, 3);
    const host = new URL(r.url).host;
    await run('skopeo', ['copy', '--quiet', '--all', '--preserve-digests', '--dest-tls-verify=false',
      `oci:${images!.dir}/oci/multi:latest`, `docker://${host}/untagged/app:multi`]);
    for (const d of [images!.digests['multi:latest']!, images!.digests['multi@amd64']!, images!.digests['multi@arm64']!]) {
      ageRevision(r, 'untagged/app', d, 30);
    }
    const report = await retention(r);
    assert.deepEqual(report.manifests.filter((m) => m.repository === 'untagged/app'),
      [{ repository: 'untagged/app', digest: old.digest, reason: 'untagged' }]);
    const status = async (d: string) => (await fetch(`${r.url}/v2/untagged/app/manifests/${d}`, { method: 'HEAD',
      headers: { Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' } })).status;
    assert.equal(await status(old.digest), 404);
    assert.equal(await status(fresh.digest), 200);
    assert.equal(await status(images!.digests['multi@arm64']!), 200, 'a child of a tagged index stays');
    await run('skopeo', ['inspect', '--tls-verify=false', '--override-arch', 'arm64', `docker://${host}/untagged/app:multi`]);
  });

  it('leaves the content of removed tags to garbage collection, which frees it', async () => {
    const gone = await pushImage(r.url, 'last/gc', 'a', 'gc-unique-a');
    agePush(r, 'last/gc', 'a', 9);
    await pushImage(r.url, 'last/gc', 'b', 'gc-b');
    agePush(r, 'last/gc', 'b', 8);
    await pushImage(r.url, 'last/gc', 'c', 'gc-c');
    const report = await retention(r);
    assert.deepEqual(removedTags(report, 'last/gc'), ['a']);
    assert.ok(report.manifests.some((m) => m.digest === gone.digest && m.reason === 'tag removed'));
    const layer = gone.layers[0]!;
    assert.equal((await fetch(`${r.url}/v2/last/gc/blobs/${layer}`, { method: 'HEAD' })).status, 200, 'blobs wait for collection');
    // uses recorded by the pushes a moment ago are older than a grace of 0 once the clock moves on
    await new Promise((res) => setTimeout(res, 20));
    const gc = (await (await fetch(`${r.url}/api/v1/gc?wait=true`, { method: 'POST' })).json()) as { blobsDeleted: number };
    assert.ok(gc.blobsDeleted >= 2, JSON.stringify(gc));
    assert.equal((await fetch(`${r.url}/v2/last/gc/blobs/${layer}`, { method: 'HEAD' })).status, 404);
    assert.deepEqual(await tags(r, 'last/gc'), ['b', 'c']);
  });

  it('answers 409 naming the fix where no retention rule is configured', async () => {
    const bare = await startRegistry();
    try {
      const res = await fetch(`${bare.url}/api/v1/retention`, { method: 'POST' });
      assert.equal(res.status, 409);
      assert.match(((await res.json()) as { errors: { message: string }[] }).errors[0]!.message, /policies\.rules with keep or untagged/);
      assert.deepEqual(((await (await fetch(`${bare.url}/api/v1/retention`)).json()) as { last: unknown }).last, null);
    } finally {
      await bare.close();
    }
  });
});

describe('pull times', () => {
  it('are written when the registry stops and count after a restart', async () => {
    const root = tempDir('retention-pulls-');
    const overrides = { policies: { interval: '0', rules: [{ repositories: ['**'], keep: { within: '30d' } }] } };
    const first = await startRegistry({ root, overrides });
    for (const t of ['pulled', 'idle']) {
      await pushImage(first.url, 'pulls/app', t, `pulls-${t}`);
      agePush(first, 'pulls/app', t, 45);
    }
    assert.equal((await fetch(`${first.url}/v2/pulls/app/manifests/pulled`, { method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } })).status, 200);
    await first.close();
    const second = await startRegistry({ root, overrides });
    try {
      const report = await retention(second);
      assert.deepEqual(removedTags(report, 'pulls/app'), ['idle']);
      assert.ok(report.tags[0]!.pulledAt === undefined);
      assert.deepEqual(await tags(second, 'pulls/app'), ['pulled']);
    } finally {
      await second.close();
    }
  });
});

describe('retention on a schedule', () => {
  it('runs every policies.interval, and policies.dryrun makes each run only report', async () => {
    const r = await startRegistry({ overrides: { policies: { interval: '10s', dryrun: true,
      rules: [{ repositories: ['**'], keep: { last: 1 } }] } } });
    try {
      await pushImage(r.url, 'sched/app', 'a', 'sched-a');
      agePush(r, 'sched/app', 'a', 2);
      await pushImage(r.url, 'sched/app', 'b', 'sched-b');
      const deadline = Date.now() + 20_000;
      let last: RetentionReport | null = null;
      while (!last && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 500));
        last = ((await (await fetch(`${r.url}/api/v1/retention`)).json()) as { last: RetentionReport | null }).last;
      }
      assert.ok(last, 'a scheduled run happened within 20 s');
      assert.equal(last.dryRun, true);
      assert.deepEqual(removedTags(last, 'sched/app'), ['a']);
      assert.deepEqual(await tags(r, 'sched/app'), ['a', 'b']);
    } finally {
      await r.close();
    }
  });
});

describe('retention authorisation', () => {
  it('starting retention needs delete on every repository', { skip: needs('htpasswd') }, async () => {
    const basic = (user: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${user}-pass`).toString('base64')}` });
    const htpasswd = join(tempDir('retention-auth-'), 'htpasswd');
    await makeHtpasswd(htpasswd, { alice: 'alice-pass', bob: 'bob-pass' });
    const r = await startRegistry({ overrides: {
      auth: { htpasswd: { realm: 'berth', path: htpasswd } },
      access: { rules: [{ repositories: ['**'], users: { alice: ['pull', 'push', 'delete'], bob: ['pull'] } },
        { repositories: ['*'], users: { bob: ['delete'] } }] },
      policies: { interval: '0', rules: [{ repositories: ['**'], keep: { last: 5 } }] },
    } });
    try {
      assert.equal((await fetch(`${r.url}/api/v1/retention`, { method: 'POST' })).status, 401);
      const denied = await fetch(`${r.url}/api/v1/retention?dryrun=true`, { method: 'POST', headers: basic('bob') });
      assert.equal(denied.status, 403);
      assert.match(((await denied.json()) as { errors: { message: string }[] }).errors[0]!.message, /delete rights on every repository/);
      assert.equal((await fetch(`${r.url}/api/v1/retention`, { headers: basic('bob') })).status, 200, 'reading the report needs catalog access only');
      assert.equal((await fetch(`${r.url}/api/v1/retention?dryrun=true&wait=true`, { method: 'POST', headers: basic('alice') })).status, 200);
    } finally {
      await r.close();
    }
  });
});

describe('berth retention (the command)', () => {
  it('reports in a dry run, removes otherwise, and refuses storage a registry serves', async () => {
    const root = tempDir('retention-cli-');
    const config = join(root, 'config.yml');
    writeFileSync(config, `storage:\n  filesystem:\n    rootdirectory: ${root}/data\npolicies:\n  rules:\n    - repositories: ["**"]\n      keep: {last: 1}\n`);
    const r = await startRegistry({ root: join(root, 'data') });
    await pushImage(r.url, 'cli/app', 'old', 'cli-old');
    agePush(r, 'cli/app', 'old', 5);
    await pushImage(r.url, 'cli/app', 'new', 'cli-new');
    const cli = (...args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'retention', '--config', config, ...args],
        (err, stdout, stderr) => resolve({ code: err ? (err.code as number) : 0, stdout, stderr }));
    });
    const refused = await cli();
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /a registry is serving this storage.*POST \/api\/v1\/retention.*--dryrun.*--force/);
    const dry = await cli('--dryrun');
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual((JSON.parse(dry.stdout) as RetentionReport).tags.map((t) => t.tag), ['old']);
    assert.match(dry.stderr, /"repository":"cli\/app","tag":"old".*"msg":"retention \(dry run\): would remove tag"/);
    assert.match(dry.stderr, /retention \(dry run\) done: nothing was removed/);
    await r.close();
    const applied = await cli();
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal((JSON.parse(applied.stdout) as RetentionReport).tagsRemoved, 1);
    const again = await startRegistry({ root: join(root, 'data'),
      overrides: { policies: { interval: '0', rules: [{ repositories: ['**'], keep: { last: 1 } }] } } });
    try {
      assert.deepEqual(await tags(again, 'cli/app'), ['new']);
      const status = (await (await fetch(`${again.url}/api/v1/retention`)).json()) as { last: RetentionReport | null };
      assert.equal(status.last?.tagsRemoved, 1, 'the registry shows the report the command left in storage');
    } finally {
      await again.close();
    }
  });
});
