// Operations endpoints: metrics, health, request ids, the debug listener, log formats.
import { strict as assert } from 'node:assert';
import { rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { collectOffline as collectGarbage } from '../../src/registry/maintenance.js';
import { createLogger } from '../../src/log.js';
import { afterTheWrites, pushImage, startRegistry, tempDir } from '../helpers/registry.js';

function metricValue(text: string, pattern: RegExp): number {
  const line = text.split('\n').find((l) => pattern.test(l));
  assert.ok(line, `no metric line matches ${pattern}`);
  return Number(line.split(' ').pop());
}

describe('operations endpoints', () => {
  it('exposes Prometheus metrics on the main listener by default', async () => {
    const r = await startRegistry();
    try {
      const image = await pushImage(r.url, 'ops/app', 'v1');
      await fetch(`${r.url}/v2/ops/app/manifests/v1`);
      await fetch(`${r.url}/v2/ops/app/blobs/${image.layers[0]}`);
      await fetch(`${r.url}/v2/ops/app/manifests/missing`);
      const res = await fetch(`${r.url}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type')!, /^text\/plain/);
      const text = await res.text();
      assert.equal(metricValue(text, /^berth_http_requests_total\{route="manifest",method="PUT",status="201"\}/), 1);
      assert.equal(metricValue(text, /^berth_http_requests_total\{route="manifest",method="GET",status="404"\}/), 1);
      assert.ok(metricValue(text, /^berth_http_request_duration_seconds_count\{route="manifest",method="GET"\}/) >= 2);
      assert.ok(metricValue(text, /^berth_http_request_bytes_total\{route="upload"\}/) > 0);
      assert.ok(metricValue(text, /^berth_http_response_bytes_total\{route="blob"\}/) > 0);
      assert.ok(metricValue(text, /^berth_storage_operation_duration_seconds_count\{driver="filesystem",operation="putcontent"\}/) > 0);
      assert.equal(metricValue(text, /^berth_uploads_in_flight /), 0);
      assert.match(text, /^berth_process_resident_memory_bytes /m);
    } finally {
      await r.close();
    }
  });

  it('reports the last garbage collection in the metrics', async () => {
    const root = tempDir();
    const r = await startRegistry({ root });
    try {
      const image = await pushImage(r.url, 'ops/gc', 'v1');
      await fetch(`${r.url}/v2/ops/gc/manifests/${image.digest}`, { method: 'DELETE' });
      await afterTheWrites();
      await collectGarbage(new FilesystemDriver(root), { dryRun: false, deleteUntagged: false });
      const text = await (await fetch(`${r.url}/metrics`)).text();
      assert.equal(metricValue(text, /^berth_gc_last_blobs_deleted /), 3);
      assert.ok(metricValue(text, /^berth_gc_last_run_timestamp_seconds /) > Date.now() / 1000 - 60);
    } finally {
      await r.close();
    }
  });

  it('moves metrics and /debug/health to http.debug.addr, or turns metrics off', async () => {
    const { createServer } = await import('node:net');
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as AddressInfo).port; s.close(() => resolve(p)); });
    });
    const r = await startRegistry({ overrides: { 'http.debug': { addr: `127.0.0.1:${port}` } } });
    await new Promise<void>((resolve) => r.app.debugListener!.listen(port, '127.0.0.1', resolve));
    try {
      assert.equal((await fetch(`${r.url}/metrics`)).status, 404);
      assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 200);
      const health = await fetch(`http://127.0.0.1:${port}/debug/health`);
      assert.deepEqual([health.status, await health.json()], [200, {}]);
    } finally {
      await r.close();
    }
    const off = await startRegistry({ overrides: { 'http.debug.prometheus.enabled': false } });
    try {
      assert.equal((await fetch(`${off.url}/metrics`)).status, 404);
    } finally {
      await off.close();
    }
  });

  it('answers /healthz, and /readyz according to storage', async () => {
    const root = tempDir();
    const r = await startRegistry({ root });
    try {
      assert.deepEqual(await (await fetch(`${r.url}/healthz`)).json(), { status: 'ok' });
      const ready = await fetch(`${r.url}/readyz`);
      assert.deepEqual([ready.status, ((await ready.json()) as { status: string }).status], [200, 'ready']);
      rmSync(root, { recursive: true, force: true });
      writeFileSync(root, 'not a directory'); // storage can no longer answer
      const broken = await fetch(`${r.url}/readyz`);
      assert.equal(broken.status, 503);
      assert.equal((await fetch(`${r.url}/healthz`)).status, 200);
    } finally {
      await r.close();
      rmSync(root, { force: true });
    }
  });

  it('echoes a request id, or makes one', async () => {
    const r = await startRegistry();
    try {
      assert.equal((await fetch(`${r.url}/v2/`, { headers: { 'X-Request-Id': 'abc-123' } })).headers.get('x-request-id'), 'abc-123');
      assert.match((await fetch(`${r.url}/v2/`)).headers.get('x-request-id')!, /^[0-9a-f-]{36}$/);
    } finally {
      await r.close();
    }
  });
});

describe('log formats', () => {
  function capture(formatter: 'text' | 'json'): Promise<string> {
    let out = '';
    const sink = new Writable({ write(chunk, _e, done) { out += chunk; done(); } });
    const log = createLogger({ log: { level: 'info', formatter, fields: {}, accessLog: true } }, sink);
    log.info({ route: 'manifest', secret: 'hunter2', password: 'pw' }, 'hello');
    return new Promise((resolve) => setTimeout(() => resolve(out), 50));
  }

  it('writes JSON lines, with secrets redacted', async () => {
    const line = JSON.parse((await capture('json')).trim()) as Record<string, unknown>;
    assert.equal(line.msg, 'hello');
    assert.equal(line.level, 'info');
    assert.equal(line.secret, '[Redacted]');
    assert.equal(line.password, '[Redacted]');
  });

  it('writes readable lines with log.formatter: text', async () => {
    const text = await capture('text');
    assert.match(text, /INFO.*hello/);
    assert.throws(() => JSON.parse(text));
    assert.doesNotMatch(text, /hunter2/);
  });
});
