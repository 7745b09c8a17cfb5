// Resource exhaustion: slow clients, floods of uploads and logins, huge manifests, a dead
// notification endpoint. Each answer is a clear 4xx, or 429/503 with Retry-After, and the
// registry keeps serving everyone else.
import { strict as assert } from 'node:assert';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { createApp } from '../../src/app.js';
import { HtpasswdFile } from '../../src/auth/htpasswd.js';
import { loadConfig } from '../../src/config/load.js';
import { closeConnections } from '../../src/http/listener.js';
import { Metrics } from '../../src/ops/metrics.js';
import { Notifier } from '../../src/ops/notifications.js';
import type { RegistryEvent } from '../../src/ops/events.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { MemoryDriver } from '../../src/storage/memory.js';
import { run } from '../helpers/clients.js';
import { makeHtpasswd } from '../helpers/pki.js';
import { openRequest, readUntilClose } from '../helpers/raw-http.js';
import { errorCodes, pushBlob, sha256, startRegistry, tempDir } from '../helpers/registry.js';

const OCTET = { 'Content-Type': 'application/octet-stream' };
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

/** A registry whose log lines are kept, for the tests that read the access log. */
async function startLogged(overrides: Record<string, unknown> = {}, driver?: StorageDriver) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const root = tempDir();
  const config = loadConfig({ env: {}, overrides: { 'storage.filesystem.rootdirectory': root, 'http.secret': 's', ...overrides } });
  const app = createApp(config, pino({ level: 'info' }, sink), driver);
  await app.start();
  await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    url, app, lines,
    close: async () => {
      await app.stop();
      closeConnections(app.server, true);
      await new Promise<void>((resolve) => app.server.close(() => resolve()));
    },
  };
}

function uploadHead(url: string, location: string, length: number): string {
  const target = new URL(location, url);
  return `PATCH ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${length}`;
}

