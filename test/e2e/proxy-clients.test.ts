// Real clients through the pull-through cache. The upstream is the reference registry with
// htpasswd; one Berth mirrors it as its default upstream (proxy.remoteurl, credentials from
// REGISTRY_PROXY_*) and again under the prefix mirror/ (credentials from named variables).
// The docker daemon, configured with registry-mirrors, pulls library/... through it; podman and
// skopeo pull 127.0.0.1:PORT/mirror/... directly.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DOCKER_TOOLS, IMAGE_TOOLS, needs, run, startBerth, testImages, type BerthProcess, type TestImages } from '../helpers/clients.js';
import { clientEnvs, dockerClient, podmanClient, stopDocker, type ClientEnvs } from '../helpers/image-clients.js';
import { tempDir } from '../helpers/registry.js';
import { countRequests, refRegistry, type RefRegistry } from '../helpers/upstreams.js';

const PASSWORD = 'ref-secret-pass';

describe('real clients through the pull-through cache', () => {
  const skip = needs(...IMAGE_TOOLS, 'docker-registry', 'htpasswd', 'curl');
  const work = tempDir('bp-');
  let images: TestImages;
  let ref: RefRegistry;
  let berth: BerthProcess;
  let envs: ClientEnvs | undefined;

  before(async () => {
    if (skip) return;
    images = await testImages(join(work, 'img'));
    ref = await refRegistry(join(work, 'ref'), 'refuser', PASSWORD);
    const host = new URL(ref.url).host;
    const creds = ['--dest-creds', `refuser:${PASSWORD}`, '--dest-tls-verify=false'];
    await run('skopeo', ['copy', '--quiet', ...creds, `docker-archive:${images.dir}/archives/web.docker.tar`, `docker://${host}/library/web:latest`]);
    await run('skopeo', ['copy', '--quiet', '--all', '--preserve-digests', ...creds, `oci:${images.dir}/oci/multi:latest`, `docker://${host}/library/multi:latest`]);
    const config = join(work, 'config.yml');
    writeFileSync(config, [
      'version: 0.1', 'proxy:', `  remoteurl: ${ref.url}`,
      '  upstreams:', '    - prefix: mirror/', `      remoteurl: ${ref.url}`, '      usernameenv: REF_USER', '      passwordenv: REF_PASS', '',
    ].join('\n'));
    berth = await startBerth(join(work, 'data'), {
      REGISTRY_PROXY_USERNAME: 'refuser', REGISTRY_PROXY_PASSWORD: PASSWORD, REF_USER: 'refuser', REF_PASS: PASSWORD,
    }, ['--config', config]);
  });

  after(async () => {
    if (envs) await stopDocker(work);
    await berth?.stop();
    await ref?.stop();
  });

  it('the docker daemon with registry-mirrors pulls library/ images through Berth', { skip: skip ?? needs(...DOCKER_TOOLS) }, async () => {
    envs = await clientEnvs(work, { registryMirror: berth.url });
    const docker = dockerClient(envs.docker);
    await docker.pull('web:latest'); // docker.io/library/web: there is no internet here, so only the mirror can answer
    assert.ok(await docker.has('web:latest'));
    const catalog = await (await fetch(`${berth.url}/v2/_catalog`)).json() as { repositories: string[] };
    assert.ok(catalog.repositories.includes('library/web'), JSON.stringify(catalog));
    await docker.rmi('web:latest');
    const before = countRequests(await ref.log(), 'GET', '/v2/library/web/blobs/');
    await docker.pull('web:latest'); // warm: the blobs come from Berth's storage
    assert.equal(countRequests(await ref.log(), 'GET', '/v2/library/web/blobs/'), before);
    await docker.pull(`${berth.host}/mirror/library/web:latest`); // a prefix, named directly
    assert.ok(await docker.has(`${berth.host}/mirror/library/web:latest`));
  });

  it('podman pulls 127.0.0.1:PORT/mirror/... ', { skip: skip ?? needs('podman', 'root') }, async () => {
    envs ??= await clientEnvs(work, { registryMirror: berth.url });
    const podman = podmanClient(envs.containers);
    await podman.pull(`${berth.host}/mirror/library/web:latest`);
    assert.ok(await podman.has(`${berth.host}/mirror/library/web:latest`));
  });

  it('skopeo copies a multi-platform index from 127.0.0.1:PORT/mirror/..., byte-identical', { skip }, async () => {
    const out = join(work, 'multi');
    await run('mkdir', ['-p', out]);
    await run('skopeo', ['copy', '--quiet', '--all', '--preserve-digests', '--src-tls-verify=false',
      `docker://${berth.host}/mirror/library/multi:latest`, `dir:${out}`]);
    const digest = `sha256:${createHash('sha256').update(readFileSync(join(out, 'manifest.json'))).digest('hex')}`;
    assert.equal(digest, images.digests['multi:latest']);
    const refused = await fetch(`${berth.url}/v2/mirror/library/multi/blobs/uploads/`, { method: 'POST' });
    assert.equal(refused.status, 405);
  });

  it('containerd with a hosts.toml mirror pulls through Berth, which routes it by ?ns=', { skip: skip ?? needs(...DOCKER_TOOLS, 'ctr') }, async () => {
    envs ??= await clientEnvs(work, { registryMirror: berth.url });
    const refHost = new URL(ref.url).host;
    const hosts = join(work, 'hosts');
    mkdirSync(join(hosts, refHost), { recursive: true });
    // the upstream itself wants credentials containerd does not have: only the mirror can answer
    writeFileSync(join(hosts, refHost, 'hosts.toml'), `server = "${ref.url}"\n\n[host."${berth.url}"]\n  capabilities = ["pull", "resolve"]\n`);
    const served = () => berth.log().split('\n')
      .filter((l) => l.includes('"route":"manifest"') && l.includes('"repository":"mirror/library/web"') && l.includes('"status":200')).length;
    const before = served();
    await run('ctr', ['--address', join(work, 'dockerd/exec/containerd/containerd.sock'), '--namespace', 'berth-test',
      'content', 'fetch', '--hosts-dir', hosts, `${refHost}/library/web:latest`]);
    assert.ok(served() > before, 'the request for library/web?ns=<upstream host> was served from mirror/library/web');
  });

  it('never logs the upstream password', { skip }, () => {
    assert.ok(!berth.log().includes(PASSWORD));
  });
});
