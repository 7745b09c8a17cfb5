// The registry:2 tutorial with every real client: docker (a private dockerd), podman and
// buildah push to and pull from a berth process. One scenario body runs for each client.
import { strict as assert } from 'node:assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/registry.js';
import { DOCKER_TOOLS, IMAGE_TOOLS, needs, run, startBerth, testImages, type BerthProcess, type TestImages } from '../helpers/clients.js';
import { buildahClient, clientEnvs, dockerClient, podmanClient, stopDocker, type ClientEnvs, type ImageClient } from '../helpers/image-clients.js';

const skip = needs(...DOCKER_TOOLS, 'podman', 'buildah', 'busybox', ...IMAGE_TOOLS);
const DOCKER_ACCEPT = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';

/** Uploads (POSTs) berth has answered so far for one repository, from its access log. */
function uploadsFor(berth: BerthProcess, repo: string): number {
  return berth.log().split('\n').filter((l) => l.includes('"method":"POST"') && l.includes(`/v2/${repo}/blobs/uploads`)).length;
}

async function manifestDigest(berth: BerthProcess, repo: string, tag: string): Promise<string> {
  const res = await fetch(`${berth.url}/v2/${repo}/manifests/${tag}`, { method: 'HEAD', headers: { Accept: DOCKER_ACCEPT } });
  assert.equal(res.status, 200, `${repo}:${tag}`);
  return res.headers.get('docker-content-digest')!;
}

/** The tutorial: load, tag, push, list, remove, pull by tag and by digest, push again. */
async function tutorial(client: ImageClient, berth: BerthProcess, images: TestImages): Promise<void> {
  const repo = `tutorial/${client.name}`;
  const ref = `${berth.host}/${repo}:v1`;
  const loaded = await client.load(join(images.dir, 'archives/web.docker.tar'));
  await client.tag(loaded, ref);
  await client.push(ref);

  const catalog = await (await fetch(`${berth.url}/v2/_catalog`)).json() as { repositories: string[] };
  assert.ok(catalog.repositories.includes(repo), `${repo} in ${catalog.repositories}`);
  assert.deepEqual(await (await fetch(`${berth.url}/v2/${repo}/tags/list`)).json(), { name: repo, tags: ['v1'] });

  await client.rmi(ref, loaded);
  assert.equal(await client.has(ref), false);
  await client.pull(ref);
  assert.equal(await client.has(ref), true);
  const digest = await manifestDigest(berth, repo, 'v1');
  await client.pull(`${berth.host}/${repo}@${digest}`);

  // pushing the same image again uploads nothing: every blob is already there
  const uploadsBefore = uploadsFor(berth, repo);
  await client.push(ref);
  assert.equal(uploadsFor(berth, repo), uploadsBefore);
}

/** Multi-platform: an index pushed by skopeo --all, pulled for one platform. */
async function pullPlatform(client: ImageClient, berth: BerthProcess): Promise<void> {
  const ref = `${berth.host}/multi/index:latest`;
  await client.pull(ref, 'linux/arm64');
  assert.equal(await client.architecture(ref), 'arm64');
}

