// Berth as a container image: built with the real docker daemon from a Node base image made
// offline, then the registry:2 tutorial run against the running container.
import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/registry.js';
import { DOCKER_TOOLS, freePort, IMAGE_TOOLS, needs, PROJECT_ROOT, run, SUPPORT, testImages, waitForRegistry, type TestImages } from '../helpers/clients.js';
import { clientEnvs, stopDocker } from '../helpers/image-clients.js';

const DOCKER = '/usr/bin/docker';
const IMAGE = 'berth:e2e';
const BASE = 'berth-node-base:e2e';
const skip = needs(...DOCKER_TOOLS, 'busybox', ...IMAGE_TOOLS);

describe('the berth container image', () => {
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

  it('is configured like registry:2: port 5000, volume, config path, non-root, health check', { skip }, async () => {
    const config = JSON.parse(await docker('image', 'inspect', '--format', '{{json .Config}}', IMAGE)) as {
      User: string; ExposedPorts: Record<string, unknown>; Volumes: Record<string, unknown>; Cmd: string[]; Healthcheck: unknown;
    };
    assert.equal(config.User, '1000:1000');
    assert.deepEqual(Object.keys(config.ExposedPorts), ['5000/tcp']);
    assert.deepEqual(Object.keys(config.Volumes), ['/var/lib/registry']);
    assert.deepEqual(config.Cmd, ['serve', '/etc/docker/registry/config.yml']);
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
});
