// PostgreSQL as the metadata index, on a real server (test/support/postgres.sh): migrations,
// the refusal to serve a schema that is behind, several Berth processes on one storage and one
// database, the concurrency battery spread over them with online collection in each, and the
// import of a data directory the reference registry wrote.
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { Importer } from '../../src/db/import.js';
import { openDatabase } from '../../src/db/index.js';
import { MIGRATIONS, migrate, schemaStatus } from '../../src/db/migrations.js';
import { createPool } from '../../src/db/pool.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { assertClean, Client, runBattery, verifyBattery, type BatteryResult } from '../helpers/battery.js';
import { CLI, IMAGE_TOOLS, freePort, needs, run, startBerth, SUPPORT, testImages, type BerthProcess, type TestImages } from '../helpers/clients.js';
import { crossCheckImages, pullAndCheck, pushAll } from '../helpers/interop.js';
import { freshDatabase, needsPostgres, type TestDatabase } from '../helpers/postgres.js';
import { pushBlob, pushImage, startRegistry, tempDir, type TestRegistry } from '../helpers/registry.js';
import { needsS3, s3Bucket, s3Driver, s3Overrides } from '../helpers/s3.js';

const skip = needsPostgres();
const V2 = 'docker/registry/v2';

/** The environment that points a berth process at a database. */
function dbEnv(db: TestDatabase, more: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { REGISTRY_DATABASE_ENABLED: 'true', REGISTRY_DATABASE_URL: db.url, REGISTRY_LOG_LEVEL: 'warn', ...more };
}

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0, stdout, stderr });
    });
  });
}

/** Blob folders in storage, and the content the database says something references. */
async function storedAndReferenced(root: string, db: TestDatabase): Promise<{ stored: Set<string>; referenced: Set<string>; rows: Set<string> }> {
  const stored = new Set<string>();
  const blobs = join(root, V2, 'blobs/sha256');
  for (const prefix of existsSync(blobs) ? readdirSync(blobs) : []) {
    for (const hex of readdirSync(join(blobs, prefix))) stored.add(`sha256:${hex}`);
  }
  const referenced = new Set((await db.query(`SELECT digest FROM manifests UNION SELECT child FROM manifest_references WHERE kind = 'blob'`))
    .map((r) => r.digest as string));
  const rows = new Set((await db.query('SELECT digest FROM blobs')).map((r) => r.digest as string));
  return { stored, referenced, rows };
}

