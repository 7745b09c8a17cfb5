// The real container clients behind one small interface, so that one scenario body runs
// against each: docker (a private dockerd), podman and buildah (isolated storage).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { run, SUPPORT } from './clients.js';
import { atExit } from './scratch.js';

export interface ImageClient {
  name: string;
  /** Loads a `docker save` tarball; returns the local reference of the loaded image. */
  load(archive: string): Promise<string>;
  tag(source: string, target: string): Promise<void>;
  push(ref: string): Promise<string>;
  pull(ref: string, platform?: string): Promise<string>;
  rmi(...refs: string[]): Promise<void>;
  /** Whether an image is present in the client's local store. */
  has(ref: string): Promise<boolean>;
  /** The architecture of a local image. */
  architecture(ref: string): Promise<string>;
}

export interface ClientEnvs {
  docker: NodeJS.ProcessEnv;
  containers: NodeJS.ProcessEnv;
}

function parseExports(text: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const match of text.matchAll(/^export (\w+)='?([^'\n]*)'?$/gm)) env[match[1]!] = match[2]!;
  return env;
}

const DOCKERD = join(SUPPORT, 'dockerd.sh');
const stopAtExit = new Map<string, () => void>();

/**
 * Starts a private dockerd in `dir`/dockerd and prepares podman/buildah/skopeo configuration in
 * `dir`/containers. Keep `dir` short (a tempDir): the daemon's socket lives in it.
 */
export async function clientEnvs(dir: string, options: { registryMirror?: string } = {}): Promise<ClientEnvs> {
  const dockerDir = join(dir, 'dockerd');
  // stopped at exit too, should the suite's after hook not get to it
  stopAtExit.set(dir, atExit(() => { execFileSync('bash', [DOCKERD, 'stop', dockerDir], { stdio: 'ignore' }); }));
  const docker = parseExports(await run('bash', [DOCKERD, 'start', dockerDir],
    options.registryMirror ? { DOCKERD_REGISTRY_MIRROR: options.registryMirror } : {}));
  const containers = parseExports(await run('bash', [join(SUPPORT, 'containers-env.sh'), join(dir, 'containers')]));
  return { docker, containers };
}

/** Stops the dockerd that clientEnvs started in `dir` and deletes its state. */
export async function stopDocker(dir: string): Promise<void> {
  await run('bash', [DOCKERD, 'stop', join(dir, 'dockerd')]);
  stopAtExit.get(dir)?.();
  stopAtExit.delete(dir);
}

const DOCKER = '/usr/bin/docker';

export function dockerClient(env: NodeJS.ProcessEnv): ImageClient {
  const docker = (...args: string[]) => run(DOCKER, args, env);
  return {
    name: 'docker',
    load: async (archive) => (await docker('load', '-i', archive)).match(/Loaded image: (\S+)/)![1]!,
    tag: async (s, t) => { await docker('tag', s, t); },
    push: (ref) => docker('push', ref),
    pull: (ref, platform) => docker('pull', ...(platform ? ['--platform', platform] : []), ref),
    rmi: async (...refs) => { await docker('rmi', ...refs); },
    has: async (ref) => docker('image', 'inspect', ref).then(() => true, () => false),
    architecture: async (ref) => (await docker('image', 'inspect', '--format', '{{.Architecture}}', ref)).trim(),
  };
}

/** podman and buildah share the containers/image stack and flags. */
function containersClient(tool: 'podman' | 'buildah', env: NodeJS.ProcessEnv): ImageClient {
  const cli = (...args: string[]) => run(tool, args, env);
  return {
    name: tool,
    load: async (archive) => {
      if (tool === 'podman') return (await cli('load', '-i', archive)).match(/Loaded image(?:\(s\))?: (\S+)/)![1]!;
      await cli('pull', '--quiet', `docker-archive:${archive}`);
      return (await cli('images', '--format', '{{.Name}}:{{.Tag}}', '--noheading')).split('\n').find((l) => /web:latest$/.test(l))!.trim();
    },
    tag: async (s, t) => { await cli('tag', s, t); },
    push: (ref) => cli('push', '--tls-verify=false', ref),
    pull: (ref, platform) => {
      const flags = platform ? (tool === 'podman' ? ['--platform', platform] : ['--arch', platform.split('/')[1]!]) : [];
      return cli('pull', '--tls-verify=false', ...flags, ref);
    },
    rmi: async (...refs) => { await cli('rmi', ...refs); },
    has: async (ref) => run(tool === 'podman' ? 'podman' : 'buildah', tool === 'podman' ? ['image', 'exists', ref] : ['inspect', '--type', 'image', ref], env)
      .then(() => true, () => false),
    architecture: async (ref) => {
      const out = tool === 'podman'
        ? await cli('image', 'inspect', '--format', '{{.Architecture}}', ref)
        : await cli('inspect', '--type', 'image', '--format', '{{.OCIv1.Architecture}}', ref);
      return out.trim();
    },
  };
}

export const podmanClient = (env: NodeJS.ProcessEnv) => containersClient('podman', env);
export const buildahClient = (env: NodeJS.ProcessEnv) => containersClient('buildah', env);
