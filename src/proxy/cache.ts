// The pull-through cache: a ContentReader decorator. For a repository that mirrors an upstream
// (routes.ts) it answers from storage when it can and from the upstream otherwise, storing
// what it fetched; every other repository goes straight to the local reader.
//  - manifests by digest are immutable: cached for good;
//  - a cached tag is served until its tagttl, then checked with a HEAD and fetched again only
//    when its digest changed;
//  - when the upstream is unreachable, times out, or answers 429 or 5xx, a cached copy is served
//    (header `Berth-Cache: stale`, a log line, a metric); an uncached name gets an error naming
//    the upstream and what it answered;
//  - concurrent requests for the same manifest or blob make one upstream request (single flight).
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { BlobDescriptor, BlobStore } from '../registry/blobs.js';
import type { BlobBody, ContentReader, Notes } from '../registry/content.js';
import { RegistryError } from '../registry/errors.js';
import type { Manifest } from '../registry/manifests.js';
import { parseManifest } from '../registry/media-types.js';
import type { MetadataStore } from '../registry/metadata.js';
import { Digest, isTag, looksLikeDigest, parseDigest } from '../registry/names.js';
import type { StorageDriver } from '../storage/driver.js';
import { BlobFill } from './blob-fill.js';
import type { Route, UpstreamRoutes } from './routes.js';
import { readText, UpstreamFailure } from './upstream.js';

/** What the cache reports, for metrics. */
export interface CacheObserver {
  hit(upstream: string, kind: 'manifest' | 'blob'): void;
  miss(upstream: string, kind: 'manifest' | 'blob'): void;
  bytes(upstream: string, n: number): void;
  stale(upstream: string): void;
}

const NO_OBSERVER: CacheObserver = { hit: () => undefined, miss: () => undefined, bytes: () => undefined, stale: () => undefined };

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json', 'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** The largest tag list read from an upstream (about 100,000 tags). */
const MAX_TAG_LIST = 8 << 20;

/** Pages of an upstream's tag list followed at most. */
const MAX_TAG_PAGES = 100;

/** The next page of a tag list, as a path below the repository, from a Link header. */
function nextTagPage(link: string | null): string {
  const match = link ? /<[^>]*\/tags\/list\?([^>]*)>\s*;\s*rel="?next"?/.exec(link) : null;
  return match ? `tags/list?${match[1]}` : '';
}

/** How long a finished blob fill stays joinable. */
const FILL_LINGER_MS = 5000;

const MISS: Notes = { 'Berth-Cache': 'miss' };
const HIT: Notes = { 'Berth-Cache': 'hit' };

export interface CacheDeps {
  local: ContentReader;
  routes: UpstreamRoutes;
  store: MetadataStore;
  blobs: BlobStore;
  driver: StorageDriver;
  maxManifestBytes: number;
  /** Every stored repository (the catalog). */
  repositories: () => Promise<string[]>;
  log: Logger;
  observer?: CacheObserver;
}

export class PullThroughCache implements ContentReader {
  private readonly manifestFlights = new Map<string, Promise<Manifest>>();
  private readonly headFlights = new Map<string, Promise<string | undefined>>();
  private readonly fills = new Map<string, BlobFill>();
  /** When each cached tag was last found current upstream (`name:tag`); a restart checks again. */
  private readonly checkedAt = new Map<string, number>();
  /** When this process last recorded a pull of each cached tag. */
  private readonly touchedAt = new Map<string, number>();
  private readonly local: ContentReader;
  private readonly observer: CacheObserver;

  constructor(private readonly deps: CacheDeps) {
    this.local = deps.local;
    this.observer = deps.observer ?? NO_OBSERVER;
  }

  async manifest(name: string, reference: string): Promise<Manifest & { notes?: Notes }> {
    const route = this.deps.routes.route(name);
    if (!route) return this.local.manifest(name, reference);
    const url = route.upstream.url;
    if (looksLikeDigest(reference)) {
      if (await this.deps.store.revision(name, parseDigest(reference))) {
        this.observer.hit(url, 'manifest');
        return { ...(await this.local.manifest(name, reference)), notes: HIT };
      }
      return this.fetchManifest(route, name, reference);
    }
    if (!isTag(reference)) return this.local.manifest(name, reference);
    this.pulled(route, name, reference);
    const cached = await this.deps.store.tag(name, reference);
    if (!cached) return this.fetchManifest(route, name, reference);
    const key = `${name}:${reference}`;
    const checked = this.checkedAt.get(key);
    if (checked !== undefined && Date.now() - checked < route.upstream.config.tagTtlMs) {
      this.observer.hit(url, 'manifest');
      return { ...(await this.local.manifest(name, reference)), notes: HIT };
    }
    try {
      const current = await this.headManifest(route, name, reference);
      if (current === cached.toString()) {
        this.checkedAt.set(key, Date.now());
        this.observer.hit(url, 'manifest');
        return { ...(await this.local.manifest(name, reference)), notes: HIT };
      }
      return { ...(await this.manifestFlight(route, name, reference)), notes: MISS };
    } catch (err) {
      if (!(err instanceof UpstreamFailure && err.transient)) throw clientError(err, 'manifest', reference);
      return { ...(await this.local.manifest(name, reference)), notes: this.servedStale(route, name, err, `tag ${reference}`) };
    }
  }

