// Failure modes that once escaped: aborted downloads, gc and foreign manifests, removed content,
// certificate chains, public metrics, token realms below a prefix.
import { strict as assert } from 'node:assert';
import { createPrivateKey, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { GC_WATCH_MS } from '../../src/app.js';
import { collectOffline as collectGarbage } from '../../src/registry/maintenance.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { needs, run } from '../helpers/clients.js';
import { makeHtpasswd, makePki } from '../helpers/pki.js';
import { afterTheWrites, errorCodes, pushBlob, sha256, startRegistry, tempDir } from '../helpers/registry.js';

const V2 = 'docker/registry/v2';

describe('regressions', () => {
  it('a client leaving in the middle of a blob download does not bring the registry down', async () => {
    const r = await startRegistry();
    try {
      const digest = await pushBlob(r.url, 'abort/big', randomBytes(32 << 20));
      const { port } = new URL(r.url);
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((resolve) => {
          const socket = connect(Number(port), '127.0.0.1', () => {
            socket.write(`GET /v2/abort/big/blobs/${digest} HTTP/1.1\r\nHost: x\r\n\r\n`);
          });
          socket.once('data', () => { socket.resetAndDestroy(); setTimeout(resolve, 200); });
          socket.on('error', () => resolve());
        });
      }
      assert.equal((await fetch(`${r.url}/v2/`)).status, 200);
    } finally {
      await r.close();
    }
  });

  it('garbage collection keeps the layers of schema1 manifests and everything an unreadable one might reference', async () => {
    const root = tempDir();
    const driver = new FilesystemDriver(root);
    const layer = Buffer.from('schema1 layer');
    const layerDigest = sha256(layer);
    const put = async (digest: string, content: Buffer | string) => driver.putContent(`/${V2}/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/data`, content);
    await put(layerDigest, layer);
    const manifest = JSON.stringify({ schemaVersion: 1, name: 'old/app', tag: 'v1', fsLayers: [{ blobSum: layerDigest }], history: [] });
    const manifestDigest = sha256(manifest);
    await put(manifestDigest, manifest);
    await driver.putContent(`/${V2}/repositories/old/app/_manifests/revisions/sha256/${manifestDigest.slice(7)}/link`, manifestDigest);
    await driver.putContent(`/${V2}/repositories/old/app/_manifests/tags/v1/current/link`, manifestDigest);
    const result = await collectGarbage(driver, { dryRun: false, deleteUntagged: false });
    assert.equal(result.blobsDeleted, 0);
    // an unreadable manifest: it and every digest written in it are kept, everything else is collected
    const kept = Buffer.from('named by junk');
    await put(sha256(kept), kept);
    const junk = `not json, but it names ${sha256(kept)}`;
    await put(sha256(junk), junk);
    await driver.putContent(`/${V2}/repositories/old/junk/_manifests/revisions/sha256/${sha256(junk).slice(7)}/link`, sha256(junk));
    const orphan = Buffer.from('orphan');
    await put(sha256(orphan), orphan);
    const unreadable: string[] = [];
    await afterTheWrites();
    const second = await collectGarbage(driver, { dryRun: false, deleteUntagged: true, onUnreadable: (name) => unreadable.push(name) });
    assert.deepEqual(unreadable, ['old/junk']);
    assert.equal(second.blobsDeleted, 1);
    const data = (d: string) => `/${V2}/blobs/sha256/${d.slice(7, 9)}/${d.slice(7)}/data`;
    await assert.rejects(driver.stat(data(sha256(orphan))));
    for (const d of [sha256(kept), sha256(junk), layerDigest, manifestDigest]) assert.ok((await driver.stat(data(d))).size > 0, d);
  });

  it('refuses a manifest whose blob content was removed by garbage collection', async () => {
    const root = tempDir();
    const r = await startRegistry({ root });
    try {
      const config = await pushBlob(r.url, 'gcgone/app', '{"os":"linux"}');
      assert.equal((await fetch(`${r.url}/v2/gcgone/app/blobs/${config}`, { method: 'HEAD' })).status, 200);
      await afterTheWrites();
      await collectGarbage(new FilesystemDriver(root), { dryRun: false, deleteUntagged: false });
      const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 14 }, layers: [] });
      const res = await fetch(`${r.url}/v2/gcgone/app/manifests/v1`, { method: 'PUT', body: manifest,
        headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(res.status, 400);
      assert.deepEqual(await errorCodes(res), ['MANIFEST_BLOB_UNKNOWN']);
    } finally {
      await r.close();
    }
  });

  it('stops answering HEAD for blobs garbage collection removed, without a restart', async () => {
    const root = tempDir();
    const r = await startRegistry({ root });
    try {
      const digest = await pushBlob(r.url, 'gcwatch/app', 'unreferenced');
      assert.equal((await fetch(`${r.url}/v2/gcwatch/app/blobs/${digest}`, { method: 'HEAD' })).status, 200);
      await afterTheWrites();
      await collectGarbage(new FilesystemDriver(root), { dryRun: false, deleteUntagged: false });
      // the registry looks for another process's collection every GC_WATCH_MS; a busy machine may be late by a little
      const deadline = Date.now() + 2 * GC_WATCH_MS;
      let status = 0;
      while (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        status = (await fetch(`${r.url}/v2/gcwatch/app/blobs/${digest}`, { method: 'HEAD' })).status;
        if (status === 404) break;
      }
      assert.equal(status, 404);
    } finally {
      await r.close();
    }
  });

  it('accepts an x5c chain to a trusted root and refuses one through a certificate that is not a CA', { skip: needs('openssl') }, async () => {
    const dir = tempDir('berth-x5c-');
    const pki = await makePki(join(dir, 'pki'));
    const r = await startRegistry({ overrides: { auth: { token: { realm: 'https://auth.example/token', service: 'svc', issuer: 'iss', rootcertbundle: pki.caCert } } } });
    try {
      const der = (file: string) => new X509Certificate(readFileSync(file)).raw.toString('base64');
      const sign = (keyFile: string, x5c: string[]) => new SignJWT({ access: [{ type: 'repository', name: 'x5c/app', actions: ['pull'] }] })
        .setProtectedHeader({ alg: 'RS256', x5c }).setIssuer('iss').setAudience('svc').setJti(randomUUID())
        .setExpirationTime(Math.floor(Date.now() / 1000) + 60).sign(createPrivateKey(readFileSync(keyFile)));
      const good = await sign(pki.clientKey, [der(pki.clientCert)]);
      assert.equal((await fetch(`${r.url}/v2/x5c/app/tags/list`, { headers: { Authorization: `Bearer ${good}` } })).status, 404);
      // a certificate issued by the server certificate (CA:FALSE) with a key of the attacker's choosing
      const evilKey = join(dir, 'evil.key');
      const evilCert = join(dir, 'evil.crt');
      await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', evilKey, '-out', join(dir, 'evil.csr'), '-subj', '/CN=evil']);
      await run('openssl', ['x509', '-req', '-in', join(dir, 'evil.csr'), '-CA', pki.serverCert, '-CAkey', pki.serverKey,
        '-CAcreateserial', '-out', evilCert, '-days', '1']);
      const evil = await sign(evilKey, [der(evilCert), der(pki.serverCert)]);
      const res = await fetch(`${r.url}/v2/x5c/app/tags/list`, { headers: { Authorization: `Bearer ${evil}` } });
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate')!, /invalid_token/);
    } finally {
      await r.close();
    }
  });

  it('does not serve /metrics on the main listener when authentication is on', { skip: needs('htpasswd') }, async () => {
    const htpasswd = join(tempDir('berth-mauth-'), 'htpasswd');
    await makeHtpasswd(htpasswd, { u: 'p' });
    const r = await startRegistry({ overrides: { auth: { htpasswd: { realm: 'r', path: htpasswd } } } });
    try {
      assert.equal((await fetch(`${r.url}/metrics`)).status, 404);
      assert.equal((await fetch(`${r.url}/healthz`)).status, 200);
    } finally {
      await r.close();
    }
  });

  it('puts the token realm once below http.prefix, and serves tokens there', { skip: needs('htpasswd') }, async () => {
    const dir = tempDir('berth-realm-');
    const users = join(dir, 'htpasswd');
    mkdirSync(dir, { recursive: true });
    await makeHtpasswd(users, { u: 'p' });
    const r = await startRegistry({ overrides: { 'http.prefix': '/reg', 'http.relativeurls': true, tokenserver: { enabled: true, htpasswd: users } } });
    try {
      const challenge = (await fetch(`${r.url}/reg/v2/`)).headers.get('www-authenticate')!;
      const realm = /realm="([^"]+)"/.exec(challenge)![1]!;
      assert.equal(realm, `${r.url}/reg/auth/token`);
      const res = await fetch(`${realm}?service=berth`, { headers: { Authorization: `Basic ${Buffer.from('u:p').toString('base64')}` } });
      assert.equal(res.status, 200);
    } finally {
      await r.close();
    }
  });
});