describe('real clients against berth', () => {
  const work = tempDir('berth-clients-');
  const clientsDir = tempDir('clients-');
  let berth: BerthProcess;
  let images: TestImages;
  let envs: ClientEnvs;
  let clients: ImageClient[];

  before(async () => {
    if (skip) return;
    images = await testImages(join(work, 'img'));
    envs = await clientEnvs(clientsDir);
    clients = [dockerClient(envs.docker), podmanClient(envs.containers), buildahClient(envs.containers)];
    berth = await startBerth(join(work, 'data'));
    await run('skopeo', ['copy', '--quiet', '--all', '--preserve-digests', '--dest-tls-verify=false',
      `oci:${images.dir}/oci/multi:latest`, `docker://${berth.host}/multi/index:latest`]);
  });
  after(async () => {
    await berth?.stop();
    if (envs) await stopDocker(clientsDir);
  });

  for (const name of ['docker', 'podman', 'buildah']) {
    it(`${name}: load, tag, push, rmi, pull by tag and digest, re-push skips every blob`, { skip }, async () => {
      await tutorial(clients.find((c) => c.name === name)!, berth, images);
    });
    it(`${name}: pulls one platform of a multi-platform index`, { skip }, async () => {
      await pullPlatform(clients.find((c) => c.name === name)!, berth);
    });
  }

  it('docker: an imported root filesystem pushes, and the pulled image runs', { skip }, async () => {
    const env = envs.docker;
    const ref = `${berth.host}/imported/web:v1`;
    await run('/usr/bin/docker', ['import', join(images.dir, 'archives/web.rootfs.tar'), ref], env);
    await run('/usr/bin/docker', ['push', ref], env);
    await run('/usr/bin/docker', ['rmi', ref], env);
    await run('/usr/bin/docker', ['pull', ref], env);
    const out = await run('/usr/bin/docker', ['run', '--rm', '--network', 'none', ref, '/bin/busybox', 'cat', '/www/index.html'], env);
    assert.match(out, /hello from the web test image/);
  });

  it('podman search lists the catalog', { skip }, async () => {
    const out = await run('podman', ['search', '--tls-verify=false', '--format', '{{.Name}}', `${berth.host}/`], envs.containers);
    assert.match(out, /tutorial\/podman/);
    assert.match(out, /multi\/index/);
  });

  it('buildah bud builds on a pulled image and pushes the result', { skip }, async () => {
    const ctx = join(work, 'build');
    mkdirSync(ctx, { recursive: true });
    writeFileSync(join(ctx, 'hello.txt'), 'built by buildah\n');
    writeFileSync(join(ctx, 'Containerfile'), `FROM ${berth.host}/tutorial/buildah:v1\nCOPY hello.txt /hello.txt\nLABEL org.example.built=yes\n`);
    const ref = `${berth.host}/built/app:v1`;
    await run('buildah', ['bud', '--tls-verify=false', '--isolation', 'chroot', '-t', ref, ctx], envs.containers);
    await run('buildah', ['push', '--tls-verify=false', ref], envs.containers);
    const config = await run('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${ref}`]);
    assert.equal((JSON.parse(config) as { config: { Labels: Record<string, string> } }).config.Labels['org.example.built'], 'yes');
  });

  it('buildah manifest push --all pushes a multi-platform list it assembled', { skip }, async () => {
    const env = envs.containers;
    const list = `${berth.host}/assembled/list:v1`;
    await run('buildah', ['manifest', 'create', 'assembled-list'], env);
    for (const arch of ['amd64', 'arm64']) {
      await run('buildah', ['manifest', 'add', '--tls-verify=false', '--arch', arch, 'assembled-list',
        `docker://${berth.host}/multi/index@${images.digests[`multi@${arch}`]}`], env);
    }
    await run('buildah', ['manifest', 'push', '--tls-verify=false', '--all', 'assembled-list', `docker://${list}`], env);
    const raw = JSON.parse(await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${list}`])) as { manifests: { digest: string }[] };
    assert.deepEqual(raw.manifests.map((m) => m.digest).sort(), [images.digests['multi@amd64'], images.digests['multi@arm64']].sort());
  });

  it('docker and podman push the same image at the same time', { skip }, async () => {
    const ref = `${berth.host}/together/small:v1`;
    const docker = clients.find((c) => c.name === 'docker')!;
    const podman = clients.find((c) => c.name === 'podman')!;
    for (const client of [docker, podman]) await client.tag(await client.load(join(images.dir, 'archives/small.docker.tar')), ref);
    await Promise.all([docker.push(ref), podman.push(ref)]);
    const digest = await manifestDigest(berth, 'together/small', 'v1');
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${berth.host}/together/small@${digest}`, `dir:${join(work, 'together')}`]);
  });
});