  async blobStat(name: string, digest: Digest): Promise<BlobDescriptor & { notes?: Notes }> {
    const route = this.deps.routes.route(name);
    if (!route) return this.local.blobStat(name, digest);
    if (await this.linkStored(route, name, digest)) return { ...(await this.local.blobStat(name, digest)), notes: HIT };
    const fill = this.fills.get(fillKey(route, digest));
    if (fill) return { digest, size: await fill.ready.catch((err) => { throw clientError(err, 'blob', digest.toString()); }), notes: MISS };
    // answered from the upstream, so that a cache in front of this one finds the blob too
    const answer = await route.upstream.request('HEAD', route.remote, `blobs/${digest}`, 'blob-head')
      .catch((err) => { throw clientError(err, 'blob', digest.toString()); });
    if (answer.res.status !== 200) throw clientError(await route.upstream.failure(answer, `blob ${digest}`), 'blob', digest.toString());
    answer.release();
    return { digest, size: Number(answer.res.headers.get('content-length') ?? -1), notes: MISS };
  }

  async blob(name: string, digest: Digest): Promise<BlobBody> {
    const route = this.deps.routes.route(name);
    if (!route) return this.local.blob(name, digest);
    if (await this.linkStored(route, name, digest)) {
      this.observer.hit(route.upstream.url, 'blob');
      return { ...(await this.local.blob(name, digest)), notes: HIT };
    }
    // a fill is shared by the repositories of one upstream only: another upstream must confirm the blob itself
    const key = fillKey(route, digest);
    let fill = this.fills.get(key);
    if (!fill) {
      this.observer.miss(route.upstream.url, 'blob');
      const created = new BlobFill(this.deps.driver, this.deps.store, name, digest, route.upstream.url, async () => {
        const answer = await route.upstream.stream(route.remote, `blobs/${digest}`, 'blob');
        return { body: answer.body, size: answer.size, release: answer.release };
      }, (n) => this.observer.bytes(route.upstream.url, n));
      fill = created;
      this.fills.set(key, created);
      const forget = () => { if (this.fills.get(key) === created) this.fills.delete(key); };
      created.done.then(() => {
        this.deps.log.info({ repository: name, digest: digest.toString(), upstream: route.upstream.url }, 'blob cached from upstream');
        // kept a little after the commit, so that a request that just missed it joins rather than fetching again
        setTimeout(forget, FILL_LINGER_MS).unref();
      }, (err: Error) => {
        forget();
        this.deps.log.warn({ repository: name, digest: digest.toString(), upstream: route.upstream.url, reason: err.message }, 'blob not cached');
      });
    } else {
      this.observer.hit(route.upstream.url, 'blob');
    }
    const size = await fill.ready.catch((err) => { throw clientError(err, 'blob', digest.toString()); });
    if (fill.name !== name) fill.done.then(() => this.deps.store.mountBlob(name, digest)).catch(() => undefined);
    const active = fill;
    return {
      digest, size, ranges: false, notes: active.complete ? HIT : MISS, // complete: the bytes are here, being committed
      send: (dest) => active.sendTo(dest).catch((err) => { throw clientError(err, 'blob', digest.toString()); }),
    };
  }

