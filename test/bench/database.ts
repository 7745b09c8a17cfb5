// Figures of the PostgreSQL metadata index (not run in CI), on a server test/support/postgres.sh
// starts (or BERTH_TEST_DATABASE_URL):
//  - the catalog: 100,000 repositories walked in pages of 1,000 through GET /v2/_catalog;
//  - tags/list of one repository with 50,000 tags (whole, and in pages of 1,000);
//  - manifest GET by tag, requests per second, with the database and with link files;
//  - import of a data directory in registry:2's layout (written directly, as registry:2 leaves it), repositories/s.
//
//   npm run build && node dist/test/bench/database.js [REPOS=100000] [TAGS=50000] [IMPORT_REPOS=5000]
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Importer } from '../../src/db/import.js';
import { migrate } from '../../src/db/migrations.js';
import { createPool } from '../../src/db/pool.js';
import { loadConfig } from '../../src/config/load.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { freshDatabase } from '../helpers/postgres.js';
import { pushImage, startRegistry, tempDir, type TestRegistry } from '../helpers/registry.js';

const REPOS = Number(process.argv[2] ?? 100_000);
const TAGS = Number(process.argv[3] ?? 50_000);
const IMPORT_REPOS = Number(process.argv[4] ?? 5_000);
const sha = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const ms = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e6;

async function rate(url: string, seconds: number, concurrency = 16): Promise<number> {
  const until = Date.now() + seconds * 1000;
  let done = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < until) {
      const res = await fetch(url, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
      done++;
    }
  }));
  return Math.round(done / seconds);
}

const db = await freshDatabase();
const pool = createPool(loadConfig({ env: {}, overrides: { 'database.enabled': true, 'database.url': db.url } }).database!);
await migrate(pool);
const registry: TestRegistry = await startRegistry({ database: { 'database.enabled': true, 'database.url': db.url }, overrides: { 'http.debug.prometheus.enabled': false } });
const figures: Record<string, unknown> = {};
try {
  // ---- catalog
  let t = process.hrtime.bigint();
  await pool.query(`INSERT INTO repositories (name, manifests_at)
    SELECT 'bench/repo-' || lpad(i::text, 6, '0'), now() FROM generate_series(1, $1) AS i`, [REPOS]);
  await pool.query('UPDATE catalog_version SET version = version + 1');
  figures.seedRepositoriesMs = Math.round(ms(t));
  for (const round of ['cold', 'warm']) {
    t = process.hrtime.bigint();
    let next: string | undefined = '/v2/_catalog?n=1000';
    let pages = 0;
    let names = 0;
    while (next) {
      const res: Response = await fetch(`${registry.url}${next}`);
      const body = await res.json() as { repositories: string[] };
      names += body.repositories.length;
      pages++;
      next = /<([^>]+)>/.exec(res.headers.get('link') ?? '')?.[1];
    }
    figures[`catalog_${round}`] = { repositories: names, pages, ms: Math.round(ms(t)) };
  }
  // ---- tags/list
  const image = await pushImage(registry.url, 'bench/tags', 'seed', 'tags');
  t = process.hrtime.bigint();
  await pool.query(`INSERT INTO tags (repository_id, name, digest)
    SELECT r.id, 'tag-' || lpad(i::text, 6, '0'), $2 FROM repositories r, generate_series(1, $1) AS i WHERE r.name = 'bench/tags'`,
  [TAGS, image.digest]);
  figures.seedTagsMs = Math.round(ms(t));
  for (const round of ['cold', 'warm']) {
    t = process.hrtime.bigint();
    const whole = await (await fetch(`${registry.url}/v2/bench/tags/tags/list`)).json() as { tags: string[] };
    const wholeMs = ms(t);
    t = process.hrtime.bigint();
    let next: string | undefined = '/v2/bench/tags/tags/list?n=1000';
    let pages = 0;
    while (next) {
      const res: Response = await fetch(`${registry.url}${next}`);
      await res.arrayBuffer();
      pages++;
      next = /<([^>]+)>/.exec(res.headers.get('link') ?? '')?.[1];
    }
    figures[`tags_${round}`] = { tags: whole.tags.length, wholeMs: Math.round(wholeMs), pages, pagedMs: Math.round(ms(t)) };
  }
  // ---- manifest GET by tag
  await pushImage(registry.url, 'bench/get', 'v1', 'get');
  const files = await startRegistry();
  try {
    await pushImage(files.url, 'bench/get', 'v1', 'get');
    await rate(`${registry.url}/v2/bench/get/manifests/v1`, 1);
    await rate(`${files.url}/v2/bench/get/manifests/v1`, 1);
    figures.manifestGetByTag = {
      databaseRps: await rate(`${registry.url}/v2/bench/get/manifests/v1`, 5),
      linkFilesRps: await rate(`${files.url}/v2/bench/get/manifests/v1`, 5),
    };
  } finally {
    await files.close();
  }
} finally {
  await registry.close();
}

// ---- import of a registry:2 data directory: IMPORT_REPOS repositories of one image (config, two layers, one tag)
const root = tempDir('bench-import-');
const v2 = join(root, 'docker/registry/v2');
const write = (path: string, content: string | Buffer) => {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
};
const blob = (content: Buffer | string) => {
  const d = sha(content);
  write(join(v2, 'blobs/sha256', d.slice(7, 9), d.slice(7), 'data'), content);
  return d;
};
let t = process.hrtime.bigint();
const base = blob(`shared base layer ${'b'.repeat(1000)}`);
for (let i = 0; i < IMPORT_REPOS; i++) {
  const name = `import/team-${Math.floor(i / 100)}/app-${i}`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', n: i }));
  const layer = `layer of ${i}`;
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: blob(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: base, size: 1018 },
      { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: blob(layer), size: layer.length }] }));
  const digest = blob(manifest);
  const repo = join(v2, 'repositories', name);
  for (const d of [sha(config), base, sha(layer)]) write(join(repo, '_layers/sha256', d.slice(7), 'link'), d);
  write(join(repo, '_manifests/revisions/sha256', digest.slice(7), 'link'), digest);
  write(join(repo, '_manifests/tags/latest/current/link'), digest);
  write(join(repo, '_manifests/tags/latest/index/sha256', digest.slice(7), 'link'), digest);
}
figures.importSeedMs = Math.round(ms(t));
// a database of its own: the repositories above are not in this storage
await pool.end();
const importDb = await freshDatabase();
const importPool = createPool(loadConfig({ env: {}, overrides: { 'database.enabled': true, 'database.url': importDb.url } }).database!);
await migrate(importPool);
const importer = new Importer(importPool, new FilesystemDriver(root));
t = process.hrtime.bigint();
const first = await importer.pass(false);
const final = await importer.pass(true);
figures.import = { repositories: first.repositories, firstPassS: first.seconds, repositoriesPerSecond: first.repositoriesPerSecond,
  finalPassS: final.seconds, finalRepositoriesPerSecond: final.repositoriesPerSecond, totalMs: Math.round(ms(t)) };
await importPool.end();
await importDb.drop();
await db.drop();
process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
process.exit(0);