async function startUpload(url: string, name: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: 'POST', headers });
  assert.equal(res.status, 202, await res.clone().text());
  return res.headers.get('location')!;
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('slow clients', () => {
  it('a request body that stalls is answered 408 and closed after http.timeouts.idle', async () => {
    const r = await startRegistry({ overrides: { 'http.timeouts.idle': '1s' } });
    try {
      const location = await startUpload(r.url, 'slow/body');
      const socket = await openRequest(r.url, uploadHead(r.url, location, 100), Buffer.from('x'));
      const started = Date.now();
      const { text, closed } = await readUntilClose(socket, 6000);
      assert.ok(closed, 'the connection was closed');
      assert.match(text, /^HTTP\/1\.1 408 /);
      assert.ok(Date.now() - started < 4000);
      // the byte that arrived is kept, and the upload is free again: it resumes
      const status = await fetch(new URL(location, r.url));
      assert.equal(status.status, 204);
      assert.equal(status.headers.get('range'), '0-0');
      const resumed = await fetch(new URL(status.headers.get('location')!, r.url), {
        method: 'PATCH', body: 'yz', headers: { ...OCTET, 'Content-Range': '1-2' }, signal: AbortSignal.timeout(3000),
      });
      assert.equal(resumed.status, 202);
      assert.equal(resumed.headers.get('range'), '0-2');
    } finally {
      await r.close();
    }
  });

  it('a header block that never completes is cut off after http.timeouts.headers', async () => {
    const r = await startRegistry({ overrides: { 'http.timeouts.headers': '1s' } });
    try {
      const socket = await openRequest(r.url, 'GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: 1', undefined, true);
      const started = Date.now();
      const { text, closed } = await readUntilClose(socket, 6000);
      assert.ok(closed);
      assert.match(text, /^HTTP\/1\.1 408 /);
      assert.ok(Date.now() - started < 4000);
    } finally {
      await r.close();
    }
  });

  it('headers that stop arriving are answered 408 by the idle timeout too; an idle keep-alive connection gets nothing', async () => {
    const r = await startRegistry({ overrides: { 'http.timeouts.idle': '1s' } });
    try {
      const stalled = await openRequest(r.url, 'GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: 1', undefined, true);
      const idle = await openRequest(r.url, 'GET /v2/ HTTP/1.1\r\nHost: x');
      const [a, b] = await Promise.all([readUntilClose(stalled, 6000), readUntilClose(idle, 2500)]);
      assert.ok(a.closed);
      assert.match(a.text, /^HTTP\/1\.1 408 /);
      assert.match(b.text, /^HTTP\/1\.1 200 /);
      assert.equal(b.text.match(/HTTP\/1\.1/g)!.length, 1, 'no unsolicited answer on a keep-alive connection');
      idle.destroy();
    } finally {
      await r.close();
    }
  });

  it('uploads beyond http.limits.uploads get 429 TOOMANYREQUESTS with Retry-After, and slots free up', async () => {
    const r = await startRegistry({ overrides: { 'http.limits.uploads': 3 } });
    try {
      const held = [];
      for (let i = 0; i < 3; i++) {
        const location = await startUpload(r.url, 'slow/many');
        held.push(await openRequest(r.url, uploadHead(r.url, location, 1000), Buffer.from('x')));
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      const extra = await fetch(`${r.url}/v2/slow/many/blobs/uploads/`, { method: 'POST' });
      assert.equal(extra.status, 429);
      assert.deepEqual(await errorCodes(extra), ['TOOMANYREQUESTS']);
      assert.ok(Number(extra.headers.get('retry-after')) > 0);
      // everything else goes on
      assert.equal((await fetch(`${r.url}/v2/`)).status, 200);
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await pushBlob(r.url, 'slow/many', 'after the flood');
    } finally {
      await r.close();
    }
  });

  it('running out of file descriptors is 503 UNAVAILABLE with Retry-After, never 500', async () => {
    const memory = new MemoryDriver();
    const emfile = Object.assign(new Error('EMFILE: too many open files, open'), { code: 'EMFILE', errno: -24, syscall: 'open' });
    const driver: StorageDriver = Object.assign(Object.create(memory) as StorageDriver, {
      name: 'inmemory',
      writer: async (path: string, append: boolean) => {
        if (path.endsWith('/data') && append) throw emfile;
        return memory.writer(path, append);
      },
    });
    const r = await startRegistry({ driver });
    try {
      const location = await startUpload(r.url, 'fd/app');
      const res = await fetch(new URL(location, r.url), { method: 'PATCH', body: 'abc', headers: OCTET });
      assert.equal(res.status, 503);
      assert.deepEqual(await errorCodes(res), ['UNAVAILABLE']);
      assert.ok(Number(res.headers.get('retry-after')) > 0);
    } finally {
      await r.close();
    }
  });
});

describe('huge manifests', () => {
  const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256('{}'), size: 2 };
  const layer = (i: number) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(`layer ${i}`), size: 7 });
  const put = (url: string, name: string, doc: unknown, type = OCI_MANIFEST) => fetch(`${url}/v2/${name}/manifests/v1`, {
    method: 'PUT', body: JSON.stringify(doc), headers: { 'Content-Type': type },
  });

  it('refuses more than 1,000 layers or index children with 400 MANIFEST_INVALID, before looking at storage', async () => {
    const r = await startRegistry();
    try {
      await pushBlob(r.url, 'huge/app', '{}');
      const layers = Array.from({ length: 1001 }, (_, i) => layer(i));
      let res = await put(r.url, 'huge/app', { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers });
      assert.equal(res.status, 400);
      const body = (await res.json()) as { errors: { code: string; message: string }[] };
      assert.deepEqual(body.errors.map((e) => e.code), ['MANIFEST_INVALID']);
      assert.match(body.errors[0]!.message, /1,?000/);
      const manifests = Array.from({ length: 1001 }, (_, i) => ({ mediaType: OCI_MANIFEST, digest: sha256(`m ${i}`), size: 10 }));
      res = await put(r.url, 'huge/app', { schemaVersion: 2, mediaType: OCI_INDEX, manifests }, OCI_INDEX);
      assert.equal(res.status, 400);
      assert.deepEqual(await errorCodes(res), ['MANIFEST_INVALID']);
      // at the limit, the same layer a thousand times over is fine
      const same = await pushBlob(r.url, 'huge/app', 'layer 0');
      res = await put(r.url, 'huge/app', { schemaVersion: 2, mediaType: OCI_MANIFEST, config,
        layers: Array.from({ length: 1000 }, () => ({ ...layer(0), digest: same })) });
      assert.equal(res.status, 201);
    } finally {
      await r.close();
    }
  });

  it('reports only the first 10 missing blobs, says how many more, and checks at most 16 at a time', async () => {
    const memory = new MemoryDriver();
    let inFlight = 0;
    let peak = 0;
    const driver: StorageDriver = Object.assign(Object.create(memory) as StorageDriver, {
      name: 'inmemory',
      getContent: async (path: string) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        try {
          await new Promise((resolve) => setTimeout(resolve, 1));
          return await memory.getContent(path);
        } finally {
          inFlight--;
        }
      },
    });
    const r = await startRegistry({ driver });
    try {
      await pushBlob(r.url, 'huge/missing', '{}');
      peak = 0;
      const res = await put(r.url, 'huge/missing', { schemaVersion: 2, mediaType: OCI_MANIFEST, config,
        layers: Array.from({ length: 900 }, (_, i) => layer(i)) });
      assert.equal(res.status, 400);
      const text = await res.text();
      const errors = (JSON.parse(text) as { errors: { code: string; message: string }[] }).errors;
      assert.equal(errors.length, 10);
      assert.ok(errors.every((e) => e.code === 'MANIFEST_BLOB_UNKNOWN'));
      assert.match(errors[9]!.message, /890 more/);
      assert.ok(text.length < 4000, `error body is ${text.length} bytes`);
      assert.ok(peak <= 16, `${peak} reference checks ran at once`);
    } finally {
      await r.close();
    }
  });
});

