// Notifications received by a real HTTP server while skopeo pushes and pulls; events spooled
// while the endpoint is down survive a restart; SIGTERM lets an upload in flight finish.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { tempDir } from '../helpers/registry.js';
import { IMAGE_TOOLS, needs, run, startBerth, testImages, type TestImages } from '../helpers/clients.js';

interface Envelope { events: { action: string; target: Record<string, unknown>; request: Record<string, unknown>; source: Record<string, unknown>; actor: Record<string, unknown> }[] }

/** A webhook receiver that can be told to fail. */
async function receiver(): Promise<{ url: string; received: Envelope['events']; contentTypes: string[]; auth: string[]; failing: { on: boolean }; server: Server }> {
  const received: Envelope['events'] = [];
  const contentTypes: string[] = [];
  const auth: string[] = [];
  const failing = { on: false };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (failing.on) { res.writeHead(503).end(); return; }
      contentTypes.push(req.headers['content-type'] ?? '');
      auth.push(req.headers.authorization ?? '');
      received.push(...(JSON.parse(body) as Envelope).events);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`, received, contentTypes, auth, failing, server };
}

async function until(check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function configWith(dir: string, url: string): string {
  const file = join(dir, 'config.yml');
  writeFileSync(file, [
    'version: 0.1',
    'notifications:',
    '  endpoints:',
    '    - name: listener',
    `      url: ${url}`,
    '      headers: {Authorization: [Bearer s3cret]}',
    '      timeout: 2s',
    '      threshold: 2',
    '      backoff: 200ms',
    '      ignore: {actions: []}',
    '',
  ].join('\n'));
  return file;
}

describe('notifications and shutdown', () => {
  let images: TestImages;
  const work = tempDir('berth-notify-');
  const skip = needs(...IMAGE_TOOLS);
  before(async () => {
    if (!skip) images = await testImages(join(work, 'img'));
  });

  it('sends registry:2 envelopes for push, pull, mount and delete while skopeo works', { skip }, async () => {
    const hook = await receiver();
    const berth = await startBerth(join(work, 'data1'), {}, ['--config', configWith(work, hook.url)]);
    try {
      await run('skopeo', ['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `oci:${images.dir}/oci/small:v1`, `docker://${berth.host}/notify/app:v1`]);
      const pulled = join(work, 'pulled');
      await run('mkdir', ['-p', pulled]);
      await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${berth.host}/notify/app:v1`, `dir:${pulled}`]);
      const manifest = await fetch(`${berth.url}/v2/notify/app/manifests/v1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      const config = (await manifest.json() as { config: { digest: string } }).config.digest;
      const mount = await fetch(`${berth.url}/v2/notify/copy/blobs/uploads/?mount=${config}&from=notify/app`, { method: 'POST' });
      assert.equal(mount.status, 201);
      await run('skopeo', ['delete', '--tls-verify=false', `docker://${berth.host}/notify/app:v1`]);
      await until(() => hook.received.some((e) => e.action === 'delete'));
      const manifestPush = hook.received.find((e) => e.action === 'push' && e.target.tag === 'v1')!;
      assert.ok(manifestPush, 'a push event for the tag');
      assert.equal(manifestPush.target.repository, 'notify/app');
      assert.equal(manifestPush.target.mediaType, 'application/vnd.oci.image.manifest.v1+json');
      assert.equal(manifestPush.target.digest, images.digests['small:v1']);
      assert.equal(manifestPush.request.method, 'PUT');
      assert.ok(manifestPush.source.instanceID);
      assert.ok(hook.received.filter((e) => e.action === 'push' && e.target.mediaType === 'application/octet-stream').length >= 2, 'blob pushes');
      assert.ok(hook.received.some((e) => e.action === 'pull' && e.target.tag === 'v1'), 'a manifest pull');
      const mounted = hook.received.find((e) => e.action === 'mount')!;
      assert.deepEqual([mounted.target.repository, mounted.target.fromRepository, mounted.target.digest], ['notify/copy', 'notify/app', config]);
      assert.ok(hook.contentTypes.every((t) => t === 'application/vnd.docker.distribution.events.v2+json'));
      assert.ok(hook.auth.every((a) => a === 'Bearer s3cret'));
    } finally {
      await berth.stop();
      hook.server.close();
    }
  });

  it('keeps events while the endpoint is down, across a restart, and delivers them later', { skip }, async () => {
    const hook = await receiver();
    hook.failing.on = true;
    const root = join(work, 'data2');
    const config = configWith(join(work), hook.url);
    const first = await startBerth(root, {}, ['--config', config]);
    await run('skopeo', ['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `oci:${images.dir}/oci/small:v2`, `docker://${first.host}/spooled/app:v2`]);
    await new Promise((r) => setTimeout(r, 500));
    await first.stop();
    assert.equal(hook.received.length, 0);
    hook.failing.on = false;
    const second = await startBerth(root, {}, ['--config', config]);
    try {
      await until(() => hook.received.some((e) => e.action === 'push' && e.target.tag === 'v2'));
      assert.equal(hook.received.find((e) => e.target.tag === 'v2')!.target.repository, 'spooled/app');
    } finally {
      await second.stop();
      hook.server.close();
    }
  });

  it('on SIGTERM finishes the upload in flight, refuses new connections, then exits', async () => {
    const berth = await startBerth(join(work, 'data3'));
    const data = randomBytes(4 << 20);
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const start = await fetch(`${berth.url}/v2/drain/x/blobs/uploads/`, { method: 'POST' });
    const location = new URL(start.headers.get('location')!);
    location.searchParams.set('digest', digest);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(location, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length } },
        (res) => { res.resume(); resolve(res.statusCode!); });
      req.on('error', reject);
      req.write(data.subarray(0, 1 << 20), () => {
        berth.child.kill('SIGTERM');
        setTimeout(() => req.end(data.subarray(1 << 20)), 300);
      });
    });
    assert.equal(status, 201);
    await new Promise<void>((resolve) => (berth.child.exitCode !== null ? resolve() : berth.child.once('exit', () => resolve())));
    assert.equal(berth.child.exitCode, 0);
    assert.match(berth.log(), /stopping: finishing requests in flight/);
    await assert.rejects(fetch(`${berth.url}/v2/`));
  });
});
