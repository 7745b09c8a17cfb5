// Access control through the HTTP API: htpasswd, authorization rules, bearer tokens from the
// embedded token server and from a third-party issuer, and the hostile cases around them.
import { strict as assert } from 'node:assert';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { libtrustKeyId } from '../../src/auth/token.js';
import { needs } from '../helpers/clients.js';
import { makeHtpasswd, makePki, type Pki } from '../helpers/pki.js';
import { errorCodes, sha256, startRegistry, tempDir, type TestRegistry } from '../helpers/registry.js';

const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

const RULES = {
  groups: { admins: ['alice'] },
  rules: [
    { repositories: ['public/**'], anonymous: ['pull'], users: { '*': ['pull'] }, groups: { admins: ['pull', 'push', 'delete'] } },
    { repositories: ['team/*'], users: { bob: ['pull'] }, groups: { admins: ['pull', 'push', 'delete'] } },
    { repositories: ['private/*'], users: { alice: ['pull', 'push'] } },
    { repositories: ['sandbox/*'], users: { bob: ['pull', 'push'] } },
  ],
};

/** Authenticated fetch with fixed headers. */
function as(headers: Record<string, string>) {
  return (url: string, init: RequestInit = {}) => fetch(url, { ...init, headers: { ...headers, ...(init.headers as Record<string, string>) } });
}

describe('htpasswd authentication and authorization rules', () => {
  let r: TestRegistry;
  let htpasswd: string;
  const skip = needs('htpasswd');
  before(async () => {
    if (skip) return;
    htpasswd = join(tempDir('berth-auth-'), 'htpasswd');
    await makeHtpasswd(htpasswd, { alice: 'alice-pass', bob: 'bob-pass' });
    r = await startRegistry({ overrides: { auth: { htpasswd: { realm: 'berth-test', path: htpasswd } }, access: RULES } });
  });
  after(async () => { await r?.close(); });

  it('answers a request without credentials with 401 and a Basic challenge', { skip }, async () => {
    const res = await fetch(`${r.url}/v2/team/app/tags/list`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Basic realm="berth-test"');
    assert.deepEqual(await errorCodes(res), ['UNAUTHORIZED']);
  });

  it('refuses a wrong password with 401 and a clear message, and slows repeated failures', { skip }, async () => {
    const res = await fetch(`${r.url}/v2/`, { headers: basic('alice', 'wrong') });
    assert.equal(res.status, 401);
    assert.match(((await res.json()) as { errors: { message: string }[] }).errors[0]!.message, /invalid username or password/);
    for (let i = 0; i < 3; i++) await fetch(`${r.url}/v2/`, { headers: basic('alice', 'wrong') });
    const started = Date.now();
    assert.equal((await fetch(`${r.url}/v2/`, { headers: basic('alice', 'wrong') })).status, 401);
    assert.ok(Date.now() - started >= 400, `delayed ${Date.now() - started} ms`);
    assert.equal((await fetch(`${r.url}/v2/`, { headers: basic('alice', 'alice-pass') })).status, 200);
  });

  it('lets users do what the rules grant and answers 403 DENIED for the rest', { skip }, async () => {
    const alice = as(basic('alice', 'alice-pass'));
    const bob = as(basic('bob', 'bob-pass'));
    const push = await alice(`${r.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(push.status, 202);
    const denied = await bob(`${r.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(denied.status, 403);
    assert.deepEqual(await errorCodes(denied), ['DENIED']);
    const bobDelete = await bob(`${r.url}/v2/team/app/manifests/sha256:${'0'.repeat(64)}`, { method: 'DELETE' });
    assert.equal(bobDelete.status, 403);
    const nothing = await bob(`${r.url}/v2/private/x/tags/list`);
    assert.equal(nothing.status, 403);
  });

  it('serves anonymous pulls where a rule allows them, and nothing else', { skip }, async () => {
    assert.equal((await fetch(`${r.url}/v2/`)).status, 200); // anonymous access exists somewhere
    const anonPush = await fetch(`${r.url}/v2/public/x/blobs/uploads/`, { method: 'POST' });
    assert.equal(anonPush.status, 401);
    assert.equal((await fetch(`${r.url}/v2/public/x/tags/list`)).status, 404); // allowed, just empty
  });

  it('shows in the catalog only what the caller may pull', { skip }, async () => {
    const alice = { Authorization: basic('alice', 'alice-pass').Authorization };
    for (const name of ['public/lib', 'team/app', 'team/other']) {
      const config = await pushBlobAs(r.url, name, '{}', alice);
      const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 2 }, layers: [] });
      const res = await fetch(`${r.url}/v2/${name}/manifests/v1`, { method: 'PUT', body: manifest,
        headers: { ...alice, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(res.status, 201);
    }
    const list = async (headers: Record<string, string>) => ((await (await fetch(`${r.url}/v2/_catalog`, { headers })).json()) as { repositories: string[] }).repositories;
    assert.deepEqual(await list(alice), ['public/lib', 'team/app', 'team/other']);
    assert.deepEqual(await list(basic('bob', 'bob-pass')), ['public/lib', 'team/app', 'team/other']);
    assert.deepEqual(await list({}), ['public/lib']);
  });

  it('never mounts a blob from a repository the caller cannot pull', { skip }, async () => {
    // alice stores a blob in private/vault; bob may push to sandbox/* but not read private/*
    const alice = { Authorization: basic('alice', 'alice-pass').Authorization };
    const bob = { Authorization: basic('bob', 'bob-pass').Authorization };
    const digest = await pushBlobAs(r.url, 'private/vault', 'secret layer', alice);
    const mount = await fetch(`${r.url}/v2/sandbox/x/blobs/uploads/?mount=${digest}&from=private/vault`, { method: 'POST', headers: bob });
    assert.equal(mount.status, 202); // a normal upload starts
    assert.equal((await fetch(`${r.url}/v2/sandbox/x/blobs/${digest}`, { method: 'HEAD', headers: bob })).status, 404);
    // mounting by digest alone needs read access to everything, which rules restrict
    const byDigest = await fetch(`${r.url}/v2/sandbox/x/blobs/uploads/?mount=${digest}`, { method: 'POST', headers: bob });
    assert.equal(byDigest.status, 202);
    // control: alice, who may read private/vault, mounts it
    const allowed = await fetch(`${r.url}/v2/private/copy/blobs/uploads/?mount=${digest}&from=private/vault`, { method: 'POST', headers: alice });
    assert.equal(allowed.status, 201);
  });

  it('reloads the htpasswd file when it changes, without a restart', { skip }, async () => {
    assert.equal((await fetch(`${r.url}/v2/`, { headers: basic('carol', 'carol-pass') })).status, 401);
    await makeHtpasswd(htpasswd, { alice: 'alice-pass', bob: 'bob-pass', carol: 'carol-pass' });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await fetch(`${r.url}/v2/`, { headers: basic('carol', 'carol-pass') })).status, 200);
  });

  it('refuses path tricks in repository names before anything else', { skip }, async () => {
    const { request } = await import('node:http');
    const { port } = new URL(r.url);
    const status = await new Promise<number>((resolve) => {
      request({ host: '127.0.0.1', port, path: '/v2/public/../team/app/tags/list', headers: basic('bob', 'bob-pass') }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      }).end();
    });
    assert.equal(status, 400);
  });
});

