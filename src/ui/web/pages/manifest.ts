// A manifest or an index: for an index each platform and its manifest; for an image the config
// summary (created, entrypoint and cmd, env, ports, labels, history) and the layers with their
// sizes; for both the referrers (signatures, SBOMs, attestations) grouped by artifactType, and
// the raw JSON. Everything comes from /v2/.
import { json, MANIFEST_ACCEPT, repoScope, request } from '../api.js';
import { bytes, count, dateTime, shortDigest } from '../format.js';
import { copyButton, h, replace, table, type Child } from '../dom.js';
import { navigate, type Page } from '../main.js';
import { deleteManifest, digestCell, rights } from './repository.js';

interface Descriptor {
  mediaType?: string; digest: string; size?: number; artifactType?: string;
  annotations?: Record<string, string>; platform?: { os?: string; architecture?: string; variant?: string; 'os.version'?: string };
}
interface ManifestDoc {
  mediaType?: string; artifactType?: string; config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[];
  subject?: Descriptor; annotations?: Record<string, string>;
}
interface ImageConfig {
  created?: string; architecture?: string; os?: string; variant?: string; author?: string;
  config?: { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[] | null; ExposedPorts?: Record<string, unknown> | null;
    Labels?: Record<string, string> | null; WorkingDir?: string; User?: string };
  history?: { created?: string; created_by?: string; comment?: string; empty_layer?: boolean }[];
}

const IMAGE_CONFIGS = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

const platform = (p: Descriptor['platform']): string =>
  p?.os ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') + (p['os.version'] ? ` (${p['os.version']})` : '') : 'unspecified';

const words = (list: string[] | null | undefined): Child => (list?.length ? h('code', null, list.map((w) => JSON.stringify(w)).join(' ')) : '–');

