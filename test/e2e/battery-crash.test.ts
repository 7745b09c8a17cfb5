// The concurrency battery against a real `berth serve` process, killed with SIGKILL at random
// moments and restarted on the same storage, with collection running every second.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { assertBatteryHeld, Client, COLLECTING_ENV, makeImage, runBattery, verifyBattery } from '../helpers/battery.js';
import { startBerth, type BerthProcess } from '../helpers/clients.js';
import { tempDir } from '../helpers/registry.js';

describe('concurrency battery with kill -9', () => {
  it('loses nothing acknowledged and leaves nothing dangling across SIGKILLs and restarts', async (t) => {
    const root = tempDir();
    let berth: BerthProcess = await startBerth(root, COLLECTING_ENV);
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
        berth = await startBerth(root, COLLECTING_ENV);
      }
    })();
    try {
      const result = await runBattery({ url: () => berth.url }, Number(process.env.BATTERY_MS ?? 12_000));
      stopping = true;
      await killer;
      const battery = result.live.length;
      result.live.push(keeper);
      const checker = new Client({ url: () => berth.url });
      const checked = await verifyBattery(checker, result);
      await berth.stop();
      await assertBatteryHeld(root, result, checked, { kills, live: battery }, (m) => t.diagnostic(m));
      assert.ok(kills >= 2, `only ${kills} kills`);

    } finally {
      stopping = true;
      await killer.catch(() => undefined);
      await berth.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
