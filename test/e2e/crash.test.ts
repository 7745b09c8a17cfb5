// A berth process killed mid-upload loses nothing acknowledged and serves nothing partial.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/registry.js';
import { startBerth } from '../helpers/clients.js';

describe('crash safety', () => {
  it('SIGKILL during a PATCH leaves no blob; the upload resumes after a restart', async () => {
    const root = tempDir('berth-crash-');
    const data = randomBytes(8 << 20);
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const first = await startBerth(root);
    const start = await fetch(`${first.url}/v2/crash/x/blobs/uploads/`, { method: 'POST' });
    const location = new URL(start.headers.get('location')!);
    // send the first half, then kill the server while the request is still open
    await new Promise<void>((resolve) => {
      const req = request(location, { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length } });
      req.on('error', () => resolve());
      req.write(data.subarray(0, 4 << 20), () => {
        setTimeout(() => { first.child.kill('SIGKILL'); }, 200);
      });
      first.child.once('exit', () => { req.destroy(); resolve(); });
    });
    const blob = join(root, 'docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7));
    assert.equal(existsSync(blob), false);
    const second = await startBerth(root);
    try {
      const target = new URL(location.pathname + location.search, second.url);
      const status = await fetch(target);
      assert.equal(status.status, 204);
      const stored = Number(status.headers.get('range')!.split('-')[1]) + 1;
      assert.ok(stored <= 4 << 20, `stored ${stored}`);
      const patch = await fetch(target, {
        method: 'PATCH', body: data.subarray(stored),
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${stored}-${data.length - 1}` },
      });
      assert.equal(patch.status, 202);
      const done = new URL(patch.headers.get('location')!);
      done.searchParams.set('digest', digest);
      assert.equal((await fetch(done, { method: 'PUT' })).status, 201);
      const get = await fetch(`${second.url}/v2/crash/x/blobs/${digest}`);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), data);
    } finally {
      await second.stop();
    }
  });
});
