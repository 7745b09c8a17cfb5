// The concurrency battery against a real `berth serve` process, killed with SIGKILL at random
// moments and restarted on the same storage, with collection running every second.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { assertClean, Client, garbageLeft, makeImage, runBattery, verifyBattery } from '../helpers/battery.js';
import { startBerth, type BerthProcess } from '../helpers/clients.js';
import { collectOffline } from '../../src/registry/maintenance.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { tempDir } from '../helpers/registry.js';

const GC_ENV = {
  REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED: 'true', REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL: '1s',
  REGISTRY_STORAGE_MAINTENANCE_GC_GRACE: '2s', REGISTRY_STORAGE_MAINTENANCE_GC_DELETEUNTAGGED: 'true',
  REGISTRY_LOG_LEVEL: 'warn',
};

describe('concurrency battery with kill -9', () => {
  it('loses nothing acknowledged and leaves nothing dangling across SIGKILLs and restarts', async (t) => {
    const root = tempDir();
    let berth: BerthProcess = await startBerth(root, GC_ENV);
    // acknowledged before the first kill, never deleted: however few of the battery's own images
    // outlive the kills on a busy machine, this one must
    const keeper = makeImage('keep/app', 'v1', 'keeper');
    assert.ok(await new Client({ url: () => berth.url }).pushImage(keeper), 'the keeper image was not acknowledged');
    let kills = 0;
    let stopping = false;
    const killer = (async () => {
      while (!stopping) {
        await new Promise((resolve) => setTimeout(resolve, 1500 + Math.random() * 2000));
        if (stopping) break;
        berth.child.kill('SIGKILL');
        await new Promise((resolve) => berth.child.once('exit', resolve));
        kills++;
        berth = await startBerth(root, GC_ENV);
      }
    })();
    try {
      const result = await runBattery({ url: () => berth.url }, Number(process.env.BATTERY_MS ?? 12_000));
      stopping = true;
      await killer;
      const battery = result.live.length;
      result.live.push(keeper);
      const checker = new Client({ url: () => berth.url });
      const { lost, dangling } = await verifyBattery(checker, result);
      await berth.stop();
      // nothing serves now: the offline collection, with no grace, leaves no garbage
      const report = await collectOffline(new FilesystemDriver(root), { dryRun: false, deleteUntagged: true });
      const { garbage, deletedStillStored } = garbageLeft(root, result);
      const requests = result.tallies.reduce((n, tally) => n + tally.requests, 0);
      const fivexx = result.tallies.reduce((n, tally) => n + tally.serverErrors.length, 0);
      const unanswered = result.tallies.reduce((n, tally) => n + tally.unanswered, 0);
      t.diagnostic(JSON.stringify({ kills, requests, unanswered, fivexx, dangling: dangling.length, lost: lost.length,
        garbage: garbage.length, deletedStillStored: deletedStillStored.length, live: battery, finalGc: report.blobsDeleted }));
      if (lost.length || garbage.length) t.diagnostic(JSON.stringify({ lost, garbage }));
      for (const tally of result.tallies) assertClean(tally);
      assert.deepEqual(dangling, []);
      assert.deepEqual(lost, []);
      assert.deepEqual(garbage, []);
      assert.deepEqual(deletedStillStored, []);
      assert.ok(kills >= 2, `only ${kills} kills`);

    } finally {
      stopping = true;
      await killer.catch(() => undefined);
      await berth.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