describe('password checks', () => {
  async function htpasswdWithCost(cost: number, users: Record<string, string>): Promise<string> {
    const file = join(tempDir('berth-pw-'), 'htpasswd');
    let first = true;
    for (const [user, password] of Object.entries(users)) {
      await run('htpasswd', [first ? '-Bbc' : '-Bb', '-C', String(cost), file, user, password]);
      first = false;
    }
    return file;
  }

  it('a flood of unknown users does not slow a valid user down (bcrypt runs off the event loop)', async () => {
    const file = await htpasswdWithCost(10, { alice: 'right' });
    const r = await startRegistry({ overrides: { auth: { htpasswd: { realm: 'r', path: file } } } });
    try {
      assert.equal((await fetch(`${r.url}/v2/`, { headers: basic('alice', 'right') })).status, 200);
      const flood = Array.from({ length: 100 }, (_, i) => fetch(`${r.url}/v2/`, { headers: basic(`nobody${i}`, 'guess') })
        .then(async (res) => ({ status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.text() })));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const latencies: number[] = [];
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        assert.equal((await fetch(`${r.url}/v2/`, { headers: basic('alice', 'right') })).status, 200);
        latencies.push(performance.now() - started);
      }
      const answers = await Promise.all(flood);
      assert.ok(Math.max(...latencies) < 250, `valid user's latencies under the flood: ${latencies.map(Math.round).join(', ')} ms`);
      for (const a of answers) {
        assert.ok(a.status === 401 || a.status === 503, `flood answer ${a.status}`);
        if (a.status === 503) assert.ok(Number(a.retryAfter) > 0);
      }
    } finally {
      await r.close();
    }
  });

  it('answers 503 with Retry-After once the password-check queue is full', async () => {
    const file = await htpasswdWithCost(10, { alice: 'right' });
    const r = await startRegistry({ overrides: { auth: { htpasswd: { realm: 'r', path: file } },
      'http.limits.passwordworkers': 1, 'http.limits.passwordqueue': 4 } });
    try {
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => fetch(`${r.url}/v2/`, { headers: basic(`u${i}`, 'x') })));
      const statuses = answers.map((a) => a.status);
      assert.ok(statuses.includes(503), statuses.join(','));
      assert.ok(statuses.includes(401), statuses.join(','));
      const busy = answers.find((a) => a.status === 503)!;
      assert.deepEqual(await errorCodes(busy), ['UNAVAILABLE']);
      assert.ok(Number(busy.headers.get('retry-after')) > 0);
    } finally {
      await r.close();
    }
  });

  it('a wrong password for a real user costs the same as an unknown user (no enumeration by timing)', async () => {
    const file = join(tempDir('berth-enum-'), 'htpasswd');
    await makeHtpasswd(file, { alice: 'right', bob: 'other' }); // htpasswd -B: cost 5
    const users = new HtpasswdFile(file);
    const time = async (user: string) => {
      const samples: number[] = [];
      for (let i = 0; i < 9; i++) {
        const started = performance.now();
        assert.equal(await users.verify(user, `wrong${i}`), false);
        samples.push(performance.now() - started);
      }
      return samples.sort((a, b) => a - b)[4]!;
    };
    await time('alice');
    const known = await time('alice');
    const unknown = await time('nobody');
    const ratio = unknown / known;
    assert.ok(ratio > 1 / 3 && ratio < 3, `unknown user ${unknown.toFixed(1)} ms, wrong password ${known.toFixed(1)} ms`);
  });
});

