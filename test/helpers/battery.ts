// The concurrency battery: many clients racing on the same names (tag PUT and DELETE, manifest
// DELETE, blob upload, mount and DELETE, repository DELETE) while collection runs, then checks
// that what remains is a registry some serial order could have produced.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { collectOffline } from '../../src/registry/maintenance.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export interface Target {
  /** The registry's base URL now (it changes when a killed registry restarts). */
  url(): string;
}

export interface Tally {
  requests: number;
  serverErrors: { status: number; what: string; body: string }[];
  /** Requests that got no answer (the registry was killed). */
  unanswered: number;
}

export interface Image {
  name: string;
  tag: string;
  digest: string;
  manifest: Buffer;
  blobs: Map<string, Buffer>;
}

const sha = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export function makeImage(name: string, tag: string, seed: string, shared?: Buffer): Image {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = Buffer.from(`layer ${seed} ${'x'.repeat(200)}`);
  const layers = shared ? [shared, layer] : [layer];
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(l), size: l.length })),
  }));
  const blobs = new Map<string, Buffer>([[sha(config), config], ...layers.map((l) => [sha(l), l] as [string, Buffer])]);
  return { name, tag, digest: sha(manifest), manifest, blobs };
}

export class Client {
  readonly tally: Tally = { requests: 0, serverErrors: [], unanswered: 0 };

  constructor(private readonly target: Target) {}

  /** One request; undefined when the registry did not answer (killed). */
  async request(method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; headers: Headers } | undefined> {
    this.tally.requests++;
    let res: Response;
    try {
      res = await fetch(new URL(path, this.target.url()), { method, body: body as unknown as BodyInit | undefined, headers, signal: AbortSignal.timeout(30_000) });
    } catch {
      this.tally.unanswered++;
      return undefined;
    }
    const data = Buffer.from(await res.arrayBuffer().catch(() => new ArrayBuffer(0)));
    if (res.status >= 500) this.tally.serverErrors.push({ status: res.status, what: `${method} ${path}`, body: data.toString().slice(0, 300) });
    return { status: res.status, body: data, headers: res.headers };
  }

  async pushBlob(name: string, data: Buffer): Promise<boolean> {
    const start = await this.request('POST', `/v2/${name}/blobs/uploads/`);
    if (start?.status !== 202) return false;
    const location = new URL(start.headers.get('location')!, this.target.url());
    location.searchParams.set('digest', sha(data));
    const put = await this.request('PUT', location.pathname + location.search, data, { 'Content-Type': 'application/octet-stream' });
    return put?.status === 201;
  }

  /** Pushes blobs then the manifest; true only when the manifest PUT was acknowledged. */
  async pushImage(image: Image): Promise<boolean> {
    for (const [digest, data] of image.blobs) {
      const head = await this.request('HEAD', `/v2/${image.name}/blobs/${digest}`);
      if (head?.status === 200) continue;
      if (!(await this.pushBlob(image.name, data))) return false;
    }
    const put = await this.request('PUT', `/v2/${image.name}/manifests/${image.tag}`, image.manifest, { 'Content-Type': OCI_MANIFEST });
    return put?.status === 201;
  }
}

/** Pulls an image by tag and checks every byte; returns why it failed, or undefined. */
export async function pullProblem(client: Client, image: Image): Promise<string | undefined> {
  const res = await client.request('GET', `/v2/${image.name}/manifests/${image.tag}`, undefined, { Accept: OCI_MANIFEST });
  if (res?.status !== 200) return `manifest ${image.name}:${image.tag} answered ${res?.status}`;
  if (!res.body.equals(image.manifest)) return `manifest ${image.name}:${image.tag} has other bytes`;
  for (const [digest, data] of image.blobs) {
    const blob = await client.request('GET', `/v2/${image.name}/blobs/${digest}`);
    if (blob?.status !== 200 || !blob.body.equals(data)) return `blob ${digest} of ${image.name}:${image.tag} answered ${blob?.status}`;
  }
  return undefined;
}

/** Every tag of `name` that answers must resolve fully, and tags/list must agree with GET. */
export async function tagProblems(client: Client, name: string): Promise<string[]> {
  const problems: string[] = [];
  const list = await client.request('GET', `/v2/${name}/tags/list`);
  if (list?.status === 404) return problems;
  if (list?.status !== 200) return [`tags/list of ${name} answered ${list?.status}`];
  const tags = (JSON.parse(list.body.toString()) as { tags: string[] | null }).tags ?? [];
  for (const tag of tags) {
    const res = await client.request('GET', `/v2/${name}/manifests/${tag}`, undefined, { Accept: OCI_MANIFEST });
    if (res?.status !== 200) {
      problems.push(`${name}:${tag} is listed but answers ${res?.status}`);
      continue;
    }
    const doc = JSON.parse(res.body.toString()) as { config: { digest: string }; layers: { digest: string }[] };
    const byDigest = await client.request('HEAD', `/v2/${name}/manifests/${sha(res.body)}`);
    if (byDigest?.status !== 200) problems.push(`${name}:${tag} answers but its revision ${sha(res.body)} answers ${byDigest?.status}`);
    for (const d of [doc.config.digest, ...doc.layers.map((l) => l.digest)]) {
      const blob = await client.request('GET', `/v2/${name}/blobs/${d}`);
      if (blob?.status !== 200 || sha(blob.body) !== d) problems.push(`${name}:${tag} references ${d}, which answers ${blob?.status}`);
    }
  }
  return problems;
}

