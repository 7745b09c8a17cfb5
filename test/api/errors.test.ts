// Hostile and malformed input: every answer is a clear 4xx in the OCI error format and nothing changes.
import { strict as assert } from 'node:assert';
import { request } from 'node:http';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { errorCodes, pushImage, startRegistry, type TestRegistry } from '../helpers/registry.js';

/** A raw request whose path is sent exactly as written (fetch would normalise "..")". */
function rawRequest(url: string, method: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, method, path }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('hostile and malformed requests', () => {
  let r: TestRegistry;
  before(async () => { r = await startRegistry(); await pushImage(r.url, 'safe/repo', 'v1'); });
  after(async () => { await r.close(); });

  for (const name of ['../x', 'a//b', 'UPPER', 'a/../../etc', '.hidden', 'a/./b', '%2e%2e/x', 'x/']) {
    it(`refuses the repository name ${JSON.stringify(name)} with NAME_INVALID`, async () => {
      for (const [method, path] of [['GET', `/v2/${name}/tags/list`], ['POST', `/v2/${name}/blobs/uploads/`],
        ['GET', `/v2/${name}/manifests/latest`]] as const) {
        const res = await rawRequest(r.url, method, path);
        assert.ok(res.status === 400 || res.status === 404, `${method} ${path}: ${res.status}`);
        if (res.status === 400) assert.match(res.body, /NAME_INVALID/);
        else assert.match(res.body, /"code"/);
      }
    });
  }

  it('never writes outside the repositories tree for hostile names', async () => {
    await rawRequest(r.url, 'POST', '/v2/../../escape/blobs/uploads/');
    assert.deepEqual(readdirSync(r.root).sort(), ['berth', 'docker']); // berth/: the registry's lease and reports
    assert.deepEqual(readdirSync(join(r.root, 'docker/registry/v2')).sort(), ['blobs', 'repositories']);
  });

  it('a malformed digest is 400 DIGEST_INVALID, never a 500', async () => {
    for (const digest of ['sha256:xyz', 'sha256:', 'md5:abcd', 'nodigest:', 'sha256:' + 'a'.repeat(63)]) {
      const res = await fetch(`${r.url}/v2/safe/repo/blobs/${digest}`);
      assert.equal(res.status, 400, digest);
      assert.deepEqual(await errorCodes(res), ['DIGEST_INVALID']);
    }
    const res = await fetch(`${r.url}/v2/safe/repo/blobs/uploads/?digest=sha256:bad`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 400);
  });

  it('unknown blob and manifest are 404 with their codes; HEAD has no body', async () => {
    let res = await fetch(`${r.url}/v2/safe/repo/blobs/sha256:${'0'.repeat(64)}`);
    assert.deepEqual(await errorCodes(res), ['BLOB_UNKNOWN']);
    res = await fetch(`${r.url}/v2/safe/repo/manifests/nope`);
    assert.deepEqual(await errorCodes(res), ['MANIFEST_UNKNOWN']);
    res = await fetch(`${r.url}/v2/safe/repo/blobs/sha256:${'0'.repeat(64)}`, { method: 'HEAD' });
    assert.equal(res.status, 404);
    assert.equal(await res.text(), '');
  });

  it('an invalid tag is 400 TAG_INVALID on push', async () => {
    const res = await fetch(`${r.url}/v2/safe/repo/manifests/-bad-tag`, { method: 'PUT', body: '{}', headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(res.status, 400);
    assert.deepEqual(await errorCodes(res), ['TAG_INVALID']);
  });

  it('a method the route does not serve is 405 UNSUPPORTED with Allow', async () => {
    const res = await fetch(`${r.url}/v2/safe/repo/tags/list`, { method: 'DELETE' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
    assert.deepEqual(await errorCodes(res), ['UNSUPPORTED']);
  });

  it('survives a TLS ClientHello on the plain port', async () => {
    const { connect } = await import('node:net');
    const { port } = new URL(r.url);
    const reply = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00])));
      let data = '';
      socket.on('data', (c) => { data += c; });
      socket.on('close', () => resolve(data));
      socket.on('error', () => resolve(data));
    });
    assert.match(reply, /^HTTP\/1.1 400/);
    assert.equal((await fetch(`${r.url}/v2/`)).status, 200);
  });
});

describe('deletes disabled and read-only mode', () => {
  it('answers 405 UNSUPPORTED with the setting to change', async () => {
    const r = await startRegistry({ overrides: { 'storage.delete.enabled': false } });
    try {
      const image = await pushImage(r.url, 'nodelete/x', 'v1');
      const res = await fetch(`${r.url}/v2/nodelete/x/manifests/${image.digest}`, { method: 'DELETE' });
      assert.equal(res.status, 405);
      const body = await res.json() as { errors: { code: string; message: string }[] };
      assert.equal(body.errors[0]!.code, 'UNSUPPORTED');
      assert.match(body.errors[0]!.message, /storage\.delete\.enabled/);
    } finally {
      await r.close();
    }
    const ro = await startRegistry({ overrides: { 'storage.maintenance.readonly.enabled': true } });
    try {
      const res = await fetch(`${ro.url}/v2/ro/x/blobs/uploads/`, { method: 'POST' });
      assert.equal(res.status, 405);
      assert.equal((await fetch(`${ro.url}/v2/_catalog`)).status, 200);
    } finally {
      await ro.close();
    }
  });
});

describe('http.prefix', () => {
  it('serves the API below the prefix and points Location headers there', async () => {
    const r = await startRegistry({ overrides: { 'http.prefix': '/registry' } });
    try {
      assert.equal((await fetch(`${r.url}/registry/v2/`)).status, 200);
      assert.equal((await fetch(`${r.url}/v2/`)).status, 404);
      const res = await fetch(`${r.url}/registry/v2/p/x/blobs/uploads/`, { method: 'POST' });
      assert.equal(res.status, 202);
      assert.match(res.headers.get('location')!, /^http:\/\/127\.0\.0\.1:\d+\/registry\/v2\/p\/x\/blobs\/uploads\//);
    } finally {
      await r.close();
    }
  });
});
