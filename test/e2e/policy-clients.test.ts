// What a docker user sees when a policy refuses a push: a private dockerd pushes to a berth
// process whose configuration makes v* tags of prod/** immutable and caps quota/web at one tag.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/registry.js';
import { DOCKER_TOOLS, IMAGE_TOOLS, needs, run, startBerth, testImages, type BerthProcess, type TestImages } from '../helpers/clients.js';
import { clientEnvs, stopDocker, type ClientEnvs } from '../helpers/image-clients.js';

const skip = needs(...DOCKER_TOOLS, 'busybox', ...IMAGE_TOOLS);
const DOCKER = '/usr/bin/docker';

/** Runs docker and gives back its error output when it fails. */
async function dockerFails(env: NodeJS.ProcessEnv, ...args: string[]): Promise<string> {
  const message = await run(DOCKER, args, env).then(() => undefined, (err: Error) => err.message);
  assert.ok(message, `docker ${args.join(' ')} should have failed`);
  return message;
}

describe('docker push against policies', () => {
  const work = tempDir('berth-policy-');
  const clientsDir = tempDir('clients-');
  let berth: BerthProcess;
  let images: TestImages;
  let envs: ClientEnvs;
  let loaded: string;

  before(async () => {
    if (skip) return;
    images = await testImages(join(work, 'img'));
    envs = await clientEnvs(clientsDir);
    const config = join(work, 'config.yml');
    writeFileSync(config, [
      'policies:',
      '  rules:',
      '    - repositories: ["prod/**"]',
      '      immutable: ["v*"]',
      '    - repositories: ["quota/web"]',
      '      quota: {tags: 1}',
      '',
    ].join('\n'));
    berth = await startBerth(join(work, 'data'), {}, ['--config', config]);
    loaded = (await run(DOCKER, ['load', '-i', join(images.dir, 'archives/web.docker.tar')], envs.docker)).match(/Loaded image: (\S+)/)![1]!;
  });
  after(async () => {
    await berth?.stop();
    if (envs) await stopDocker(clientsDir);
  });

  it('moving an immutable tag fails with the rule in docker\'s output; the same image pushes again', { skip }, async () => {
    const env = envs.docker;
    const ref = `${berth.host}/prod/web:v1`;
    await run(DOCKER, ['tag', loaded, ref], env);
    await run(DOCKER, ['push', ref], env);
    // another image under the same tag
    await run(DOCKER, ['import', join(images.dir, 'archives/web.rootfs.tar'), ref], env);
    const err = await dockerFails(env, 'push', ref);
    assert.match(err, /denied: tag v1 of prod\/web is immutable \(it matches v\* in policies\.rules\[0\]\.immutable\): it points at sha256:[0-9a-f]{64}/);
    // the original image again: the same digest, accepted
    await run(DOCKER, ['tag', loaded, ref], env);
    await run(DOCKER, ['push', ref], env);
    const tags = (await (await fetch(`${berth.url}/v2/prod/web/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['v1']);
  });

  it('a push past a tag quota fails with the quota, the limit and the usage in docker\'s output', { skip }, async () => {
    const env = envs.docker;
    await run(DOCKER, ['tag', loaded, `${berth.host}/quota/web:a`], env);
    await run(DOCKER, ['push', `${berth.host}/quota/web:a`], env);
    await run(DOCKER, ['tag', loaded, `${berth.host}/quota/web:b`], env);
    const err = await dockerFails(env, 'push', `${berth.host}/quota/web:b`);
    assert.match(err, /denied: quota exceeded: quota\/web may hold 1 tag \(policies\.rules\[1\]\.quota\.tags\) and holds 1; tag b would be one more/);
  });
});