export function assertClean(tally: Tally): void {
  assert.deepEqual(tally.serverErrors.slice(0, 5), [], `${tally.serverErrors.length} answers were 5xx`);
}

export const pick = <T>(items: T[]): T => items[Math.floor(Math.random() * items.length)]!;
export { sha };

export interface BatteryResult {
  /** Images whose manifest PUT was acknowledged and that no acknowledged DELETE removed. */
  live: Image[];
  /** Images whose DELETE was acknowledged (by digest, or their repository's). */
  deleted: Image[];
  /** Repositories whose last acknowledged operation was a DELETE of the whole repository. */
  deletedRepositories: string[];
  /** Repositories where names were contended: only consistency can be checked there. */
  contended: string[];
  tallies: Tally[];
}

/** Runs every kind of client at once for `durationMs`. */
export async function runBattery(target: Target, durationMs: number, run = `${process.pid}-${Date.now()}`): Promise<BatteryResult> {
  const until = Date.now() + durationMs;
  const clients: Client[] = [];
  const client = () => {
    const c = new Client(target);
    clients.push(c);
    return c;
  };
  const live = new Map<string, Image>();
  const deleted: Image[] = [];
  const deletedRepositories = new Set<string>();
  const shared = Buffer.from(`shared base layer ${run}`);
  const workers: Promise<void>[] = [];

  // owners: unique tags, pushed and sometimes deleted by digest by the client that owns them
  for (let w = 0; w < 6; w++) {
    const c = client();
    workers.push((async () => {
      for (let n = 0; Date.now() < until; n++) {
        const image = makeImage(`stable/w${w}`, `t${n}`, `${run}-s${w}-${n}`, shared);
        if (await c.pushImage(image)) live.set(`${image.name}:${image.tag}`, image);
        const mine = [...live.values()].filter((i) => i.name === image.name);
        if (mine.length > 0 && Math.random() < 0.3) {
          const victim = pick(mine);
          const res = await c.request('DELETE', `/v2/${victim.name}/manifests/${victim.digest}`);
          if (res?.status === 202) {
            live.delete(`${victim.name}:${victim.tag}`);
            deleted.push(victim);
          } else if (!res) {
            live.delete(`${victim.name}:${victim.tag}`); // killed mid-request: maybe deleted, maybe not
          }
        }
      }
    })());
  }
  // contenders: the same tags and digests, put and deleted by everyone at once
  const pool = Array.from({ length: 4 }, (_, i) => makeImage('race/app', 'x', `${run}-pool-${i}`, shared));
  for (let w = 0; w < 6; w++) {
    const c = client();
    workers.push((async () => {
      while (Date.now() < until) {
        const image = { ...pick(pool), tag: pick(['a', 'b', 'c']) };
        const op = Math.random();
        if (op < 0.4) await c.pushImage(image);
        else if (op < 0.6) await c.request('DELETE', `/v2/race/app/manifests/${image.tag}`);
        else if (op < 0.8) await c.request('DELETE', `/v2/race/app/manifests/${image.digest}`);
        else await c.request('GET', `/v2/race/app/manifests/${image.tag}`, undefined, { Accept: OCI_MANIFEST });
      }
    })());
  }
  // blobs: uploads, mounts and deletes of the same few blobs
  const blobPool = Array.from({ length: 3 }, (_, i) => Buffer.from(`racing blob ${run} ${i}`));
  for (let w = 0; w < 3; w++) {
    const c = client();
    workers.push((async () => {
      while (Date.now() < until) {
        const data = pick(blobPool);
        const op = Math.random();
        if (op < 0.35) await c.pushBlob('race/blobs', data);
        else if (op < 0.55) await c.request('POST', `/v2/race/mounted/blobs/uploads/?mount=${sha(data)}&from=race/blobs`);
        else if (op < 0.85) await c.request('DELETE', `/v2/${pick(['race/blobs', 'race/mounted'])}/blobs/${sha(data)}`);
        else await c.request('HEAD', `/v2/race/blobs/blobs/${sha(data)}`);
      }
    })());
  }
  // whole repositories, each owned by one client: pushed, then deleted
  for (let w = 0; w < 2; w++) {
    const c = client();
    const name = `scratch/r${w}`;
    workers.push((async () => {
      for (let n = 0; Date.now() < until; n++) {
        const image = makeImage(name, `t${n}`, `${run}-r${w}-${n}`, shared);
        if (await c.pushImage(image)) {
          live.set(`${name}:${image.tag}`, image);
          deletedRepositories.delete(name);
        }
        if (Math.random() < 0.4) {
          const res = await c.request('DELETE', `/api/v1/repositories/${name}`);
          if (res?.status === 202) {
            for (const [key, i] of live) if (i.name === name) { live.delete(key); deleted.push(i); }
            deletedRepositories.add(name);
          } else if (!res) { // killed mid-request: its images may or may not be gone
            for (const [key, i] of live) if (i.name === name) live.delete(key);
            deletedRepositories.delete(name);
          }
        }
      }
    })());
  }
  // collection on demand too, on top of the scheduled one
  const gcClient = client();
  workers.push((async () => {
    while (Date.now() < until) {
      await gcClient.request('POST', '/api/v1/gc');
      await new Promise((r) => setTimeout(r, 700));
    }
  })());
  await Promise.all(workers);
  return { live: [...live.values()], deleted, deletedRepositories: [...deletedRepositories], contended: ['race/app', 'race/blobs', 'race/mounted'], tallies: clients.map((c) => c.tally) };
}

