// Which upstream mirrors a repository: the longest configured prefix its name starts with (the
// prefix is stripped before the upstream is asked), else the default upstream (proxy.remoteurl)
// when there is one, else none: an ordinary local repository.
import { RegistryError } from '../registry/errors.js';
import type { Effect, RepositoryPolicy } from '../registry/content.js';
import { validateName } from '../registry/names.js';
import type { Upstream } from './upstream.js';

export interface Route {
  upstream: Upstream;
  /** The repository's name at the upstream. */
  remote: string;
}

const DOCKER_HUB = new Set(['registry-1.docker.io', 'index.docker.io', 'docker.io', 'registry.hub.docker.com']);

export class UpstreamRoutes implements RepositoryPolicy {
  private readonly byPrefix: Upstream[];
  private readonly fallback: Upstream | undefined;

  constructor(upstreams: Upstream[]) {
    this.byPrefix = upstreams.filter((u) => u.config.prefix).sort((a, b) => b.config.prefix.length - a.config.prefix.length);
    this.fallback = upstreams.find((u) => !u.config.prefix);
  }

  route(name: string): Route | undefined {
    for (const upstream of this.byPrefix) {
      const prefix = upstream.config.prefix;
      if (name.startsWith(`${prefix}/`)) return { upstream, remote: remoteName(upstream, name.slice(prefix.length + 1)) };
    }
    return this.fallback ? { upstream: this.fallback, remote: remoteName(this.fallback, name) } : undefined;
  }

  /** containerd's mirrors send `?ns=<upstream host>`: a configured upstream's repositories live under its prefix. */
  localName(name: string, query: URLSearchParams): string {
    const ns = query.get('ns');
    if (!ns) return name;
    const upstream = [...this.byPrefix, ...(this.fallback ? [this.fallback] : [])].find((u) => sameHost(u.config.host, ns));
    if (!upstream || !upstream.config.prefix || this.route(name)?.upstream === upstream) return name;
    return validateName(`${upstream.config.prefix}/${name}`);
  }

  check(name: string, effect: Effect): void {
    if (effect !== 'write') return;
    const route = this.route(name);
    if (!route) return;
    const { prefix } = route.upstream.config;
    throw new RegistryError('UNSUPPORTED', prefix
      ? `${name} is under ${prefix}/, a cache of ${route.upstream.url}: pushes are refused there; push to a repository outside the proxy prefixes`
      : `this registry is a cache of ${route.upstream.url} (proxy.remoteurl): pushes are refused; configure proxy.upstreams with prefixes to keep local repositories beside it`,
    { repository: name, upstream: route.upstream.url, prefix: prefix ? `${prefix}/` : '' });
  }
}

/** Docker Hub keeps official images under library/: `alpine` is `library/alpine` there. */
function remoteName(upstream: Upstream, name: string): string {
  return DOCKER_HUB.has(new URL(upstream.url).hostname) && !name.includes('/') ? `library/${name}` : name;
}

function sameHost(host: string, ns: string): boolean {
  const bare = (h: string) => h.toLowerCase().replace(/:443$/, '');
  const a = bare(host);
  const b = bare(ns);
  return a === b || (DOCKER_HUB.has(a) && DOCKER_HUB.has(b));
}
