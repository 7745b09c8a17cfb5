// Manifests, tags, referrers and the catalog through the HTTP API.
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorCodes, pushBlob, pushImage, sha256, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/scratch.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_ACCEPT = [DOCKER_MANIFEST, 'application/vnd.docker.distribution.manifest.list.v2+json', OCI_MANIFEST, OCI_INDEX].join(', ');

describe('manifests', () => {
  let r: TestRegistry;
  before(async () => { r = await startRegistry(); });
  after(async () => { await r.close(); });

  it('PUT by tag, then GET and HEAD by tag and digest serve the exact bytes and media type', async () => {
    const image = await pushImage(r.url, 'm/app', 'v1');
    for (const ref of ['v1', image.digest]) {
      const res = await fetch(`${r.url}/v2/m/app/manifests/${ref}`, { headers: { Accept: DOCKER_ACCEPT } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), OCI_MANIFEST);
      assert.equal(res.headers.get('docker-content-digest'), image.digest);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest);
      const head = await fetch(`${r.url}/v2/m/app/manifests/${ref}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(image.manifest.length));
    }
  });

  it('answers 304 to If-None-Match with the manifest ETag', async () => {
    const image = await pushImage(r.url, 'm/etag', 'v1');
    const res = await fetch(`${r.url}/v2/m/etag/manifests/v1`, { headers: { 'If-None-Match': `"${image.digest}"` } });
    assert.equal(res.status, 304);
    assert.equal(res.headers.get('etag'), `"${image.digest}"`);
    const changed = await fetch(`${r.url}/v2/m/etag/manifests/v1`, { headers: { 'If-None-Match': '"sha256:other"' } });
    assert.equal(changed.status, 200);
  });

  it('serves a stored manifest to a client without Accept and never rewrites it', async () => {
    const image = await pushImage(r.url, 'm/noaccept', 'latest');
    const res = await fetch(`${r.url}/v2/m/noaccept/manifests/latest`, { headers: { Accept: '*/*' } });
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest);
    const narrow = await fetch(`${r.url}/v2/m/noaccept/manifests/latest`, { headers: { Accept: DOCKER_MANIFEST } });
    assert.equal(narrow.status, 404);
    assert.deepEqual(await errorCodes(narrow), ['MANIFEST_UNKNOWN']);
  });

  it('stores a Docker schema2 manifest and serves it with its type', async () => {
    const config = await pushBlob(r.url, 'm/docker', '{"architecture":"amd64","os":"linux"}');
    const body = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: DOCKER_MANIFEST,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: config, size: 37 }, layers: [],
    }));
    const put = await fetch(`${r.url}/v2/m/docker/manifests/v1`, { method: 'PUT', body, headers: { 'Content-Type': DOCKER_MANIFEST } });
    assert.equal(put.status, 201);
    const res = await fetch(`${r.url}/v2/m/docker/manifests/v1`, { headers: { Accept: DOCKER_ACCEPT } });
    assert.equal(res.headers.get('content-type'), DOCKER_MANIFEST);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), body);
  });

  it('serves the media type derived from the content when its unflushed record was emptied by a power cut', {
    skip: process.env.BERTH_TEST_METADATA === 'postgres' && 'with the database, media types are kept in its rows, not in files',
  }, async () => {
    const root = tempDir('mediatype-');
    const first = await startRegistry({ root });
    const config = await pushBlob(first.url, 'cut/app', '{"architecture":"amd64","os":"linux"}');
    // no mediaType in the document: the record is what says what it is
    const body = Buffer.from(JSON.stringify({
      schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 37 }, layers: [],
    }));
    const put = await fetch(`${first.url}/v2/cut/app/manifests/v1`, { method: 'PUT', body, headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(put.status, 201);
    await first.close();
    const digest = sha256(body);
    const record = join(root, 'docker/registry/v2/repositories/cut/app/_manifests/revisions/sha256', digest.slice(7), 'mediatype');
    assert.equal(readFileSync(record, 'utf8'), OCI_MANIFEST);
    writeFileSync(record, ''); // renamed into place, its bytes never written
    const second = await startRegistry({ root });
    try {
      for (const ref of ['v1', digest]) {
        const res = await fetch(`${second.url}/v2/cut/app/manifests/${ref}`, { headers: { Accept: DOCKER_ACCEPT } });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), OCI_MANIFEST);
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), body);
      }
      assert.equal(readFileSync(record, 'utf8'), OCI_MANIFEST, 'recorded again');
    } finally {
      await second.close();
    }
  });

  it('accepts an index whose children are present and rejects one with a missing child', async () => {
    const a = await pushImage(r.url, 'm/multi', 'amd', 'a');
    const b = await pushImage(r.url, 'm/multi', 'arm', 'b');
    const index = (children: string[]) => Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_INDEX,
      manifests: children.map((digest) => ({ mediaType: OCI_MANIFEST, digest, size: 100 })),
    }));
    let res = await fetch(`${r.url}/v2/m/multi/manifests/latest`, { method: 'PUT', body: index([a.digest, b.digest]), headers: { 'Content-Type': OCI_INDEX } });
    assert.equal(res.status, 201);
    const missing = sha256('nope');
    res = await fetch(`${r.url}/v2/m/multi/manifests/broken`, { method: 'PUT', body: index([a.digest, missing]), headers: { 'Content-Type': OCI_INDEX } });
    assert.equal(res.status, 400);
    assert.deepEqual(await errorCodes(res), ['MANIFEST_BLOB_UNKNOWN']);
  });

  it('rejects manifests with missing blobs (one error per blob), bad JSON, wrong digest, mismatched type', async () => {
    const body = (layers: string[]) => Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256('c'), size: 1 },
      layers: layers.map((digest) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: 1 })),
    }));
    let res = await fetch(`${r.url}/v2/m/bad/manifests/x`, { method: 'PUT', body: body([sha256('l')]), headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(res.status, 400);
    assert.deepEqual(await errorCodes(res), ['MANIFEST_BLOB_UNKNOWN', 'MANIFEST_BLOB_UNKNOWN']);
    res = await fetch(`${r.url}/v2/m/bad/manifests/x`, { method: 'PUT', body: '{not json', headers: { 'Content-Type': OCI_MANIFEST } });
    assert.deepEqual(await errorCodes(res), ['MANIFEST_INVALID']);
    const image = await pushImage(r.url, 'm/bad', 'ok');
    res = await fetch(`${r.url}/v2/m/bad/manifests/${sha256('other')}`, { method: 'PUT', body: image.manifest, headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(res.status, 400);
    assert.deepEqual(await errorCodes(res), ['DIGEST_INVALID']);
    res = await fetch(`${r.url}/v2/m/bad/manifests/y`, { method: 'PUT', body: image.manifest, headers: { 'Content-Type': DOCKER_MANIFEST } });
    assert.deepEqual(await errorCodes(res), ['MANIFEST_INVALID']);
    res = await fetch(`${r.url}/v2/m/bad/manifests/z`, { method: 'PUT', body: Buffer.alloc(5 * 1024 * 1024, 32), headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(res.status, 413);
    // nothing of the refused pushes is visible
    const tags = await (await fetch(`${r.url}/v2/m/bad/tags/list`)).json() as { tags: string[] };
    assert.deepEqual(tags.tags, ['ok']);
  });

  it('DELETE by tag removes only the tag; by digest removes the manifest and its tags', async () => {
    const image = await pushImage(r.url, 'm/del', 'one');
    await fetch(`${r.url}/v2/m/del/manifests/two`, { method: 'PUT', body: image.manifest, headers: { 'Content-Type': OCI_MANIFEST } });
    let res = await fetch(`${r.url}/v2/m/del/manifests/one`, { method: 'DELETE' });
    assert.equal(res.status, 202);
    assert.equal((await fetch(`${r.url}/v2/m/del/manifests/one`)).status, 404);
    assert.equal((await fetch(`${r.url}/v2/m/del/manifests/two`)).status, 200);
    res = await fetch(`${r.url}/v2/m/del/manifests/${image.digest}`, { method: 'DELETE' });
    assert.equal(res.status, 202);
    assert.equal((await fetch(`${r.url}/v2/m/del/manifests/two`)).status, 404);
    res = await fetch(`${r.url}/v2/m/del/manifests/${image.digest}`, { method: 'DELETE' });
    assert.equal(res.status, 404);
    assert.deepEqual(await errorCodes(res), ['MANIFEST_UNKNOWN']);
  });

  it('answers OCI-Subject and lists referrers with artifactType filtering', async () => {
    const subject = await pushImage(r.url, 'm/ref', 'base');
    const emptyConfig = await pushBlob(r.url, 'm/ref', '{}');
    const artifact = async (artifactType: string, seed: string) => {
      const layer = await pushBlob(r.url, 'm/ref', seed);
      const body = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyConfig, size: 2 },
        layers: [{ mediaType: 'text/plain', digest: layer, size: seed.length }],
        subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.manifest.length },
        annotations: { 'org.example.seed': seed },
      }));
      const res = await fetch(`${r.url}/v2/m/ref/manifests/${sha256(body)}`, { method: 'PUT', body, headers: { 'Content-Type': OCI_MANIFEST } });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('oci-subject'), subject.digest);
      return sha256(body);
    };
    const sig = await artifact('application/vnd.example.signature', 'sig');
    const sbom = await artifact('application/vnd.example.sbom', 'sbom');
    let res = await fetch(`${r.url}/v2/m/ref/referrers/${subject.digest}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), OCI_INDEX);
    let index = await res.json() as { manifests: { digest: string; artifactType: string; annotations: Record<string, string> }[] };
    assert.deepEqual(index.manifests.map((m) => m.digest).sort(), [sig, sbom].sort());
    res = await fetch(`${r.url}/v2/m/ref/referrers/${subject.digest}?artifactType=application/vnd.example.sbom`);
    assert.equal(res.headers.get('oci-filters-applied'), 'artifactType');
    index = await res.json() as typeof index;
    assert.deepEqual(index.manifests.map((m) => m.digest), [sbom]);
    assert.equal(index.manifests[0]!.annotations['org.example.seed'], 'sbom');
    res = await fetch(`${r.url}/v2/m/ref/referrers/${sha256('unknown')}`);
    assert.equal(res.status, 200);
    assert.deepEqual((await res.json() as { manifests: unknown[] }).manifests, []);
    await fetch(`${r.url}/v2/m/ref/manifests/${sig}`, { method: 'DELETE' });
    index = await (await fetch(`${r.url}/v2/m/ref/referrers/${subject.digest}`)).json() as typeof index;
    assert.deepEqual(index.manifests.map((m) => m.digest), [sbom]);
  });

  it('keeps the last writer when the same tag is pushed concurrently', async () => {
    const images = await Promise.all(['a', 'b', 'c', 'd'].map((seed) => pushImage(r.url, 'm/race', `img-${seed}`, seed)));
    await Promise.all(images.map((image) => fetch(`${r.url}/v2/m/race/manifests/latest`, {
      method: 'PUT', body: image.manifest, headers: { 'Content-Type': OCI_MANIFEST },
    }).then((res) => assert.equal(res.status, 201))));
    const res = await fetch(`${r.url}/v2/m/race/manifests/latest`);
    assert.ok(images.some((i) => i.digest === res.headers.get('docker-content-digest')));
  });
});

