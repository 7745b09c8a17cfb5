// `berth token-server` on its own, trusted by a registry through auth.token with a certificate
// of its key, and a JWKS file as the other way to trust an issuer.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { createPublicKey, createPrivateKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { exportJWK, SignJWT } from 'jose';
import { libtrustKeyId } from '../../src/auth/token.js';
import { CLI, freePort, needs, startBerth } from '../helpers/clients.js';
import { makeHtpasswd, makePki } from '../helpers/pki.js';
import { tempDir } from '../helpers/registry.js';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('standalone token server', () => {
  it('issues tokens that a registry configured with auth.token and rootcertbundle accepts', { skip: needs('openssl', 'htpasswd') }, async () => {
    const dir = tempDir('berth-ts-');
    const pki = await makePki(join(dir, 'pki'));
    const users = join(dir, 'htpasswd');
    await makeHtpasswd(users, { ci: 'ci-pass' });
    const tokenPort = await freePort();
    const config = join(dir, 'config.yml');
    writeFileSync(config, [
      'version: 0.1',
      'auth:',
      '  token:',
      `    realm: http://127.0.0.1:${tokenPort}/auth/token`,
      '    service: registry.test',
      '    issuer: berth-token-server',
      `    rootcertbundle: ${pki.tokenCert}`,
      'tokenserver:',
      '  enabled: true',
      `  htpasswd: ${users}`,
      `  key: ${pki.tokenKey}`,
      '  service: registry.test',
      '',
    ].join('\n'));
    const server = spawn(process.execPath, [CLI, 'token-server', '--config', config, '--addr', `127.0.0.1:${tokenPort}`], { stdio: 'ignore' });
    const registry = await startBerth(join(dir, 'data'), {}, ['--config', config]);
    try {
      const challenge = await fetch(`${registry.url}/v2/ci/app/tags/list`);
      assert.equal(challenge.headers.get('www-authenticate'),
        `Bearer realm="http://127.0.0.1:${tokenPort}/auth/token",service="registry.test",scope="repository:ci/app:pull"`);
      let res: Response | undefined;
      for (let i = 0; i < 50 && !res; i++) {
        res = await fetch(`http://127.0.0.1:${tokenPort}/auth/token?service=registry.test&scope=repository:ci/app:pull,push`,
          { headers: { Authorization: basic('ci', 'ci-pass') } }).catch(() => undefined);
        if (!res) await new Promise((r) => setTimeout(r, 100));
      }
      const { token } = await res!.json() as { token: string };
      const upload = await fetch(`${registry.url}/v2/ci/app/blobs/uploads/`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
      assert.equal(upload.status, 202);
      const denied = await fetch(`http://127.0.0.1:${tokenPort}/auth/token?service=registry.test`, { headers: { Authorization: basic('ci', 'bad') } });
      assert.equal(denied.status, 401);
    } finally {
      server.kill();
      await registry.stop();
    }
  });

  it('trusts an issuer through a JWKS file', { skip: needs('openssl') }, async () => {
    const dir = tempDir('berth-jwks-');
    const pki = await makePki(join(dir, 'pki'));
    const key = createPrivateKey(readFileSync(pki.tokenKey));
    const kid = libtrustKeyId(createPublicKey(key));
    const jwks = join(dir, 'jwks.json');
    writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(createPublicKey(key))), kid: 'jwks-key-1', alg: 'ES256', use: 'sig' }] }));
    const registry = await startBerth(join(dir, 'data'), {
      REGISTRY_AUTH_TOKEN_REALM: 'https://auth.example.com/token', REGISTRY_AUTH_TOKEN_SERVICE: 'svc',
      REGISTRY_AUTH_TOKEN_ISSUER: 'iss', REGISTRY_AUTH_TOKEN_JWKS: jwks,
    });
    try {
      const now = Math.floor(Date.now() / 1000);
      const sign = (keyId: string) => new SignJWT({ access: [{ type: 'repository', name: 'x/y', actions: ['pull'] }] })
        .setProtectedHeader({ alg: 'ES256', kid: keyId }).setIssuer('iss').setAudience('svc').setExpirationTime(now + 60).sign(key);
      const ok = await fetch(`${registry.url}/v2/x/y/tags/list`, { headers: { Authorization: `Bearer ${await sign('jwks-key-1')}` } });
      assert.equal(ok.status, 404); // authorised; the repository is simply empty
      const unknownKid = await fetch(`${registry.url}/v2/x/y/tags/list`, { headers: { Authorization: `Bearer ${await sign(`${kid}-x`)}` } });
      assert.equal(unknownKid.status, 401);
    } finally {
      await registry.stop();
    }
  });
});