/** Checks what a battery left: acknowledged images pull byte for byte, tags resolve, deleted repositories are gone. */
export async function verifyBattery(client: Client, result: BatteryResult): Promise<{ lost: string[]; dangling: string[] }> {
  const lost: string[] = [];
  for (const image of result.live) {
    const problem = await pullProblem(client, image);
    if (problem) lost.push(problem);
  }
  const names = new Set([...result.live, ...result.deleted].map((i) => i.name).concat(result.contended));
  const dangling: string[] = [];
  for (const name of names) dangling.push(...await tagProblems(client, name));
  const catalog = JSON.parse((await client.request('GET', '/v2/_catalog'))!.body.toString()) as { repositories: string[] };
  for (const name of result.deletedRepositories) {
    if (catalog.repositories.includes(name)) dangling.push(`deleted repository ${name} is still in the catalog`);
  }
  return { lost, dangling };
}

/** Blob files nothing references any more, and deleted images' blobs still stored. */
export function garbageLeft(root: string, result: BatteryResult): { garbage: string[]; deletedStillStored: string[] } {
  const stored = new Set<string>();
  const blobs = join(root, 'docker/registry/v2', 'blobs/sha256');
  for (const prefix of existsSync(blobs) ? readdirSync(blobs) : []) {
    for (const hex of readdirSync(join(blobs, prefix))) stored.add(`sha256:${hex}`);
  }
  const referenced = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const path = join(dir, entry.name);
      if (entry.name === '_manifests') {
        const revisions = join(path, 'revisions/sha256');
        for (const hex of existsSync(revisions) ? readdirSync(revisions) : []) {
          if (!existsSync(join(revisions, hex, 'link'))) continue;
          const digest = `sha256:${hex}`;
          referenced.add(digest);
          const doc = JSON.parse(readFileSync(join(blobs, hex.slice(0, 2), hex, 'data'), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
          for (const d of [doc.config.digest, ...doc.layers.map((l) => l.digest)]) referenced.add(d);
        }
      } else if (!entry.name.startsWith('_')) {
        walk(path);
      }
    }
  };
  walk(join(root, 'docker/registry/v2', 'repositories'));
  const garbage = [...stored].filter((d) => !referenced.has(d));
  const deletedStillStored = result.deleted.filter((i) => stored.has(i.digest)).map((i) => `${i.name}@${i.digest}`);
  return { garbage, deletedStillStored };
}


/** The registry's settings under the battery: collection every second, a 2 s grace, untagged manifests deleted. */
export const COLLECTING_ENV = {
  REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED: 'true', REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL: '1s',
  REGISTRY_STORAGE_MAINTENANCE_GC_GRACE: '2s', REGISTRY_STORAGE_MAINTENANCE_GC_DELETEUNTAGGED: 'true',
  REGISTRY_LOG_LEVEL: 'warn',
};

/**
 * Once the registry on `root` has stopped after a battery (`checked`: what `verifyBattery` found
 * while it served): the offline collection, with no grace, must leave no garbage, and every
 * invariant must hold. The figures (with `figures`, e.g. the kills) go to `diagnostic`.
 */
export async function assertBatteryHeld(root: string, result: BatteryResult, checked: { lost: string[]; dangling: string[] },
                                        figures: Record<string, unknown>, diagnostic: (message: string) => void): Promise<void> {
  const report = await collectOffline(new FilesystemDriver(root), { dryRun: false, deleteUntagged: true });
  const { garbage, deletedStillStored } = garbageLeft(root, result);
  const { lost, dangling } = checked;
  const sum = (of: (tally: Tally) => number) => result.tallies.reduce((n, tally) => n + of(tally), 0);
  diagnostic(JSON.stringify({ ...figures, requests: sum((t) => t.requests), unanswered: sum((t) => t.unanswered),
    fivexx: sum((t) => t.serverErrors.length), dangling: dangling.length, lost: lost.length, garbage: garbage.length,
    deletedStillStored: deletedStillStored.length, finalGc: report.blobsDeleted }));
  if (lost.length || garbage.length) diagnostic(JSON.stringify({ lost, garbage }));
  for (const tally of result.tallies) assertClean(tally);
  assert.deepEqual(dangling, []);
  assert.deepEqual(lost, []);
  assert.deepEqual(garbage, []);
  assert.deepEqual(deletedStillStored, []);
}