describe('login throttle', () => {
  it('a valid login between guesses does not reset the guessed user\'s failures', async () => {
    const file = join(tempDir('berth-thr-'), 'htpasswd');
    await makeHtpasswd(file, { alice: 'secret', bob: 'bobpw' });
    const r = await startRegistry({ overrides: { auth: { htpasswd: { realm: 'r', path: file } } } });
    try {
      const started = Date.now();
      for (let i = 0; i < 6; i++) {
        assert.equal((await fetch(`${r.url}/v2/`, { headers: basic('alice', `guess${i}`) })).status, 401);
        assert.equal((await fetch(`${r.url}/v2/`, { headers: basic('bob', 'bobpw') })).status, 200);
      }
      // three free failures, then 0.25 s, 0.5 s and 1 s
      assert.ok(Date.now() - started >= 1500, `6 interleaved guesses took ${Date.now() - started} ms`);
      // bob was never slowed down by alice's failures
      const t = Date.now();
      assert.equal((await fetch(`${r.url}/v2/`, { headers: basic('bob', 'bobpw') })).status, 200);
      assert.ok(Date.now() - t < 200);
    } finally {
      await r.close();
    }
  });

  it('guesses sent in parallel are counted as they arrive', async () => {
    const file = join(tempDir('berth-par-'), 'htpasswd');
    await makeHtpasswd(file, { alice: 'secret' });
    const r = await startRegistry({ overrides: { auth: { htpasswd: { realm: 'r', path: file } } } });
    try {
      const started = Date.now();
      const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => fetch(`${r.url}/v2/`, { headers: basic('alice', `p${i}`) })));
      assert.ok(answers.every((a) => a.status === 401));
      assert.ok(Date.now() - started >= 1000, `6 parallel guesses took ${Date.now() - started} ms`);
    } finally {
      await r.close();
    }
  });
});