async function pushBlobAs(url: string, name: string, data: string, headers: Record<string, string>): Promise<string> {
  const res = await fetch(`${url}/v2/${name}/blobs/uploads/?digest=${sha256(data)}`, {
    method: 'POST', body: data, headers: { ...headers, 'Content-Type': 'application/octet-stream' },
  });
  assert.equal(res.status, 201, await res.text());
  return sha256(data);
}

describe('token authentication with the embedded token server', () => {
  let r: TestRegistry;
  let pki: Pki;
  let service: string;
  const issuer = 'berth-test-issuer';
  const skip = needs('openssl', 'htpasswd');

  async function token(user: string | undefined, password: string | undefined, scopes: string[]): Promise<string> {
    const query = new URLSearchParams({ service });
    for (const s of scopes) query.append('scope', s);
    const res = await fetch(`${r.url}/auth/token?${query}`, { headers: user ? basic(user, password!) : {} });
    assert.equal(res.status, 200, await res.clone().text());
    const body = await res.json() as { token: string; access_token: string; expires_in: number };
    assert.equal(body.token, body.access_token);
    return body.token;
  }

  /** Signs a token the way a token server would, with chosen claims and key. */
  async function craft(claims: { iss?: string; aud?: string; exp?: number; access?: unknown }, keyFile = pki.tokenKey): Promise<string> {
    const key = createPrivateKey(readFileSync(keyFile));
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ access: claims.access ?? [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }] })
      .setProtectedHeader({ alg: 'ES256', kid: libtrustKeyId(createPublicKey(key)) })
      .setIssuer(claims.iss ?? issuer).setAudience(claims.aud ?? service).setSubject('alice')
      .setIssuedAt(now).setExpirationTime(claims.exp ?? now + 300).setJti(randomUUID()).sign(key);
  }

  before(async () => {
    if (skip) return;
    const dir = tempDir('berth-token-');
    pki = await makePki(join(dir, 'pki'));
    const users = join(dir, 'htpasswd');
    await makeHtpasswd(users, { alice: 'alice-pass', bob: 'bob-pass' });
    service = 'berth-test';
    r = await startRegistry({ overrides: {
      tokenserver: { enabled: true, htpasswd: users, key: pki.tokenKey, issuer, service },
      access: RULES,
    } });
  });
  after(async () => { await r?.close(); });

  it('challenges with Bearer realm, service and scope', { skip }, async () => {
    const res = await fetch(`${r.url}/v2/team/app/tags/list`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'),
      `Bearer realm="${r.url}/auth/token",service="${service}",scope="repository:team/app:pull"`);
  });

  it('issues a token that grants what was asked and allowed, and the registry honours it', { skip }, async () => {
    const t = await token('alice', 'alice-pass', ['repository:team/app:pull,push']);
    const auth = { Authorization: `Bearer ${t}` };
    assert.equal((await fetch(`${r.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: auth })).status, 202);
    assert.equal((await fetch(`${r.url}/v2/`, { headers: auth })).status, 200);
  });

  it('refuses the token server a wrong password with 401', { skip }, async () => {
    const res = await fetch(`${r.url}/auth/token?service=${service}&scope=repository:team/app:pull`, { headers: basic('alice', 'nope') });
    assert.equal(res.status, 401);
  });

  it('grants only the intersection: scope escalation gets a token without push', { skip }, async () => {
    const t = await token('bob', 'bob-pass', ['repository:team/app:pull,push,delete']);
    const payload = JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()) as { access: { actions: string[] }[] };
    assert.deepEqual(payload.access.map((a) => a.actions), [['pull']]);
    const res = await fetch(`${r.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { Authorization: `Bearer ${t}` } });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate')!, /error="insufficient_scope"/);
  });

  it('refuses a token for another repository', { skip }, async () => {
    const t = await token('alice', 'alice-pass', ['repository:team/other:pull,push']);
    const res = await fetch(`${r.url}/v2/team/app/tags/list`, { headers: { Authorization: `Bearer ${t}` } });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate')!, /scope="repository:team\/app:pull",error="insufficient_scope"/);
  });

  for (const [title, make] of [
    ['expired', () => craft({ exp: Math.floor(Date.now() / 1000) - 3600 })],
    ['wrong audience', () => craft({ aud: 'another-service' })],
    ['wrong issuer', () => craft({ iss: 'someone-else' })],
    ['forged (signed by another key)', async () => {
      const other = join(pki.dir, 'other.key');
      writeFileSync(other, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
      return craft({}, other);
    }],
    ['tampered payload', async () => {
      const [h, , s] = (await craft({ access: [] })).split('.');
      const payload = Buffer.from(JSON.stringify({ iss: issuer, aud: service, exp: Math.floor(Date.now() / 1000) + 300,
        access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }] })).toString('base64url');
      return `${h}.${payload}.${s}`;
    }],
    ['garbage', async () => 'not.a.token'],
  ] as const) {
    it(`refuses a ${title} token with 401 invalid_token and changes nothing`, { skip }, async () => {
      const t = await make();
      const res = await fetch(`${r.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { Authorization: `Bearer ${t}` } });
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate')!, /error="invalid_token"/);
      const list = await fetch(`${r.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { Authorization: `Bearer ${t}` } });
      assert.equal(list.status, 401);
    });
  }

  it('accepts a correctly crafted token signed by the configured key (control for the cases above)', { skip }, async () => {
    const res = await fetch(`${r.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { Authorization: `Bearer ${await craft({})}` } });
    assert.equal(res.status, 202);
  });
});

describe('token authentication with a third-party issuer (rootcertbundle)', () => {
  it('verifies tokens whose kid matches a certificate of the bundle', { skip: needs('openssl') }, async () => {
    const pki = await makePki(join(tempDir('berth-tp-'), 'pki'));
    const r = await startRegistry({ overrides: { auth: { token: {
      realm: 'https://auth.example.com/token', service: 'registry.example.com', issuer: 'auth.example.com', rootcertbundle: pki.tokenCert,
    } } } });
    try {
      const cert = new X509Certificate(readFileSync(pki.tokenCert));
      const now = Math.floor(Date.now() / 1000);
      const sign = (access: unknown) => new SignJWT({ access })
        .setProtectedHeader({ alg: 'ES256', kid: libtrustKeyId(cert.publicKey) })
        .setIssuer('auth.example.com').setAudience('registry.example.com').setSubject('ci')
        .setIssuedAt(now).setExpirationTime(now + 60).sign(createPrivateKey(readFileSync(pki.tokenKey)));
      const challenge = await fetch(`${r.url}/v2/`);
      assert.equal(challenge.headers.get('www-authenticate'), 'Bearer realm="https://auth.example.com/token",service="registry.example.com"');
      const t = await sign([{ type: 'repository', name: 'ci/app', actions: ['pull', 'push'] }]);
      const image = await pushImageWithToken(r.url, 'ci/app', t);
      assert.equal(image, 201);
      const catalogToken = await sign([{ type: 'registry', name: 'catalog', actions: ['*'] }]);
      const catalog = await fetch(`${r.url}/v2/_catalog`, { headers: { Authorization: `Bearer ${catalogToken}` } });
      assert.deepEqual(await catalog.json(), { repositories: ['ci/app'] });
    } finally {
      await r.close();
    }
  });
});

async function pushImageWithToken(url: string, name: string, token: string): Promise<number> {
  const headers = { Authorization: `Bearer ${token}` };
  const digest = await pushBlobAs(url, name, '{"os":"linux"}', headers);
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: 14 }, layers: [] });
  const res = await fetch(`${url}/v2/${name}/manifests/v1`, { method: 'PUT', body: manifest,
    headers: { ...headers, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
  return res.status;
}
