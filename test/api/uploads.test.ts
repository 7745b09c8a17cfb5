// Blob uploads and blob reads through the HTTP API, against a real server on a real data directory.
import { strict as assert } from 'node:assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { errorCodes, pushBlob, sha256, startRegistry, type TestRegistry } from '../helpers/registry.js';

const OCTET = { 'Content-Type': 'application/octet-stream' };

describe('blob uploads', () => {
  let r: TestRegistry;
  before(async () => { r = await startRegistry(); });
  after(async () => { await r.close(); });

  async function startUpload(name = 'up/test'): Promise<URL> {
    const res = await fetch(`${r.url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('range'), '0-0');
    assert.ok(res.headers.get('docker-upload-uuid'));
    return new URL(res.headers.get('location')!, r.url);
  }

  it('POST then PUT with the body stores the blob, deduplicated on disk', async () => {
    const digest = await pushBlob(r.url, 'up/one', 'hello blob');
    const again = await pushBlob(r.url, 'up/two', 'hello blob');
    assert.equal(digest, again);
    const head = await fetch(`${r.url}/v2/up/two/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '10');
    assert.equal(head.headers.get('docker-content-digest'), digest);
    assert.equal(head.headers.get('accept-ranges'), 'bytes');
    const hex = digest.slice(7);
    const blobDir = join(r.root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2));
    assert.deepEqual(readdirSync(blobDir), [hex]);
  });

  it('an empty blob: POST, then PUT ?digest= with no body, or a PATCH with none first', async () => {
    const empty = sha256(Buffer.alloc(0));
    for (const [name, patch] of [['up/empty', false], ['up/empty-patched', true]] as const) {
      const location = await startUpload(name);
      let next = location;
      if (patch) {
        const res = await fetch(location, { method: 'PATCH', body: new Uint8Array(0), headers: OCTET });
        assert.equal(res.status, 202);
        next = new URL(res.headers.get('location')!, r.url);
      }
      next.searchParams.set('digest', empty);
      const res = await fetch(next, { method: 'PUT' });
      assert.equal(res.status, 201, await res.text());
      const get = await fetch(`${r.url}/v2/${name}/blobs/${empty}`);
      assert.equal(get.status, 200);
      assert.equal(get.headers.get('content-length'), '0');
      assert.equal((await get.arrayBuffer()).byteLength, 0);
    }
  });

  it('monolithic POST ?digest= with a body answers 201', async () => {
    const body = Buffer.from('monolithic');
    const res = await fetch(`${r.url}/v2/up/mono/blobs/uploads/?digest=${sha256(body)}`, { method: 'POST', body, headers: OCTET });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('docker-content-digest'), sha256(body));
    const get = await fetch(`${r.url}/v2/up/mono/blobs/${sha256(body)}`);
    assert.equal(await get.text(), 'monolithic');
  });

  it('chunked PATCHes with Content-Range, status, then PUT without body', async () => {
    const location = await startUpload();
    const data = Buffer.from('0123456789abcdefghij');
    let res = await fetch(location, { method: 'PATCH', body: data.subarray(0, 10), headers: { ...OCTET, 'Content-Range': '0-9' } });
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('range'), '0-9');
    const next = new URL(res.headers.get('location')!, r.url);
    const status = await fetch(next);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), '0-9');
    // out of order: the chunk must start at 10
    res = await fetch(next, { method: 'PATCH', body: data.subarray(15), headers: { ...OCTET, 'Content-Range': '15-19' } });
    assert.equal(res.status, 416);
    assert.equal(res.headers.get('range'), '0-9');
    // repeated chunk
    res = await fetch(next, { method: 'PATCH', body: data.subarray(0, 10), headers: { ...OCTET, 'Content-Range': '0-9' } });
    assert.equal(res.status, 416);
    res = await fetch(next, { method: 'PATCH', body: data.subarray(10), headers: { ...OCTET, 'Content-Range': '10-19' } });
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('range'), '0-19');
    const done = new URL(res.headers.get('location')!, r.url);
    done.searchParams.set('digest', sha256(data));
    res = await fetch(done, { method: 'PUT' });
    assert.equal(res.status, 201);
    const get = await fetch(`${r.url}/v2/up/test/blobs/${sha256(data)}`);
    assert.equal(await get.text(), data.toString());
  });

  it('streams a PATCH without Content-Range or Content-Length (chunked transfer encoding)', async () => {
    const location = await startUpload();
    const parts = [Buffer.alloc(100_000, 1), Buffer.alloc(50_000, 2)];
    const body = new ReadableStream({
      start(controller) { for (const p of parts) controller.enqueue(p); controller.close(); },
    });
    const res = await fetch(location, { method: 'PATCH', body, duplex: 'half' } as RequestInit);
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('range'), '0-149999');
    const done = new URL(res.headers.get('location')!, r.url);
    done.searchParams.set('digest', sha256(Buffer.concat(parts)));
    assert.equal((await fetch(done, { method: 'PUT' })).status, 201);
  });

  it('a wrong digest is 400 DIGEST_INVALID and the upload stays usable', async () => {
    const location = await startUpload();
    const res = await fetch(location, { method: 'PATCH', body: 'abc', headers: OCTET });
    const next = new URL(res.headers.get('location')!, r.url);
    const wrong = new URL(next);
    wrong.searchParams.set('digest', sha256('abd'));
    const bad = await fetch(wrong, { method: 'PUT' });
    assert.equal(bad.status, 400);
    assert.deepEqual(await errorCodes(bad), ['DIGEST_INVALID']);
    assert.equal((await fetch(`${r.url}/v2/up/test/blobs/${sha256('abd')}`, { method: 'HEAD' })).status, 404);
    next.searchParams.set('digest', sha256('abc'));
    assert.equal((await fetch(next, { method: 'PUT' })).status, 201);
  });

  it('DELETE cancels an upload; it is then unknown', async () => {
    const location = await startUpload();
    assert.equal((await fetch(location, { method: 'DELETE' })).status, 204);
    const res = await fetch(location);
    assert.equal(res.status, 404);
    assert.deepEqual(await errorCodes(res), ['BLOB_UPLOAD_UNKNOWN']);
  });

  it('a forged upload state token is refused', async () => {
    const location = await startUpload();
    location.searchParams.set('_state', 'eyJuYW1lIjoieCJ9.forged');
    const res = await fetch(location);
    assert.equal(res.status, 400);
    assert.deepEqual(await errorCodes(res), ['BLOB_UPLOAD_INVALID']);
  });

  it('cross-repository mount answers 201 and links the blob; an absent blob starts an upload', async () => {
    const digest = await pushBlob(r.url, 'mount/src', 'mount me');
    let res = await fetch(`${r.url}/v2/mount/dst/blobs/uploads/?mount=${digest}&from=mount/src`, { method: 'POST' });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('docker-content-digest'), digest);
    assert.equal((await fetch(`${r.url}/v2/mount/dst/blobs/${digest}`, { method: 'HEAD' })).status, 200);
    // mount by digest alone, when the content is stored
    res = await fetch(`${r.url}/v2/mount/third/blobs/uploads/?mount=${digest}`, { method: 'POST' });
    assert.equal(res.status, 201);
    const absent = sha256('not stored anywhere');
    res = await fetch(`${r.url}/v2/mount/dst/blobs/uploads/?mount=${absent}&from=mount/src`, { method: 'POST' });
    assert.equal(res.status, 202);
    assert.ok(res.headers.get('location'));
  });

  it('serves single ranges with 206 and refuses unsatisfiable ones with 416', async () => {
    const digest = await pushBlob(r.url, 'range/x', '0123456789');
    let res = await fetch(`${r.url}/v2/range/x/blobs/${digest}`, { headers: { Range: 'bytes=2-5' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), 'bytes 2-5/10');
    assert.equal(await res.text(), '2345');
    res = await fetch(`${r.url}/v2/range/x/blobs/${digest}`, { headers: { Range: 'bytes=-3' } });
    assert.equal(await res.text(), '789');
    res = await fetch(`${r.url}/v2/range/x/blobs/${digest}`, { headers: { Range: 'bytes=7-' } });
    assert.equal(await res.text(), '789');
    res = await fetch(`${r.url}/v2/range/x/blobs/${digest}`, { headers: { Range: 'bytes=20-30' } });
    assert.equal(res.status, 416);
    assert.equal(res.headers.get('content-range'), 'bytes */10');
    res = await fetch(`${r.url}/v2/range/x/blobs/${digest}`, { headers: { Range: 'bytes=5-2' } });
    assert.equal(res.status, 416);
  });

  it('blob DELETE unlinks from one repository only', async () => {
    const digest = await pushBlob(r.url, 'del/a', 'shared content');
    await pushBlob(r.url, 'del/b', 'shared content');
    assert.equal((await fetch(`${r.url}/v2/del/a/blobs/${digest}`, { method: 'DELETE' })).status, 202);
    assert.equal((await fetch(`${r.url}/v2/del/a/blobs/${digest}`, { method: 'HEAD' })).status, 404);
    assert.equal((await fetch(`${r.url}/v2/del/b/blobs/${digest}`, { method: 'HEAD' })).status, 200);
  });

  it('leaves no partial blob behind when the client disconnects mid-upload', async () => {
    const location = await startUpload('abort/x');
    const controller = new AbortController();
    const body = new ReadableStream({
      start(c) { c.enqueue(Buffer.alloc(64 * 1024, 7)); setTimeout(() => controller.abort(), 50); },
    });
    await fetch(location, { method: 'PATCH', body, duplex: 'half', signal: controller.signal } as RequestInit).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const blobs = join(r.root, 'docker/registry/v2/blobs/sha256');
    const full = Buffer.alloc(64 * 1024, 7);
    const hex = sha256(full).slice(7);
    assert.equal(existsSync(join(blobs, hex.slice(0, 2), hex)), false);
    // the upload can be resumed from what was stored
    const status = await fetch(location);
    assert.equal(status.status, 204);
  });
});