describe('notification spool', () => {
  const event = (i: number): RegistryEvent => ({
    id: `e${i}`, timestamp: new Date().toISOString(), action: 'pull',
    target: { repository: 'spool/app', digest: sha256(String(i)), mediaType: OCI_MANIFEST },
    request: { id: `r${i}` }, actor: {}, source: { addr: 'x', instanceID: 'y' },
  });
  const endpoints = (extra: Record<string, unknown>) => loadConfig({ env: {}, overrides: {
    notifications: { endpoints: [{ name: 'down', url: 'http://127.0.0.1:9/events', timeout: '200ms', backoff: '10s', threshold: 1, ...extra }] },
  } }).notifications;

  function capture() {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, new Writable({ write(c, _e, done) { lines.push(JSON.parse(c.toString()) as Record<string, unknown>); done(); } }));
    return { log, lines };
  }

  it('keeps at most maxevents events for a dead endpoint, counts the rest as dropped and logs once', async () => {
    const root = tempDir();
    const metrics = new Metrics();
    const { log, lines } = capture();
    const notifier = new Notifier(endpoints({ maxevents: 50 }), new FilesystemDriver(root), log, metrics);
    await notifier.start();
    for (let i = 0; i < 200; i++) notifier.publish(event(i));
    await notifier.stop();
    const spooled = readdirSync(join(root, 'berth/notifications/down'));
    assert.ok(spooled.length <= 50, `${spooled.length} spool files`);
    const text = await metrics.registry.metrics();
    assert.match(text, /berth_notifications_dropped_total\{endpoint="down",reason="full"\} 150/);
    assert.match(text, /berth_notifications_pending\{endpoint="down"\} ([0-9]|[1-4][0-9]|50)\n/);
    assert.equal(lines.filter((l) => /dropp/.test(String(l.msg))).length, 1);
  });

  it('drops events older than maxage instead of delivering them', async () => {
    const root = tempDir();
    const dir = join(root, 'berth/notifications/down');
    mkdirSync(dir, { recursive: true });
    const old = Date.now() - 2 * 3_600_000;
    for (let i = 0; i < 5; i++) {
      writeFileSync(join(dir, `${old.toString().padStart(15, '0')}-${String(i).padStart(6, '0')}-x.json`), JSON.stringify({ events: [event(i)] }));
    }
    const metrics = new Metrics();
    const { log } = capture();
    const notifier = new Notifier(endpoints({ maxage: '1h' }), new FilesystemDriver(root), log, metrics);
    await notifier.start();
    await until(() => readdirSync(dir).length === 0);
    await notifier.stop();
    assert.match(await metrics.registry.metrics(), /berth_notifications_dropped_total\{endpoint="down",reason="expired"\} 5/);
  });
});

describe('access log', () => {
  it('an aborted PATCH is logged as closed by the client, with the bytes that arrived', async () => {
    const r = await startLogged();
    try {
      const location = await startUpload(r.url, 'log/abort');
      const socket = await openRequest(r.url, uploadHead(r.url, location, 20 << 20), Buffer.alloc(4 << 20, 7));
      await new Promise((resolve) => setTimeout(resolve, 200));
      socket.destroy();
      await until(() => r.lines.some((l) => l.method === 'PATCH'));
      const line = r.lines.find((l) => l.method === 'PATCH')!;
      assert.equal(line.outcome, 'client closed');
      assert.notEqual(line.status, 200);
      const bytesIn = Number(line.bytesIn);
      assert.ok(bytesIn >= (4 << 20) - 65_536 && bytesIn <= (4 << 20) + 1024, `bytesIn ${bytesIn}`);
    } finally {
      await r.close();
    }
  });

  it('a download the registry fails half-way is logged as failed while answering, not as closed by the client', async () => {
    const memory = new MemoryDriver();
    const driver: StorageDriver = Object.assign(Object.create(memory) as StorageDriver, {
      name: 'inmemory',
      copyTo: async (_path: string, dest: Writable) => {
        await new Promise<void>((resolve) => dest.write(Buffer.alloc(10), () => resolve()));
        throw new Error('the disk went away');
      },
    });
    const r = await startLogged({}, driver);
    try {
      const digest = await pushBlob(r.url, 'log/broken', 'x'.repeat(100));
      await fetch(`${r.url}/v2/log/broken/blobs/${digest}`).then((res) => res.arrayBuffer()).catch(() => undefined);
      await until(() => r.lines.some((l) => l.method === 'GET' && l.route === 'blob'));
      assert.equal(r.lines.find((l) => l.method === 'GET' && l.route === 'blob')!.outcome, 'failed while answering');
    } finally {
      await r.close();
    }
  });

  it('a failed login is logged with the user name tried, never the password', async () => {
    const file = join(tempDir('berth-logauth-'), 'htpasswd');
    await makeHtpasswd(file, { alice: 'secret' });
    const r = await startLogged({ auth: { htpasswd: { realm: 'r', path: file } } });
    try {
      assert.equal((await fetch(`${r.url}/v2/`, { headers: basic('alice', 'hunter2') })).status, 401);
      await until(() => r.lines.some((l) => l.msg === 'request'));
      const line = r.lines.find((l) => l.msg === 'request')!;
      assert.equal(line.status, 401);
      assert.equal(line.triedUser, 'alice');
      assert.doesNotMatch(JSON.stringify(r.lines), /hunter2/);
    } finally {
      await r.close();
    }
  });
});