  async tags(name: string): Promise<{ tags: string[]; notes?: Notes }> {
    const route = this.deps.routes.route(name);
    if (!route) return this.local.tags(name);
    try {
      // every page: upstreams that paginate (Link: <...?n=&last=>; rel="next") are followed to the end
      const tags = new Set<string>();
      let path = 'tags/list';
      for (let page = 0; page < MAX_TAG_PAGES && path; page++) {
        const answer = await route.upstream.request('GET', route.remote, path, 'tags');
        if (answer.res.status !== 200) throw await route.upstream.failure(answer, `the tags of ${route.remote}`);
        try {
          const body = JSON.parse(await readText(answer.res, MAX_TAG_LIST)) as { tags?: unknown };
          if (Array.isArray(body.tags)) for (const t of body.tags) if (typeof t === 'string' && isTag(t)) tags.add(t);
        } catch {
          throw new UpstreamFailure(route.upstream.url, `answered the tags of ${route.remote} with something other than a tag list`, 502);
        } finally {
          answer.release();
        }
        path = nextTagPage(answer.res.headers.get('link'));
      }
      return { tags: [...tags].sort(), notes: MISS };
    } catch (err) {
      if (!(err instanceof UpstreamFailure)) throw err;
      if (err.status === 404) throw new RegistryError('NAME_UNKNOWN', `repository ${route.remote} is not known to ${route.upstream.url}`, { name });
      if (!err.transient) throw clientError(err, 'repository', name);
      const { tags } = await this.local.tags(name).catch(() => { throw clientError(err, 'repository', name); });
      return { tags, notes: this.servedStale(route, name, err, 'tag list') };
    }
  }

  /**
   * Drops the tags of cached repositories not pulled within their upstream's ttl (measured from
   * the tag's last pull, or from when it was fetched); what they alone referenced is then
   * collectable (storage.maintenance.gc with deleteuntagged). Returns how many tags went.
   */
  async expire(now = Date.now()): Promise<number> {
    let dropped = 0;
    for (const name of await this.deps.repositories()) {
      const route = this.deps.routes.route(name);
      if (!route || route.upstream.config.ttlMs <= 0) continue; // a ttl of 0 keeps cached tags for good
      const tags = await this.deps.store.tags(name).catch(() => [] as string[]);
      for (const tag of tags) {
        const used = await this.deps.store.tagUsedAt(name, tag);
        if (used === undefined || now - used <= route.upstream.config.ttlMs) continue;
        if (await this.deps.store.deleteTag(name, tag)) {
          dropped++;
          this.checkedAt.delete(`${name}:${tag}`);
          this.deps.log.info({ repository: name, tag, upstream: route.upstream.url }, 'cached tag expired: not pulled within the ttl');
        }
      }
    }
    return dropped;
  }

  /** Records a pull of a cached tag (at most every tenth of the ttl, and at most once a minute). */
  private pulled(route: Route, name: string, tag: string): void {
    const key = `${name}:${tag}`;
    const now = Date.now();
    const last = this.touchedAt.get(key) ?? 0;
    if (now - last < Math.min(60_000, route.upstream.config.ttlMs / 10)) return;
    if (this.touchedAt.size > 100_000) this.touchedAt.clear();
    this.touchedAt.set(key, now);
    // a tag fetched by this pull is written with the current time anyway
    void this.deps.store.touchTag(name, tag).catch(() => undefined);
  }

  /**
   * Whether the blob is linked into `name` and stored. Content stored for another repository is
   * linked here only once this repository's upstream confirms it holds the blob: a mirror never
   * serves what its upstream would not (a private local blob, another upstream's content).
   */
  private async linkStored(route: Route, name: string, digest: Digest): Promise<boolean> {
    if (await this.deps.blobs.present(name, digest)) return true;
    if (!(await this.deps.blobs.statGlobal(digest))) return false;
    const answer = await route.upstream.request('HEAD', route.remote, `blobs/${digest}`, 'blob-head').catch(() => undefined);
    if (!answer) return false;
    answer.release();
    return answer.res.status === 200 && this.deps.store.mountBlob(name, digest);
  }

  private servedStale(route: Route, name: string, err: UpstreamFailure, what: string): Notes {
    this.observer.stale(route.upstream.url);
    this.deps.log.warn({ repository: name, upstream: route.upstream.url, reason: err.message }, `upstream failed: serving the cached ${what}`);
    // upstream text in a header: printable ASCII only
    return { 'Berth-Cache': 'stale', 'Berth-Cache-Reason': err.message.replace(/[^\x20-\x7e]/g, ' ').slice(0, 300) };
  }

  /** The digest the upstream's tag points at now (undefined when it does not say). */
  private headManifest(route: Route, name: string, tag: string): Promise<string | undefined> {
    const key = `${name}:${tag}`;
    let flight = this.headFlights.get(key);
    if (!flight) {
      flight = (async () => {
        const answer = await route.upstream.request('HEAD', route.remote, `manifests/${tag}`, 'manifest-head', { Accept: MANIFEST_ACCEPT });
        if (answer.res.status !== 200) throw await route.upstream.failure(answer, `manifest ${route.remote}:${tag}`);
        answer.release();
        return answer.res.headers.get('docker-content-digest') ?? undefined;
      })().finally(() => this.headFlights.delete(key));
      this.headFlights.set(key, flight);
    }
    return flight;
  }

