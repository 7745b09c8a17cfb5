// `berth gc` (and registry:2's `garbage-collect`) refuses storage a registry is serving, seen
// through the lease the registry keeps in storage, unless --force; with --force it keeps what
// the grace period protects.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CLI, startBerth } from '../helpers/clients.js';
import { pushBlob, tempDir } from '../helpers/registry.js';

function gc(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], (err, stdout, stderr) => {
      resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, output: stdout + stderr });
    });
  });
}

describe('offline garbage collection', () => {
  it('refuses while a registry serves the storage, runs with --force keeping the grace period, and runs once it stops', async () => {
    const root = tempDir();
    const berth = await startBerth(root);
    try {
      const digest = await pushBlob(berth.url, 'offline/app', 'unreferenced');
      const refused = await gc(['gc', '--root', root]);
      assert.equal(refused.code, 2);
      assert.match(refused.output, /a registry is serving this storage .*--force/);
      const forced = await gc(['garbage-collect', '--root', root, '--force']);
      assert.equal(forced.code, 0, forced.output);
      assert.match(forced.output, /may lose blobs/);
      assert.equal((await fetch(`${berth.url}/v2/offline/app/blobs/${digest}`, { method: 'HEAD' })).status, 200, 'kept: used within the grace period');
      await berth.stop();
      const after = await gc(['gc', '--root', root]);
      assert.equal(after.code, 0, after.output);
      assert.match(after.output, /"blobsDeleted":1/);
    } finally {
      await berth.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