describe('discovery', () => {
  let r: TestRegistry;
  before(async () => { r = await startRegistry(); });
  after(async () => { await r.close(); });

  it('GET /v2/ answers {} with the API version header', async () => {
    const res = await fetch(`${r.url}/v2/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    assert.deepEqual(await res.json(), {});
  });

  it('tags/list is sorted and paginates with n, last and Link', async () => {
    const image = await pushImage(r.url, 'd/tags', 'b');
    for (const tag of ['c', 'a', 'v1.0', 'A_upper']) {
      await fetch(`${r.url}/v2/d/tags/manifests/${tag}`, { method: 'PUT', body: image.manifest, headers: { 'Content-Type': OCI_MANIFEST } });
    }
    let res = await fetch(`${r.url}/v2/d/tags/tags/list`);
    assert.deepEqual(await res.json(), { name: 'd/tags', tags: ['A_upper', 'a', 'b', 'c', 'v1.0'] });
    res = await fetch(`${r.url}/v2/d/tags/tags/list?n=2`);
    assert.deepEqual((await res.json() as { tags: string[] }).tags, ['A_upper', 'a']);
    assert.equal(res.headers.get('link'), '</v2/d/tags/tags/list?n=2&last=a>; rel="next"');
    res = await fetch(`${r.url}/v2/d/tags/tags/list?n=2&last=b`);
    assert.deepEqual((await res.json() as { tags: string[] }).tags, ['c', 'v1.0']);
    assert.equal(res.headers.get('link'), null);
    res = await fetch(`${r.url}/v2/d/tags/tags/list?n=-1`);
    assert.deepEqual(await errorCodes(res), ['PAGINATION_NUMBER_INVALID']);
    res = await fetch(`${r.url}/v2/d/unknown/tags/list`);
    assert.equal(res.status, 404);
    assert.deepEqual(await errorCodes(res), ['NAME_UNKNOWN']);
  });

  it('_catalog is sorted and paginates', async () => {
    for (const name of ['z/last', 'a/first', 'm/middle']) await pushImage(r.url, name, 'v1');
    let res = await fetch(`${r.url}/v2/_catalog`);
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
    const all = (await res.json() as { repositories: string[] }).repositories;
    assert.deepEqual(all, [...all].sort());
    assert.ok(['z/last', 'a/first', 'm/middle', 'd/tags'].every((n) => all.includes(n)));
    res = await fetch(`${r.url}/v2/_catalog?n=1&last=a/first`);
    assert.deepEqual((await res.json() as { repositories: string[] }).repositories, [all[all.indexOf('a/first') + 1]]);
    assert.match(res.headers.get('link')!, /^<\/v2\/_catalog\?n=1&last=.+>; rel="next"$/);
  });
});
