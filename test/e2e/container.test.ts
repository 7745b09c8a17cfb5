// Berth as a container image: built with the real docker daemon from a Node base image made
// offline, then the registry:2 tutorial run against the running container, an existing
// root-owned data directory, and registry:2's commands inside the container.
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { chmodSync, cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/registry.js';
import { DOCKER_TOOLS, freePort, IMAGE_TOOLS, needs, PROJECT_ROOT, run, SUPPORT, testImages, waitForRegistry, type TestImages } from '../helpers/clients.js';
import { clientEnvs, stopDocker } from '../helpers/image-clients.js';

const DOCKER = '/usr/bin/docker';
const IMAGE = 'berth:e2e';
const BASE = 'berth-node-base:e2e';
const skip = needs(...DOCKER_TOOLS, 'busybox', ...IMAGE_TOOLS);

describe('the berth container image', { skip }, () => {
  const work = tempDir('berth-image-');
  const clientsDir = tempDir('clients-');
  const name = `local_registry_${process.pid}`;
  let env: NodeJS.ProcessEnv;
  let images: TestImages;
  let port: number;
  const docker = (...args: string[]) => run(DOCKER, args, env, 600_000);

  before(async () => {
    if (skip) return;
    images = await testImages(join(work, 'img'));
    env = (await clientEnvs(clientsDir)).docker;
    await run('bash', [join(SUPPORT, 'node-base-image.sh'), BASE], env);
    await run(DOCKER, ['build', '--quiet', '--network', 'host', '--build-arg', `BASE_IMAGE=${BASE}`, '-t', IMAGE, PROJECT_ROOT],
      { ...env, DOCKER_BUILDKIT: '0' }, 600_000);
    port = await freePort();
    // no bridge network on this machine: the container shares the host's, listening on `port`
    await docker('container', 'run', '-d', '--network', 'host', '--name', name, '--health-interval', '1s',
      '-e', `REGISTRY_HTTP_ADDR=127.0.0.1:${port}`, '-e', 'REGISTRY_STORAGE_DELETE_ENABLED=true', IMAGE);
    await waitForRegistry(`http://127.0.0.1:${port}`);
  });
  after(async () => {
    if (!env) return;
    await docker('rm', '-f', '-v', name).catch(() => undefined);
    await stopDocker(clientsDir);
  });

  it('is configured like registry:2: port 5000, volume, config path, root, entrypoint, health check', async () => {
    const config = JSON.parse(await docker('image', 'inspect', '--format', '{{json .Config}}', IMAGE)) as {
      User: string; ExposedPorts: Record<string, unknown>; Volumes: Record<string, unknown>; Cmd: string[]; Entrypoint: string[];
      Env: string[]; Healthcheck: unknown;
    };
    assert.equal(config.User, ''); // root, as registry:2: its root-owned data directories work as they are
    assert.deepEqual(Object.keys(config.ExposedPorts), ['5000/tcp']);
    assert.deepEqual(Object.keys(config.Volumes), ['/var/lib/registry']);
    assert.deepEqual(config.Entrypoint, ['/entrypoint.sh']);
    assert.deepEqual(config.Cmd, ['/etc/docker/registry/config.yml']);
    assert.ok(config.Env.includes('REGISTRY_CONFIGURATION_PATH=/etc/docker/registry/config.yml'));
    assert.ok(config.Healthcheck);
    const deadline = Date.now() + 30_000;
    let health = '';
    while (Date.now() < deadline && health !== 'healthy') {
      health = (await docker('inspect', '--format', '{{.State.Health.Status}}', name)).trim();
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(health, 'healthy');
  });

  it('runs the tutorial: tag, push, rmi, pull, catalog, tags, and the data on the host', { skip }, async () => {
    const host = `localhost:${port}`;
    await docker('load', '-i', join(images.dir, 'archives/small.docker.tar'));
    await docker('tag', 'small:v1', `${host}/myalpine:v1`);
    await docker('push', `${host}/myalpine:v1`);
    await docker('rmi', `${host}/myalpine:v1`, 'small:v1');
    await docker('pull', `${host}/myalpine:v1`);
    const catalog = await (await fetch(`http://${host}/v2/_catalog`)).json();
    assert.deepEqual(catalog, { repositories: ['myalpine'] });
    assert.deepEqual(await (await fetch(`http://${host}/v2/myalpine/tags/list`)).json(), { name: 'myalpine', tags: ['v1'] });
    const mounts = JSON.parse(await docker('container', 'inspect', '--format', '{{json .Mounts}}', name)) as { Source: string; Destination: string }[];
    const volume = mounts.find((m) => m.Destination === '/var/lib/registry')!;
    assert.ok(existsSync(join(volume.Source, 'docker/registry/v2/repositories/myalpine/_manifests/tags/v1/current/link')));
  });

  it('takes REGISTRY_* overrides from the environment', { skip }, async () => {
    const res = await fetch(`http://127.0.0.1:${port}/v2/myalpine/manifests/v1`, { method: 'DELETE' });
    assert.equal(res.status, 202); // deletes are off in the image's config.yml; the variable turned them on
  });

  it('has berth and registry on PATH: docker exec ... berth gc, registry garbage-collect CONFIG', async () => {
    assert.match(await docker('exec', name, 'berth', 'version'), /^berth \d+\.\d+\.\d+/);
    // a registry serves this storage, so only a dry run is allowed while it runs
    assert.match(await docker('exec', name, 'berth', 'gc', '--dry-run'), /garbage collection \(dry run\) done/);
    assert.match(await docker('exec', name, 'registry', 'garbage-collect', '--dry-run', '/etc/docker/registry/config.yml'),
      /garbage collection \(dry run\) done/);
  });

  /** A copy of the tutorial's data, root-owned and closed to others, as registry:2 leaves a host directory. */
  function rootOwnedData(): string {
    const mounts = JSON.parse(dockerSync.mounts!) as { Source: string; Destination: string }[];
    const dir = tempDir('berth-registry2-data-');
    cpSync(mounts.find((m) => m.Destination === '/var/lib/registry')!.Source, dir, { recursive: true });
    chmodSync(dir, 0o700);
    return dir;
  }
  const dockerSync: { mounts?: string } = {};

  it('serves an existing root-owned data directory, as registry:2 does', async () => {
    dockerSync.mounts = await docker('container', 'inspect', '--format', '{{json .Mounts}}', name);
    const data = rootOwnedData();
    const other = await freePort();
    const second = `${name}_rootowned`;
    await docker('container', 'run', '-d', '--network', 'host', '--name', second, '-v', `${data}:/var/lib/registry`,
      '-e', `REGISTRY_HTTP_ADDR=127.0.0.1:${other}`, IMAGE);
    try {
      await waitForRegistry(`http://127.0.0.1:${other}`);
      assert.deepEqual(await (await fetch(`http://127.0.0.1:${other}/v2/_catalog`)).json(), { repositories: ['myalpine'] });
      await docker('tag', `localhost:${port}/myalpine:v1`, `localhost:${other}/myalpine:v2`);
      await docker('push', `localhost:${other}/myalpine:v2`);
      assert.ok(existsSync(join(data, 'docker/registry/v2/repositories/myalpine/_manifests/tags/v2/current/link')));
    } finally {
      await docker('rm', '-f', second).catch(() => undefined);
    }
    // registry:2's one-off form: docker run IMAGE garbage-collect CONFIG
    assert.match(await docker('container', 'run', '--rm', '--network', 'none', '-v', `${data}:/var/lib/registry`, IMAGE,
      'garbage-collect', '--dry-run', '/etc/docker/registry/config.yml'), /garbage collection \(dry run\) done/);
  });

  it('with --user 1000:1000 on a root-owned directory, stops at once naming the fix', async () => {
    const data = rootOwnedData();
    const result = await new Promise<{ code: number | null; stderr: string }>((resolvePromise) => {
      execFile(DOCKER, ['container', 'run', '--rm', '--network', 'none', '--user', '1000:1000', '-v', `${data}:/var/lib/registry`, IMAGE],
        { env: { ...process.env, ...env }, timeout: 60_000 }, (err, _stdout, stderr) => {
          resolvePromise({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0, stderr });
        });
    });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /data directory \/var\/lib\/registry: this process \(uid 1000, gid 1000\) may not read and write \/var\/lib\/registry/);
    assert.match(result.stderr, /run chown -R 1000:1000 \/var\/lib\/registry \(for a container volume, on the host directory mounted there\)/);
    assert.match(result.stderr, /leave out --user/);
  });

  it('with --user 1000:1000 on a new named volume, serves and stores', async () => {
    const volume = `berth-e2e-${process.pid}`;
    const unprivileged = `${name}_user`;
    const other = await freePort();
    await docker('container', 'run', '-d', '--network', 'host', '--user', '1000:1000', '--name', unprivileged,
      '-v', `${volume}:/var/lib/registry`, '-e', `REGISTRY_HTTP_ADDR=127.0.0.1:${other}`, IMAGE);
    try {
      await waitForRegistry(`http://127.0.0.1:${other}`);
      assert.equal((await fetch(`http://127.0.0.1:${other}/v2/unprivileged/blobs/uploads/`, { method: 'POST' })).status, 202);
      assert.equal((await docker('exec', unprivileged, 'id', '-u')).trim(), '1000');
    } finally {
      await docker('rm', '-f', unprivileged).catch(() => undefined);
      await docker('volume', 'rm', volume).catch(() => undefined);
    }
  });
});
