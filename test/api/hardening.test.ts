// Protocol details: what the OCI conformance suite, RFC 9110 and registry:2 expect at the edges
// (invalid references, unknown repositories, closing chunks, oversized manifests, Host headers,
// header blocks, multiple ranges, upload state tokens).
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { errorCodes, pushBlob, pushImage, sha256, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { rawRequest } from '../helpers/raw-http.js';

const OCTET = { 'Content-Type': 'application/octet-stream' };
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('protocol details', () => {
  let r: TestRegistry;
  let host: string;
  before(async () => {
    r = await startRegistry();
    host = new URL(r.url).host;
    await pushImage(r.url, 'proto/app', 'v1');
  });
  after(async () => { await r.close(); });

  async function startUpload(name: string): Promise<URL> {
    const res = await fetch(`${r.url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
    assert.equal(res.status, 202);
    return new URL(res.headers.get('location')!, r.url);
  }

  async function uploadSize(location: URL): Promise<string | null> {
    const res = await fetch(location);
    assert.equal(res.status, 204);
    return res.headers.get('range');
  }

  describe('manifest references', () => {
    it('GET and HEAD of a reference that is neither a tag nor a digest answer 404 MANIFEST_UNKNOWN', async () => {
      for (const reference of ['.INVALID_MANIFEST_NAME', '-dash', 'x'.repeat(200), 'sha256:nothex']) {
        const res = await fetch(`${r.url}/v2/proto/app/manifests/${reference}`);
        assert.equal(res.status, 404, reference);
        assert.deepEqual(await errorCodes(res), ['MANIFEST_UNKNOWN']);
        const head = await fetch(`${r.url}/v2/proto/app/manifests/${reference}`, { method: 'HEAD' });
        assert.equal(head.status, 404, `HEAD ${reference}`);
      }
    });

    it('PUT with an invalid tag stays 400', async () => {
      const res = await fetch(`${r.url}/v2/proto/app/manifests/.INVALID_MANIFEST_NAME`, {
        method: 'PUT', body: '{}', headers: { 'Content-Type': OCI_MANIFEST },
      });
      assert.equal(res.status, 400);
      assert.ok(['TAG_INVALID', 'MANIFEST_INVALID'].includes((await errorCodes(res))[0]!));
    });
  });

  describe('tags/list', () => {
    it('answers 404 NAME_UNKNOWN for a repository that does not exist', async () => {
      for (const name of ['proto/nothing', 'proto', 'proto/app/deeper']) {
        const res = await fetch(`${r.url}/v2/${name}/tags/list`);
        assert.equal(res.status, 404, name);
        assert.deepEqual(await errorCodes(res), ['NAME_UNKNOWN']);
      }
    });

    it('answers 404 NAME_UNKNOWN for a repository that holds only uploads or blobs', async () => {
      await startUpload('proto/uploading');
      await pushBlob(r.url, 'proto/blobsonly', 'just a blob');
      for (const name of ['proto/uploading', 'proto/blobsonly']) {
        const res = await fetch(`${r.url}/v2/${name}/tags/list`);
        assert.equal(res.status, 404, name);
        assert.deepEqual(await errorCodes(res), ['NAME_UNKNOWN']);
      }
    });

    it('answers 200 with no tags when every tag was deleted but manifests remain', async () => {
      await pushImage(r.url, 'proto/untagged', 'only');
      assert.equal((await fetch(`${r.url}/v2/proto/untagged/manifests/only`, { method: 'DELETE' })).status, 202);
      const res = await fetch(`${r.url}/v2/proto/untagged/tags/list`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { name: 'proto/untagged', tags: [] });
    });
  });

  describe('uploads', () => {
    it('a closing PUT whose Content-Range does not start at the upload size is 416 and changes nothing', async () => {
      const location = await startUpload('proto/range');
      const first = Buffer.from('0123456789');
      let res = await fetch(location, { method: 'PATCH', body: first, headers: { ...OCTET, 'Content-Range': '0-9' } });
      assert.equal(res.status, 202);
      const next = new URL(res.headers.get('location')!, r.url);
      const last = Buffer.from('xyz');
      const put = new URL(next);
      put.searchParams.set('digest', sha256(Buffer.concat([first, last])));
      res = await fetch(put, { method: 'PUT', body: last, headers: { ...OCTET, 'Content-Range': '5-7' } });
      assert.equal(res.status, 416);
      assert.deepEqual(await errorCodes(res), ['RANGE_INVALID']);
      assert.equal(res.headers.get('range'), '0-9');
      assert.equal(await uploadSize(next), '0-9');
      // the right range then completes it
      res = await fetch(put, { method: 'PUT', body: last, headers: { ...OCTET, 'Content-Range': '10-12' } });
      assert.equal(res.status, 201);
    });

    it('a forged _state whose MAC holds a multi-byte character is 400 BLOB_UPLOAD_INVALID', async () => {
      const location = await startUpload('proto/forged');
      const state = location.searchParams.get('_state')!;
      const forged = new URL(location);
      forged.searchParams.set('_state', `${state.slice(0, -1)}é`);
      for (const method of ['GET', 'PATCH', 'PUT', 'DELETE']) {
        const url = new URL(forged);
        if (method === 'PUT') url.searchParams.set('digest', sha256(''));
        const res = await fetch(url, { method, ...(method === 'PATCH' ? { body: 'x', headers: OCTET } : {}) });
        assert.equal(res.status, 400, method);
        assert.deepEqual(await errorCodes(res), ['BLOB_UPLOAD_INVALID']);
      }
      assert.equal(await uploadSize(location), '0-0');
    });

    it('PATCH, PUT, GET and DELETE of an upload without _state are 400 BLOB_UPLOAD_INVALID and change nothing', async () => {
      const location = await startUpload('proto/nostate');
      const bare = new URL(location);
      bare.search = '';
      let res = await fetch(bare, { method: 'PATCH', body: 'abc', headers: OCTET });
      assert.equal(res.status, 400);
      assert.deepEqual(await errorCodes(res), ['BLOB_UPLOAD_INVALID']);
      res = await fetch(`${bare}?digest=${sha256('abc')}`, { method: 'PUT', body: 'abc', headers: OCTET });
      assert.equal(res.status, 400);
      assert.deepEqual(await errorCodes(res), ['BLOB_UPLOAD_INVALID']);
      assert.equal((await fetch(`${r.url}/v2/proto/nostate/blobs/${sha256('abc')}`, { method: 'HEAD' })).status, 404);
      res = await fetch(bare);
      assert.equal(res.status, 400);
      res = await fetch(bare, { method: 'DELETE' });
      assert.equal(res.status, 400);
      assert.equal(await uploadSize(location), '0-0');
    });
  });

  describe('oversized manifests', () => {
    for (const [label, size, chunked] of [['5 MiB', 5 << 20, false], ['50 MiB', 50 << 20, false], ['50 MiB chunked', 50 << 20, true]] as const) {
      it(`a ${label} manifest gets 413 MANIFEST_TOO_LARGE, delivered before the connection closes`, async () => {
        const framing = chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${size}`;
        const res = await rawRequest(r.url, `PUT /v2/proto/huge/manifests/v1 HTTP/1.1\r\nHost: ${host}\r\nContent-Type: ${OCI_MANIFEST}\r\n${framing}`,
          { body: Buffer.alloc(size, 0x20), chunked, writeWholeBody: true });
        assert.equal(res.status, 413);
        assert.equal(JSON.parse(res.body).errors[0].code, 'MANIFEST_TOO_LARGE');
        assert.equal(res.error, undefined, 'the client could send its whole body without a reset');
      });
    }

    it('fetch sees the 413 too, and the registry stays usable', async () => {
      const res = await fetch(`${r.url}/v2/proto/huge/manifests/v1`, { method: 'PUT', body: Buffer.alloc(5 << 20, 0x20), headers: { 'Content-Type': OCI_MANIFEST } });
      assert.equal(res.status, 413);
      assert.deepEqual(await errorCodes(res), ['MANIFEST_TOO_LARGE']);
      assert.equal((await fetch(`${r.url}/v2/proto/huge/tags/list`)).status, 404);
    });
  });

  describe('HTTP framing (RFC 9110)', () => {
    it('two Host headers are 400', async () => {
      const res = await rawRequest(r.url, `GET /v2/ HTTP/1.1\r\nHost: ${host}\r\nHost: other.example`);
      assert.equal(res.status, 400);
      assert.equal(JSON.parse(res.body).errors[0].code, 'UNSUPPORTED');
    });

    it('a Host with a space in it is 400', async () => {
      const res = await rawRequest(r.url, 'GET /v2/ HTTP/1.1\r\nHost: bad host');
      assert.equal(res.status, 400);
    });

    it('a well-formed Host still works, with or without a port', async () => {
      for (const value of [host, 'registry.example', '[::1]:5000']) {
        assert.equal((await rawRequest(r.url, `GET /v2/ HTTP/1.1\r\nHost: ${value}`)).status, 200, value);
      }
    });

    it('a header block over the limit is 431', async () => {
      const res = await rawRequest(r.url, `GET /v2/ HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${'a'.repeat(20_000)}`);
      assert.equal(res.status, 431);
    });

    it('a multi-range blob GET gets the whole blob with 200', async () => {
      const data = 'abcdefghijklmnop';
      const digest = await pushBlob(r.url, 'proto/ranges', data);
      const res = await fetch(`${r.url}/v2/proto/ranges/blobs/${digest}`, { headers: { Range: 'bytes=0-1,5-6' } });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), data);
      const single = await fetch(`${r.url}/v2/proto/ranges/blobs/${digest}`, { headers: { Range: 'bytes=2-4' } });
      assert.equal(single.status, 206);
      assert.equal(await single.text(), 'cde');
    });
  });
});