describe('database: migrations', { skip }, () => {
  let db: TestDatabase;
  before(async () => { db = await freshDatabase(); });
  after(async () => { await db?.drop(); });

  it('run up from an empty database and from each earlier version, keeping what is stored', async () => {
    const pool = createPool(loadConfig({ env: {}, overrides: { 'database.enabled': true, 'database.url': db.url } }).database!);
    try {
      const empty = await schemaStatus(pool);
      assert.deepEqual(empty.applied, []);
      assert.deepEqual(empty.pending.map((m) => m.version), MIGRATIONS.map((m) => m.version));
      for (const target of MIGRATIONS.map((m) => m.version)) {
        const applied = await migrate(pool, { upTo: target });
        assert.deepEqual(applied.map((m) => m.version), [target]);
        const status = await schemaStatus(pool);
        assert.deepEqual(status.applied.map((a) => a.version), MIGRATIONS.filter((m) => m.version <= target).map((m) => m.version));
        if (target === 1) await pool.query(`INSERT INTO repositories (name, manifests_at) VALUES ('kept/across', now())`);
      }
      assert.deepEqual(await migrate(pool), []);
      assert.equal((await pool.query(`SELECT count(*)::int AS n FROM repositories WHERE name = 'kept/across'`)).rows[0].n, 1);
      // several processes migrating at once: one applies, the others find nothing to do
      await pool.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public');
      const together = await Promise.all([migrate(pool), migrate(pool), migrate(pool)]);
      assert.equal(together.flat().length, MIGRATIONS.length);
      assert.deepEqual((await schemaStatus(pool)).pending, []);
    } finally {
      await pool.end();
    }
  });

  it('berth database status and migrate report each migration; serve refuses a schema that is behind, naming the fix', async () => {
    const behind = await freshDatabase();
    try {
      const env = dbEnv(behind);
      const status = await cli(['database', 'status'], env);
      assert.equal(status.code, 1);
      assert.match(status.stdout, /pending +1 +metadata index/);
      assert.match(status.stdout, /3 pending: run berth database migrate --config FILE/);
      assert.equal((await cli(['database', 'migrate', '--to', '1'], env)).code, 0);
      const root = tempDir('db-behind-');
      const port = await freePort();
      const serve = await cli(['serve', '--root', root, '--addr', `127.0.0.1:${port}`], env);
      assert.equal(serve.code, 2);
      assert.match(serve.stderr, /database is not usable: the schema of postgresql:\/\/postgres@127\.0\.0\.1:\d+\/berth_test_\w+ is behind \(version 1; 2 migrations pending, up to 3\): run berth database migrate --config FILE/);
      // in process too: the app does not start
      await assert.rejects(startRegistry({ root, database: { 'database.enabled': true, 'database.url': behind.url } }), /is behind \(version 1/);
      const migrated = await cli(['database', 'migrate'], env);
      assert.equal(migrated.code, 0, migrated.stderr);
      assert.match(migrated.stdout, /applied 2 online collection: review queues \(\d+ ms\)\napplied 3 import progress \(\d+ ms\)\n/);
      assert.match(migrated.stdout, /2 migrations applied; schema version 3/);
      assert.equal((await cli(['database', 'status'], env)).code, 0);
      assert.match((await cli(['database', 'migrate'], env)).stdout, /the schema is up to date \(version 3\)/);
      // a schema a newer Berth migrated is refused too
      await behind.query(`INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')`);
      await assert.rejects(startRegistry({ root, database: { 'database.enabled': true, 'database.url': behind.url } }),
        /has migrations this Berth does not know \(999\)/);
    } finally {
      await behind.drop();
    }
  });

  it('a wrong password or database stops startup with the setting to fix', async () => {
    const url = new URL(db.url);
    url.pathname = '/berth_no_such_database';
    const serve = await cli(['serve', '--root', tempDir('db-wrong-'), '--addr', `127.0.0.1:${await freePort()}`], dbEnv(db, { REGISTRY_DATABASE_URL: url.toString() }));
    assert.equal(serve.code, 2);
    assert.match(serve.stderr, /cannot connect to postgresql:\/\/postgres@127\.0\.0\.1:\d+\/berth_no_such_database: .*does not exist; create it \(createdb berth_no_such_database\) or set database\.dbname/);
  });
});

describe('database: three processes on one storage and one database', { skip }, () => {
  let db: TestDatabase;
  let root: string;
  let procs: BerthProcess[] = [];
  before(async () => {
    db = await freshDatabase();
    root = tempDir('db-three-');
    assert.equal((await cli(['database', 'migrate'], dbEnv(db))).code, 0);
    procs = await Promise.all([0, 1, 2].map(() => startBerth(root, dbEnv(db))));
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await db?.drop();
  });

  it('push on one, pull on another, delete on the third: tags/list and _catalog agree everywhere at once', async () => {
    const [a, b, c] = procs as [BerthProcess, BerthProcess, BerthProcess];
    const image = await pushImage(a.url, 'three/app', 'v1', 'three');
    await pushImage(a.url, 'three/app', 'v2', 'three-2');
    const everywhere = async (path: string) => Promise.all(procs.map(async (p) => {
      const res = await fetch(`${p.url}${path}`);
      return { status: res.status, body: await res.json() };
    }));
    for (const answer of await everywhere('/v2/three/app/tags/list')) assert.deepEqual(answer, { status: 200, body: { name: 'three/app', tags: ['v1', 'v2'] } });
    for (const answer of await everywhere('/v2/_catalog')) assert.deepEqual(answer.body.repositories, ['three/app']);
    const pulled = await fetch(`${b.url}/v2/three/app/manifests/v1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(pulled.status, 200);
    assert.deepEqual(Buffer.from(await pulled.arrayBuffer()), image.manifest);
    const layer = await fetch(`${b.url}/v2/three/app/blobs/${image.layers[0]}`);
    assert.equal(await layer.text(), 'layer for three');
    assert.equal((await fetch(`${c.url}/v2/three/app/manifests/${image.digest}`, { method: 'DELETE' })).status, 202);
    for (const answer of await everywhere('/v2/three/app/tags/list')) assert.deepEqual(answer.body.tags, ['v2']);
    for (const p of procs) assert.equal((await fetch(`${p.url}/v2/three/app/manifests/v1`)).status, 404);
    // a new repository on the third is in every catalog at once; deleted on the first, it leaves every one
    await pushImage(c.url, 'three/other', 'v1', 'other');
    for (const answer of await everywhere('/v2/_catalog')) assert.deepEqual(answer.body.repositories, ['three/app', 'three/other']);
    assert.equal((await fetch(`${a.url}/api/v1/repositories/three/other`, { method: 'DELETE' })).status, 202);
    for (const answer of await everywhere('/v2/_catalog')) assert.deepEqual(answer.body.repositories, ['three/app']);
    for (const p of procs) assert.equal((await fetch(`${p.url}/v2/three/other/tags/list`)).status, 404);
    // no link file was written: the database is the index
    assert.equal(existsSync(join(root, V2, 'repositories/three/app/_manifests')), false);
  });
});

describe('database: the concurrency battery over three processes, collecting in each', { skip }, () => {
  it('no 5xx, nothing acknowledged is lost, and the garbage is removed', async (t) => {
    const db = await freshDatabase();
    const root = tempDir('db-battery-');
    assert.equal((await cli(['database', 'migrate'], dbEnv(db))).code, 0);
    const env = dbEnv(db, {
      REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED: 'true', REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL: '1s',
      REGISTRY_STORAGE_MAINTENANCE_GC_GRACE: '2s', REGISTRY_STORAGE_MAINTENANCE_GC_DELETEUNTAGGED: 'true',
      REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: 'false',
    });
    const procs = await Promise.all([0, 1, 2].map(() => startBerth(root, env)));
    const config = loadConfig({ env: {}, overrides: { 'database.enabled': true, 'database.url': db.url, 'storage.filesystem.rootdirectory': root,
      'storage.maintenance.gc.grace': '2s' } });
    const checker = openDatabase(config.database!, new FilesystemDriver(root), 2000);
    try {
      let next = 0;
      // every request goes to the next process in turn
      const result: BatteryResult = await runBattery({ url: () => procs[next++ % procs.length]!.url }, Number(process.env.BATTERY_MS ?? 12_000));
      const { lost, dangling } = await verifyBattery(new Client({ url: () => procs[1]!.url }), result);
      // nothing pushing now: a collection with no grace removes everything deleted
      await new Promise((resolve) => setTimeout(resolve, 100));
      await checker.reviewer.collect({ graceMs: 0, deleteUntagged: true, dryRun: false });
      const { stored, referenced, rows } = await storedAndReferenced(root, db);
      const garbage = [...stored].filter((d) => !referenced.has(d));
      const missing = [...rows].filter((d) => !stored.has(d));
      const deletedStillStored = result.deleted.filter((i) => stored.has(i.digest)).map((i) => `${i.name}@${i.digest}`);
      const requests = result.tallies.reduce((n, tally) => n + tally.requests, 0);
      const reviews = await Promise.all(procs.map(async (p) => /berth_gc_reviews_total\{queue="blob",outcome="deleted"\} (\d+)/
        .exec(await (await fetch(`${p.url}/metrics`)).text())?.[1] ?? '0'));
      t.diagnostic(JSON.stringify({ requests, dangling: dangling.length, lost: lost.length, garbage: garbage.length, missing: missing.length,
        deletedStillStored: deletedStillStored.length, live: result.live.length, deleted: result.deleted.length, blobReviewsDeletedByProcess: reviews }));
      for (const tally of result.tallies) assertClean(tally);
      assert.deepEqual(dangling, []);
      assert.deepEqual(lost, []);
      assert.deepEqual(garbage, []);
      assert.deepEqual(missing, [], 'every blob row names stored content');
      assert.deepEqual(deletedStillStored, []);
      assert.ok(result.live.length > 20, `only ${result.live.length} images were pushed`);
      assert.ok(result.deleted.length > 5, `only ${result.deleted.length} images were deleted`);
      assert.ok(reviews.filter((n) => Number(n) > 0).length >= 2, `collection ran in more than one process: ${reviews}`);
    } finally {
      await checker.close();
      await Promise.all(procs.map((p) => p.stop()));
      await db.drop();
    }
  });
});

const REF = join(SUPPORT, 'ref-registry.sh');
const skipImport = skip ?? needs('docker-registry', 'curl', ...IMAGE_TOOLS);

describe('database: import of a data directory the reference registry wrote', { skip: skipImport }, () => {
  const work = tempDir('db-import-');
  let images: TestImages;
  before(async () => {
    if (skipImport) return;
    images = await testImages(join(work, 'img'));
  });

  it('imports while Berth serves it, then a final pass; afterwards every image pulls and the catalog matches', async () => {
    const db = await freshDatabase();
    const ref = join(work, 'ref');
    const port = await freePort();
    await run('bash', [REF, 'start', ref, String(port)]);
    const IMAGES = crossCheckImages('imported');
    try {
      await pushAll(IMAGES, `127.0.0.1:${port}`, images);
    } finally {
      await run('bash', [REF, 'stop', ref]);
    }
    const root = join(ref, 'data');
    // Berth serves the directory from its link files while the import runs
    const serving = await startBerth(root);
    let afterImport: BerthProcess | undefined;
    try {
      assert.equal((await cli(['database', 'migrate'], dbEnv(db))).code, 0);
      const config = loadConfig({ env: {}, overrides: { 'database.enabled': true, 'database.url': db.url, 'storage.filesystem.rootdirectory': root } });
      const pool = createPool(config.database!);
      try {
        const importer = new Importer(pool, new FilesystemDriver(root));
        const pushes = [1, 2, 3].map((n) => pushImage(serving.url, 'imported/during', `v${n}`, `during-${n}`));
        const first = await importer.pass(false);
        await Promise.all(pushes);
        assert.ok(first.repositories >= 3, JSON.stringify(first));
        // resumable: a first pass again takes only what is new (the repository made during the first), then nothing
        const again = await importer.pass(false);
        assert.equal(again.repositories + again.skipped, 4);
        assert.ok(again.skipped >= 3, JSON.stringify(again));
        assert.deepEqual([(await importer.pass(false)).repositories, (await importer.pass(false)).skipped], [0, 4]);
        // the final pass takes what was pushed meanwhile
        const final = await importer.pass(true);
        assert.equal(final.repositories, 4);
      } finally {
        await pool.end();
      }
      const expected = await (await fetch(`${serving.url}/v2/_catalog`)).json() as { repositories: string[] };
      assert.deepEqual(expected.repositories, ['imported/dlist', 'imported/during', 'imported/multi', 'imported/small']);
      await serving.stop();
      // the command does the same (both passes) and reports its speed
      const command = await cli(['database', 'import', '--root', root], dbEnv(db));
      assert.equal(command.code, 0, command.stderr);
      assert.match(command.stdout, /first pass: 0 repositories \(4 imported before\).*\nfinal pass: 4 repositories, 0 new manifests/);
      afterImport = await startBerth(root, dbEnv(db));
      await pullAndCheck(IMAGES, afterImport.host, images, work, true);
      const catalog = await (await fetch(`${afterImport.url}/v2/_catalog`)).json() as { repositories: string[] };
      assert.deepEqual(catalog.repositories, expected.repositories);
      const tags = await (await fetch(`${afterImport.url}/v2/imported/during/tags/list`)).json() as { tags: string[] };
      assert.deepEqual(tags.tags, ['v1', 'v2', 'v3']);
      const pulled = await fetch(`${afterImport.url}/v2/imported/during/manifests/v2`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(pulled.status, 200);
      // and real clients push to it and pull from it: an image, a multi-arch index, a Docker manifest list
      const pushed = crossCheckImages('pushed');
      await pushAll(pushed, afterImport.host, images);
      await pullAndCheck(pushed, afterImport.host, images, work, true);
    } finally {
      await serving.stop();
      await afterImport?.stop();
      await db.drop();
    }
  });
});

describe('database: three processes on one S3 bucket and one database', { skip: skip ?? needsS3() }, () => {
  it('push on one, pull on another, delete on the third; collection removes the content from the bucket', async () => {
    const db = await freshDatabase();
    const { server, bucket } = await s3Bucket('berth-db');
    const overrides = s3Overrides(server, bucket, { 'storage.redirect.disable': true, 'storage.maintenance.gc.grace': '1h' });
    const regs = await Promise.all([0, 1, 2].map(() => startRegistry({ overrides, database: db.overrides })));
    try {
      const [a, b, c] = regs as [TestRegistry, TestRegistry, TestRegistry];
      const image = await pushImage(a.url, 'bucket/app', 'v1', 'bucket');
      await pushImage(b.url, 'bucket/app', 'v2', 'bucket-2');
      for (const r of regs) {
        assert.deepEqual(await (await fetch(`${r.url}/v2/bucket/app/tags/list`)).json(), { name: 'bucket/app', tags: ['v1', 'v2'] });
        assert.deepEqual(((await (await fetch(`${r.url}/v2/_catalog`)).json()) as { repositories: string[] }).repositories, ['bucket/app']);
      }
      const pulled = await fetch(`${b.url}/v2/bucket/app/blobs/${image.layers[0]}`);
      assert.equal(await pulled.text(), 'layer for bucket');
      assert.equal((await fetch(`${c.url}/v2/bucket/app/manifests/${image.digest}`, { method: 'DELETE' })).status, 202);
      for (const r of regs) assert.deepEqual(((await (await fetch(`${r.url}/v2/bucket/app/tags/list`)).json()) as { tags: string[] }).tags, ['v2']);
      const driver = s3Driver(server, bucket);
      const data = (d: string) => `/${V2}/blobs/sha256/${d.slice(7, 9)}/${d.slice(7)}/data`;
      assert.ok((await driver.stat(data(image.layers[0]!))).size > 0);
      // the grace period (1h) keeps it; a collection asked with none removes it from the bucket, and its rows
      const report = await b.app.services.collector.run({ graceMs: 0 });
      assert.equal(report.blobsDeleted, 3, JSON.stringify(report));
      for (const d of [image.digest, image.config, image.layers[0]!]) await assert.rejects(driver.stat(data(d)), d);
      for (const r of regs) assert.equal((await fetch(`${r.url}/v2/bucket/app/blobs/${image.layers[0]}`, { method: 'HEAD' })).status, 404);
      assert.equal((await fetch(`${a.url}/v2/bucket/app/manifests/v2`)).status, 200);
    } finally {
      await Promise.all(regs.map((r) => r.close()));
      await db.drop();
    }
  });
});

describe('database: retention reads push and write times from the database', { skip }, () => {
  it('keeps the last N pushed tags and removes untagged manifests older than the age', async () => {
    const db = await freshDatabase();
    const r = await startRegistry({ database: db.overrides, overrides: { policies: { interval: '0', rules: [
      { repositories: ['last/*'], keep: { last: 2 } }, { repositories: ['untagged/*'], untagged: { olderthan: '7d' } },
    ] } } });
    try {
      const age = (name: string, tag: string, days: number) => db.query(`UPDATE tags t SET pushed_at = now() - $3 * interval '1 day'
        FROM repositories r WHERE r.id = t.repository_id AND r.name = $1 AND t.name = $2`, [name, tag, days]);
      for (const [i, t] of ['t1', 't2', 't3', 't4'].entries()) {
        await pushImage(r.url, 'last/app', t, `last-${t}`);
        await age('last/app', t, 10 - i);
      }
      const old = await pushImage(r.url, 'untagged/app', 'tmp', 'untagged-old');
      const fresh = await pushImage(r.url, 'untagged/app', 'tmp2', 'untagged-fresh');
      for (const t of ['tmp', 'tmp2']) assert.equal((await fetch(`${r.url}/v2/untagged/app/manifests/${t}`, { method: 'DELETE' })).status, 202);
      await db.query(`UPDATE manifests SET created_at = now() - interval '10 days' WHERE digest = $1`, [old.digest]);
      await db.query(`UPDATE manifests SET created_at = now() - interval '3 days' WHERE digest = $1`, [fresh.digest]);
      const res = await fetch(`${r.url}/api/v1/retention?wait=true`, { method: 'POST' });
      assert.equal(res.status, 200);
      const report = await res.json() as { tags: { repository: string; tag: string }[]; manifests: { digest: string; reason: string }[] };
      assert.deepEqual(report.tags.filter((t) => t.repository === 'last/app').map((t) => t.tag).sort(), ['t1', 't2']);
      assert.deepEqual(report.manifests.filter((m) => m.reason === 'untagged').map((m) => m.digest), [old.digest]);
      assert.deepEqual(((await (await fetch(`${r.url}/v2/last/app/tags/list`)).json()) as { tags: string[] }).tags, ['t3', 't4']);
      assert.equal((await fetch(`${r.url}/v2/untagged/app/manifests/${old.digest}`)).status, 404);
      assert.equal((await fetch(`${r.url}/v2/untagged/app/manifests/${fresh.digest}`)).status, 200);
    } finally {
      await r.close();
      await db.drop();
    }
  });
});

describe('database: the review queues', { skip }, () => {
  it('queue what lost its last reference, a push that references it cancels, a HEAD postpones, a review removes the rest', async () => {
    const db = await freshDatabase();
    const r = await startRegistry({ database: db.overrides, overrides: { 'storage.maintenance.gc.grace': '1h', 'storage.maintenance.gc.deleteuntagged': true } });
    try {
      const queued = async () => (await db.query('SELECT digest, event FROM gc_blob_review_queue ORDER BY digest')).map((q) => `${q.digest} ${q.event}`);
      const manifestsQueued = async () => (await db.query('SELECT digest, event FROM gc_manifest_review_queue')).map((q) => `${q.digest} ${q.event}`);
      const orphan = await pushBlob(r.url, 'queue/app', 'nothing references me');
      assert.deepEqual(await queued(), [`${orphan} blob_upload`], 'an uploaded blob waits for a manifest');
      const image = await pushImage(r.url, 'queue/app', 'v1', 'queued');
      assert.deepEqual(await queued(), [`${orphan} blob_upload`], 'the manifest put cancelled the reviews of what it references');
      // moving the tag queues the manifest it left; pushing that manifest by tag again cancels it
      const second = await pushImage(r.url, 'queue/app', 'v1', 'queued-2');
      assert.deepEqual(await manifestsQueued(), [`${image.digest} tag_switch`]);
      await pushImage(r.url, 'queue/app', 'v0', 'queued');
      assert.deepEqual(await manifestsQueued(), []);
      // deleting the manifest queues its document, config and layer
      assert.equal((await fetch(`${r.url}/v2/queue/app/manifests/${image.digest}`, { method: 'DELETE' })).status, 202);
      assert.deepEqual(await queued(), [orphan, image.digest, image.config, image.layers[0]!].sort().map((d) => `${d} ${d === orphan ? 'blob_upload' : 'manifest_delete'}`));
      // within the grace period a review keeps everything; a HEAD that finds the orphan postpones its review
      const before = (await db.query('SELECT review_after FROM gc_blob_review_queue WHERE digest = $1', [orphan]))[0].review_after as Date;
      assert.equal((await fetch(`${r.url}/v2/queue/app/blobs/${orphan}`, { method: 'HEAD' })).status, 200);
      const afterHead = (await db.query('SELECT review_after FROM gc_blob_review_queue WHERE digest = $1', [orphan]))[0].review_after as Date;
      assert.ok(afterHead > before, 'the HEAD moved its review later');
      assert.equal((await r.app.services.collector.run()).blobsDeleted, 0);
      // a review with no grace removes what nothing references, and keeps what the second image uses
      const report = await r.app.services.collector.run({ graceMs: 0 });
      assert.equal(report.blobsDeleted, 4, JSON.stringify(report));
      assert.deepEqual(await queued(), []);
      for (const d of [orphan, image.config, image.layers[0]!]) assert.equal((await fetch(`${r.url}/v2/queue/app/blobs/${d}`, { method: 'HEAD' })).status, 404);
      for (const d of [second.config, second.layers[0]!]) assert.equal((await fetch(`${r.url}/v2/queue/app/blobs/${d}`, { method: 'HEAD' })).status, 200);
      assert.equal((await fetch(`${r.url}/v2/queue/app/manifests/v1`)).status, 200);
      const stored = (d: string) => existsSync(join(r.root, V2, 'blobs/sha256', d.slice(7, 9), d.slice(7), 'data'));
      assert.deepEqual([orphan, image.digest, image.config].map(stored), [false, false, false]);
      assert.deepEqual([second.digest, second.config].map(stored), [true, true]);
    } finally {
      await r.close();
      await db.drop();
    }
  });
});

describe('database: out of reach', { skip }, () => {
  it('requests answer 503 UNAVAILABLE with Retry-After, never 500, and the log says why', async () => {
    const db = await freshDatabase();
    const r = await startRegistry({ database: db.overrides, overrides: { 'database.connecttimeout': '2s' } });
    try {
      const image = await pushImage(r.url, 'gone/app', 'v1', 'gone');
      assert.deepEqual(await (await fetch(`${r.url}/readyz`)).json(), { status: 'ready', storage: 'filesystem', database: 'postgresql' });
      await db.drop(); // connections are cut, and new ones find no database
      const ready = await fetch(`${r.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.match(((await ready.json()) as { error: string }).error, /does not exist/);
      for (const [method, path] of [['GET', '/v2/gone/app/manifests/v1'], ['HEAD', `/v2/gone/app/blobs/${image.layers[0]}`],
        ['GET', '/v2/gone/app/tags/list'], ['GET', '/v2/_catalog'], ['DELETE', `/v2/gone/app/manifests/${image.digest}`]] as const) {
        const res = await fetch(`${r.url}${path}`, { method });
        assert.equal(res.status, 503, `${method} ${path}`);
        assert.equal(res.headers.get('retry-after'), '1');
        if (method !== 'HEAD') assert.deepEqual(((await res.json()) as { errors: { code: string }[] }).errors.map((e) => e.code), ['UNAVAILABLE']);
      }
    } finally {
      await r.close();
    }
  });
});