function configSection(cfg: ImageConfig): HTMLElement {
  const c = cfg.config ?? {};
  const labels = Object.entries(c.Labels ?? {});
  return h('section', { 'aria-labelledby': 'config-title' },
    h('h2', { id: 'config-title' }, 'Configuration'),
    h('dl', { class: 'facts wide' },
      h('dt', null, 'Platform'), h('dd', null, [cfg.os, cfg.architecture, cfg.variant].filter(Boolean).join('/') || '–'),
      h('dt', null, 'Created'), h('dd', null, cfg.created ? h('time', { datetime: cfg.created }, dateTime(cfg.created)) : '–'),
      h('dt', null, 'Entrypoint'), h('dd', null, words(c.Entrypoint)),
      h('dt', null, 'Cmd'), h('dd', null, words(c.Cmd)),
      c.WorkingDir ? [h('dt', null, 'Working directory'), h('dd', null, h('code', null, c.WorkingDir))] : null,
      c.User ? [h('dt', null, 'User'), h('dd', null, h('code', null, c.User))] : null,
      h('dt', null, 'Exposed ports'), h('dd', null, Object.keys(c.ExposedPorts ?? {}).join(', ') || '–'),
      h('dt', null, 'Environment'), h('dd', null, c.Env?.length ? h('ul', { class: 'plain' }, c.Env.map((e) => h('li', null, h('code', { class: 'wrap' }, e)))) : '–'),
      h('dt', null, 'Labels'), h('dd', null, labels.length ? h('ul', { class: 'plain' }, labels.map(([k, v]) => h('li', null, h('code', { class: 'wrap' }, `${k}=${v}`)))) : '–')),
    cfg.history?.length ? h('details', null, h('summary', null, `History (${cfg.history.length} steps)`),
      table('History', ['Created', 'Step'], cfg.history.map((s) => [
        s.created ? dateTime(s.created) : '–',
        h('code', { class: 'wrap' }, (s.created_by ?? s.comment ?? '').replace(/^\/bin\/sh -c #\(nop\)\s*/, '')),
      ]))) : null);
}

function annotationList(annotations: Record<string, string> | undefined): Child {
  const shown = Object.entries(annotations ?? {}).filter(([k]) => k !== 'org.opencontainers.image.created');
  return shown.length ? h('ul', { class: 'plain' }, shown.map(([k, v]) => h('li', null, h('code', { class: 'wrap' }, `${k}=${v}`)))) : '–';
}

async function referrersSection(name: string, digest: string): Promise<HTMLElement> {
  let list: Descriptor[] = [];
  let note: string | undefined;
  try {
    list = (await json<{ manifests?: Descriptor[] }>(`v2/${name}/referrers/${digest}`, { scopes: [repoScope(name)] })).manifests ?? [];
  } catch (err) {
    note = `The referrers could not be listed: ${(err as Error).message}`;
  }
  const groups = new Map<string, Descriptor[]>();
  for (const d of list) {
    const type = d.artifactType ?? d.mediaType ?? 'unknown';
    groups.set(type, [...(groups.get(type) ?? []), d]);
  }
  return h('section', { 'aria-labelledby': 'referrers-title' },
    h('h2', { id: 'referrers-title' }, `Referrers (${count(list.length)})`),
    note ? h('p', { class: 'error' }, note) : null,
    list.length === 0 && !note ? h('p', { class: 'muted' }, 'No signatures, SBOMs or attestations are attached to this manifest.') : null,
    [...groups].map(([type, items]) => h('div', { class: 'group' },
      h('h3', null, h('code', null, type), ` (${items.length})`),
      table(`Referrers of type ${type}`, ['Digest', 'Size', 'Created', 'Annotations'], items.map((d) => [
        digestCell(name, d.digest), bytes(d.size),
        d.annotations?.['org.opencontainers.image.created'] ? dateTime(d.annotations['org.opencontainers.image.created']) : '–',
        annotationList(d.annotations),
      ]), ['', 'num', 'when', '']))));
}

export async function manifestPage(page: Page, name: string, digest: string): Promise<void> {
  const res = await request(`v2/${name}/manifests/${digest}`, { accept: MANIFEST_ACCEPT, scopes: [repoScope(name)] });
  const raw = await res.text();
  const mediaType = res.headers.get('Content-Type') ?? '';
  const doc = JSON.parse(raw) as ManifestDoc;
  const isIndex = Array.isArray(doc.manifests);
  const [can, referrers] = await Promise.all([rights(name), referrersSection(name, digest)]);
  let body: Child[] = [];
  if (isIndex) {
    const children = doc.manifests ?? [];
    body = [h('section', { 'aria-labelledby': 'platforms-title' },
      h('h2', { id: 'platforms-title' }, `Platforms (${children.length})`),
      table('Platforms', ['Platform', 'Manifest', 'Size', 'Media type'], children.map((m) => [
        h('strong', null, platform(m.platform)), digestCell(name, m.digest), bytes(m.size), h('code', { class: 'small' }, m.mediaType ?? '–'),
      ]), ['', '', 'num', '']))];
  } else {
    const layers = doc.layers ?? [];
    const total = layers.reduce((sum, l) => sum + (l.size ?? 0), 0);
    let config: ImageConfig | undefined;
    const cfg = doc.config;
    if (cfg && IMAGE_CONFIGS.has(cfg.mediaType ?? '') && (cfg.size ?? 0) < 4 << 20) {
      config = await json<ImageConfig>(`v2/${name}/blobs/${cfg.digest}`, { accept: '*/*', scopes: [repoScope(name)] }).catch(() => undefined);
    }
    const artifact = doc.artifactType ?? (cfg && !IMAGE_CONFIGS.has(cfg.mediaType ?? '') ? cfg.mediaType : undefined);
    body = [
      artifact ? h('p', null, 'Artifact of type ', h('code', null, artifact)) : null,
      config ? configSection(config) : null,
      h('section', { 'aria-labelledby': 'layers-title' },
        h('h2', { id: 'layers-title' }, `Layers (${layers.length}, ${bytes(total)})`),
        layers.length ? table('Layers', ['#', 'Digest', 'Size', 'Media type'], layers.map((l, i) => [
          String(i + 1), h('span', { class: 'digest' }, h('code', { title: l.digest }, shortDigest(l.digest)), copyButton(l.digest, `Copy the digest of layer ${i + 1}`)),
          h('span', { title: `${count(l.size ?? 0)} bytes` }, bytes(l.size)),
          h('code', { class: 'small' }, l.annotations?.['org.opencontainers.image.title'] ?? l.mediaType ?? '–'),
        ]), ['num', '', 'num', '']) : h('p', { class: 'muted' }, 'No layers.')),
    ];
  }
  const mayDelete = can.has('delete');
  replace(page.main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/' }, 'Repositories'), ' / ',
      h('a', { href: `#/r/${name}` }, name), ' / ', h('span', { 'aria-current': 'page' }, shortDigest(digest))),
    page.heading(isIndex ? 'Index ' : 'Manifest ', h('code', null, shortDigest(digest))),
    h('dl', { class: 'facts wide' },
      h('dt', null, 'Repository'), h('dd', null, h('a', { href: `#/r/${name}` }, name)),
      h('dt', null, 'Digest'), h('dd', null, h('code', { class: 'wrap' }, digest), copyButton(digest, 'Copy the digest')),
      h('dt', null, 'Media type'), h('dd', null, h('code', null, mediaType)),
      h('dt', null, 'Manifest size'), h('dd', null, bytes(raw.length)),
      doc.subject ? [h('dt', null, 'Attached to'), h('dd', null, digestCell(name, doc.subject.digest))] : null),
    h('div', { class: 'command' }, h('code', null, `docker pull ${location.host}/${name}@${digest}`),
      copyButton(`docker pull ${location.host}/${name}@${digest}`, 'Copy the pull command')),
    body,
    referrers,
    h('section', { 'aria-labelledby': 'raw-title' },
      h('div', { class: 'section-head' }, h('h2', { id: 'raw-title' }, 'Raw manifest'), copyButton(raw, 'Copy the raw manifest')),
      h('pre', { class: 'raw', tabindex: 0, 'aria-label': 'Raw manifest JSON' }, JSON.stringify(doc, null, 2))),
    mayDelete ? h('section', { class: 'danger-zone', 'aria-labelledby': 'danger-title' },
      h('h2', { id: 'danger-title' }, 'Delete this manifest'),
      h('button', {
        type: 'button', class: 'danger', onclick: () => void (async () => {
          const repo = await json<{ tagList: { name: string; digest: string }[] }>(`api/v1/repositories/${name}`, { scopes: [repoScope(name)] });
          if (await deleteManifest(name, digest, repo.tagList.filter((t) => t.digest === digest).map((t) => t.name))) navigate(`#/r/${name}`);
        })(),
      }, 'Delete manifest')) : null,
  );
}
