// Access control with real clients: docker login/logout, podman login and skopeo --creds against
// htpasswd; the docker daemon through the token flow; docker pushing over TLS with a CA the test makes.
import { strict as assert } from 'node:assert';
import { mkdirSync, rmSync, copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/registry.js';
import { DOCKER_TOOLS, IMAGE_TOOLS, needs, run, startBerth, testImages, type BerthProcess, type TestImages } from '../helpers/clients.js';
import { clientEnvs, stopDocker, type ClientEnvs } from '../helpers/image-clients.js';
import { makeHtpasswd, makePki, type Pki } from '../helpers/pki.js';

const DOCKER = '/usr/bin/docker';
const skip = needs(...DOCKER_TOOLS, 'podman', 'skopeo', 'htpasswd', 'openssl', ...IMAGE_TOOLS);

describe('access control with real clients', () => {
  const work = tempDir('berth-authe2e-');
  const clientsDir = tempDir('clients-');
  let envs: ClientEnvs;
  let images: TestImages;
  let pki: Pki;
  let htpasswd: string;
  const berths: BerthProcess[] = [];
  let certsDir: string | undefined;
  const docker = (...args: string[]) => run(DOCKER, args, envs.docker);

  before(async () => {
    if (skip) return;
    images = await testImages(join(work, 'img'));
    envs = await clientEnvs(clientsDir);
    pki = await makePki(join(work, 'pki'));
    htpasswd = join(work, 'htpasswd');
    await makeHtpasswd(htpasswd, { testuser: 'testpass' });
    await docker('load', '-i', join(images.dir, 'archives/small.docker.tar'));
  });
  after(async () => {
    for (const b of berths) await b.stop();
    if (certsDir) rmSync(certsDir, { recursive: true, force: true });
    if (envs) await stopDocker(clientsDir);
  });

  it('htpasswd: docker login, push, logout; nothing without credentials; podman and skopeo with credentials', { skip }, async () => {
    const berth = await startBerth(join(work, 'basic'), {
      REGISTRY_AUTH_HTPASSWD_REALM: 'berth-realm', REGISTRY_AUTH_HTPASSWD_PATH: htpasswd,
    });
    berths.push(berth);
    const ref = `${berth.host}/private/small:v1`;
    await docker('tag', 'small:v1', ref);
    await assert.rejects(docker('push', ref), /no basic auth credentials|unauthorized|authentication required/i);
    await assert.rejects(docker('login', '-u', 'testuser', '-p', 'wrong', berth.host), /unauthorized|invalid username or password/i);
    await docker('login', '-u', 'testuser', '-p', 'testpass', berth.host);
    await docker('push', ref);
    await docker('rmi', ref);
    await docker('pull', ref);
    await docker('logout', berth.host);
    await docker('rmi', ref);
    await assert.rejects(docker('pull', ref), /no basic auth credentials|unauthorized|authentication required/i);

    const podman = (...args: string[]) => run('podman', args, envs.containers);
    await assert.rejects(podman('pull', '--tls-verify=false', ref));
    await podman('login', '--tls-verify=false', '-u', 'testuser', '-p', 'testpass', berth.host);
    await podman('pull', '--tls-verify=false', ref);
    await podman('logout', berth.host);

    const out = join(work, 'skopeo-pull');
    mkdirSync(out, { recursive: true });
    await assert.rejects(run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--src-creds', 'testuser:wrong', `docker://${ref}`, `dir:${out}`]));
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--src-creds', 'testuser:testpass', `docker://${ref}`, `dir:${out}`]);
    const tags = await run('skopeo', ['list-tags', '--tls-verify=false', '--creds', 'testuser:testpass', `docker://${berth.host}/private/small`]);
    assert.deepEqual((JSON.parse(tags) as { Tags: string[] }).Tags, ['v1']);
  });

  it('token flow: the docker daemon logs in through the embedded token server and pushes', { skip }, async () => {
    const config = join(work, 'token.yml');
    writeFileSync(config, [
      'version: 0.1',
      'tokenserver:',
      '  enabled: true',
      `  htpasswd: ${htpasswd}`,
      `  key: ${pki.tokenKey}`,
      '  service: berth-e2e',
      'access:',
      '  rules:',
      '    - repositories: ["**"]',
      '      users: {testuser: [pull, push, delete]}',
      '',
    ].join('\n'));
    const berth = await startBerth(join(work, 'token'), {}, ['--config', config]);
    berths.push(berth);
    const challenge = await fetch(`${berth.url}/v2/`);
    assert.match(challenge.headers.get('www-authenticate')!, /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/auth\/token",service="berth-e2e"$/);
    const ref = `${berth.host}/tokens/small:v1`;
    await docker('tag', 'small:v1', ref);
    await assert.rejects(docker('push', ref));
    await docker('login', '-u', 'testuser', '-p', 'testpass', berth.host);
    await docker('push', ref);
    await docker('rmi', ref);
    await docker('pull', ref);
    assert.ok(berth.log().includes('"user":"testuser"'), 'the access log names the user');
    await docker('logout', berth.host);
  });

  it('TLS: the docker daemon pushes to berth over HTTPS with a CA the test made', { skip }, async () => {
    const berth = await startBerth(join(work, 'tls'), {
      REGISTRY_HTTP_TLS_CERTIFICATE: pki.serverCert, REGISTRY_HTTP_TLS_KEY: pki.serverKey,
    });
    berths.push(berth);
    certsDir = join('/etc/docker/certs.d', berth.host);
    mkdirSync(certsDir, { recursive: true });
    copyFileSync(pki.caCert, join(certsDir, 'ca.crt'));
    const ref = `${berth.host}/secure/small:v1`;
    await docker('tag', 'small:v1', ref);
    await docker('push', ref);
    const { request } = await import('node:https');
    const { readFileSync } = await import('node:fs');
    const tags = await new Promise<string>((resolve, reject) => {
      request(`https://${berth.host}/v2/secure/small/tags/list`, { ca: readFileSync(pki.caCert) }, (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => resolve(body));
      }).on('error', reject).end();
    });
    assert.deepEqual(JSON.parse(tags), { name: 'secure/small', tags: ['v1'] });
  });
});
