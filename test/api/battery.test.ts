// The concurrency battery against a registry collecting garbage every second with a grace of
// two seconds: every interleaving must leave a registry some serial order could have produced.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { assertClean, Client, runBattery, verifyBattery, type BatteryResult } from '../helpers/battery.js';
import { startRegistry } from '../helpers/registry.js';

const V2 = 'docker/registry/v2';

/** Blob files nothing references any more, and deleted images' blobs still stored. */
export function garbageLeft(root: string, result: BatteryResult): { garbage: string[]; deletedStillStored: string[] } {
  const stored = new Set<string>();
  const blobs = join(root, V2, 'blobs/sha256');
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
  walk(join(root, V2, 'repositories'));
  const garbage = [...stored].filter((d) => !referenced.has(d));
  const deletedStillStored = result.deleted.filter((i) => stored.has(i.digest)).map((i) => `${i.name}@${i.digest}`);
  return { garbage, deletedStillStored };
}

describe('concurrency battery', () => {
  it('racing puts, deletes, mounts and repository deletes under collection every second leave no dangling tag, lost image or 5xx', async (t) => {
    const r = await startRegistry({
      overrides: {
        'storage.maintenance.gc.enabled': true, 'storage.maintenance.gc.interval': '1s',
        'storage.maintenance.gc.grace': '2s', 'storage.maintenance.gc.deleteuntagged': true,
        'storage.maintenance.uploadpurging.enabled': false,
      },
    });
    try {
      const result = await runBattery({ url: () => r.url }, Number(process.env.BATTERY_MS ?? 12_000));
      const checker = new Client({ url: () => r.url });
      const { lost, dangling } = await verifyBattery(checker, result);
      // then, with nothing pushing: one last collection with no grace removes every deleted thing
      await new Promise((resolve) => setTimeout(resolve, 100));
      await r.app.services.collector.run({ graceMs: 0 });
      const { garbage, deletedStillStored } = garbageLeft(r.root, result);
      const requests = result.tallies.reduce((n, tally) => n + tally.requests, 0);
      const fivexx = result.tallies.reduce((n, tally) => n + tally.serverErrors.length, 0);
      t.diagnostic(JSON.stringify({ requests, fivexx, dangling: dangling.length, lost: lost.length, garbage: garbage.length,
        deletedStillStored: deletedStillStored.length, live: result.live.length, deleted: result.deleted.length }));
      for (const tally of result.tallies) assertClean(tally);
      assert.deepEqual(dangling, []);
      assert.deepEqual(lost, []);
      assert.deepEqual(garbage, []);
      assert.deepEqual(deletedStillStored, []);
      assert.ok(result.live.length > 20, `only ${result.live.length} images were pushed`);
      assert.ok(result.deleted.length > 5, `only ${result.deleted.length} images were deleted`);
    } finally {
      await r.close();
    }
  });
});