  private async fetchManifest(route: Route, name: string, reference: string): Promise<Manifest & { notes?: Notes }> {
    try {
      return { ...(await this.manifestFlight(route, name, reference)), notes: MISS };
    } catch (err) {
      throw clientError(err, 'manifest', reference);
    }
  }

  /** One download of a manifest at a time; failures are UpstreamFailure. */
  private manifestFlight(route: Route, name: string, reference: string): Promise<Manifest> {
    const key = `${name}@${reference}`;
    let flight = this.manifestFlights.get(key);
    if (!flight) {
      this.observer.miss(route.upstream.url, 'manifest');
      flight = this.download(route, name, reference).finally(() => this.manifestFlights.delete(key));
      this.manifestFlights.set(key, flight);
    }
    return flight;
  }

  private async download(route: Route, name: string, reference: string): Promise<Manifest> {
    const { upstream, remote } = route;
    const answer = await upstream.request('GET', remote, `manifests/${reference}`, 'manifest', { Accept: MANIFEST_ACCEPT });
    let content: Buffer;
    try {
      if (answer.res.status !== 200) throw await upstream.failure(answer, `manifest ${remote}:${reference}`);
      content = await readLimited(answer.res, this.deps.maxManifestBytes, upstream.url);
    } finally {
      answer.release();
    }
    const expected = looksLikeDigest(reference) ? parseDigest(reference) : undefined;
    const algorithm = expected?.algorithm ?? 'sha256';
    const digest = new Digest(algorithm, createHash(algorithm).update(content).digest('hex'));
    const announced = answer.res.headers.get('docker-content-digest');
    if ((expected && expected.hex !== digest.hex) || (!expected && announced?.startsWith('sha256:') && announced !== digest.toString())) {
      throw new UpstreamFailure(upstream.url, `sent manifest bytes whose digest is ${digest}, not ${expected ?? announced}: not kept`, 502);
    }
    let parsed;
    try {
      parsed = parseManifest(content, answer.res.headers.get('content-type') ?? undefined);
    } catch (err) {
      throw new UpstreamFailure(upstream.url, `sent a manifest for ${remote}:${reference} that Berth cannot store: ${(err as Error).message}`, 502);
    }
    const tag = expected ? undefined : reference;
    await this.deps.store.putManifest(name, {
      digest, mediaType: parsed.mediaType, content, blobs: parsed.blobs, children: parsed.manifests,
      subject: parsed.subject ? parseDigest(parsed.subject.digest) : undefined, deferReferences: true,
    }, tag);
    if (tag) this.checkedAt.set(`${name}:${tag}`, Date.now());
    this.deps.log.info({ repository: name, reference, digest: digest.toString(), upstream: upstream.url }, 'manifest cached from upstream');
    return { digest, mediaType: parsed.mediaType, content };
  }
}

async function readLimited(res: Response, limit: number, upstream: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      total += chunk.byteLength;
      if (total > limit) throw new UpstreamFailure(upstream, `sent a manifest over the ${limit}-byte limit`, 502);
      chunks.push(Buffer.from(chunk));
    }
  } catch (err) {
    if (err instanceof UpstreamFailure) throw err;
    throw new UpstreamFailure(upstream, `stopped sending a manifest: ${(err as Error).message}`);
  }
  return Buffer.concat(chunks);
}

/** An upstream's failure as the error a client gets: the upstream, and what it answered. */
export function clientError(err: unknown, kind: 'manifest' | 'blob' | 'repository', what: string): unknown {
  if (!(err instanceof UpstreamFailure)) return err;
  const detail = { upstream: err.upstream, status: err.status };
  switch (err.status) {
    case 404:
      if (kind === 'manifest') return new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${what} (${err.message})`, detail);
      if (kind === 'blob') return new RegistryError('BLOB_UNKNOWN', `blob unknown: ${what} (${err.message})`, detail);
      return new RegistryError('NAME_UNKNOWN', `repository unknown: ${what} (${err.message})`, detail);
    case 401:
    case 403:
      return new RegistryError('DENIED', `${err.message}: check the proxy credentials for this upstream`, detail);
    case 429: {
      const error = new RegistryError('TOOMANYREQUESTS', err.message, detail);
      return err.retryAfter ? error.withHeaders({ 'Retry-After': err.retryAfter }) : error;
    }
    case undefined:
      return new RegistryError('UNAVAILABLE', err.message, detail, 503);
    default:
      return new RegistryError('UNAVAILABLE', err.message, detail, 502);
  }
}

function fillKey(route: Route, digest: Digest): string {
  return `${route.upstream.url} ${digest}`;
}
