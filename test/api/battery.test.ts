// The concurrency battery against a registry collecting garbage every second with a grace of
// two seconds: every interleaving must leave a registry some serial order could have produced.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertClean, Client, garbageLeft, runBattery, verifyBattery } from '../helpers/battery.js';
import { startRegistry } from '../helpers/registry.js';

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
