// The management API is authorised like /v2/: the same users and access rules.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { needs } from '../helpers/clients.js';
import { makeHtpasswd } from '../helpers/pki.js';
import { startRegistry, tempDir, type TestRegistry } from '../helpers/registry.js';

const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
const ALICE = basic('alice', 'alice-pass');
const BOB = basic('bob', 'bob-pass');

describe('management API authorisation', () => {
  let r: TestRegistry;
  const skip = needs('htpasswd');
  before(async () => {
    if (skip) return;
    const htpasswd = join(tempDir('berth-mgmt-'), 'htpasswd');
    await makeHtpasswd(htpasswd, { alice: 'alice-pass', bob: 'bob-pass' });
    r = await startRegistry({ overrides: { auth: { htpasswd: { realm: 'berth', path: htpasswd } }, access: {
      rules: [
        { repositories: ['**'], users: { alice: ['pull', 'push', 'delete'] } },
        { repositories: ['bob/*'], users: { bob: ['pull', 'push'] } },
        // delete on every top-level name: still not every repository, so no collection
        { repositories: ['*'], users: { bob: ['delete'] } },
      ],
    } } });
  });
  after(() => r?.close());

  it('asks anonymous callers to log in, and lists only what a user may pull', { skip }, async () => {
    assert.equal((await fetch(`${r.url}/api/v1/repositories`)).status, 401);
    const empty = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'; // the blob "{}"
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 }, layers: [] });
    for (const name of ['bob/app', 'team/app']) {
      const start = await fetch(`${r.url}/v2/${name}/blobs/uploads/`, { method: 'POST', headers: ALICE });
      const location = new URL(start.headers.get('location')!, r.url);
      location.searchParams.set('digest', empty);
      assert.equal((await fetch(location, { method: 'PUT', body: '{}', headers: { ...ALICE, 'Content-Type': 'application/octet-stream' } })).status, 201);
      const put = await fetch(`${r.url}/v2/${name}/manifests/v1`, { method: 'PUT', body: manifest,
        headers: { ...ALICE, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(put.status, 201);
    }
    const bobs = await (await fetch(`${r.url}/api/v1/repositories`, { headers: BOB })).json() as { repositories: { name: string }[] };
    assert.deepEqual(bobs.repositories.map((x) => x.name), ['bob/app']);
    const alices = await (await fetch(`${r.url}/api/v1/repositories`, { headers: ALICE })).json() as { repositories: { name: string }[] };
    assert.deepEqual(alices.repositories.map((x) => x.name), ['bob/app', 'team/app']);
  });

  it('deleting a repository needs its delete action; collection needs delete on every repository', { skip }, async () => {
    assert.equal((await fetch(`${r.url}/api/v1/repositories/bob/app`, { method: 'DELETE', headers: BOB })).status, 403);
    assert.equal((await fetch(`${r.url}/api/v1/gc`, { method: 'POST', headers: BOB })).status, 403);
    assert.equal((await fetch(`${r.url}/api/v1/gc`, { method: 'POST', headers: ALICE })).status, 202);
    assert.equal((await fetch(`${r.url}/api/v1/repositories/bob/app`, { method: 'DELETE', headers: ALICE })).status, 202);
    assert.equal((await fetch(`${r.url}/api/v1/repositories/bob/app`, { headers: ALICE })).status, 404);
  });
});
