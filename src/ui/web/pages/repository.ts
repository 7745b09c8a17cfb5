// A repository: its tags (newest push first) with short digests to copy, sizes, platforms and
// ages; the docker pull command; its untagged manifests; its policies when it has any; and,
// for users with the delete right, deleting a tag, a manifest or the whole repository.
import { BASE, json, repoScope, request, type Me, type Policies, type RepositoryDetail, type Summary, type TagDetail, type UntaggedDetail } from '../api.js';
import { age, bytes, count, dateTime, shortDigest } from '../format.js';
import { announce, confirmDialog, copyButton, h, replace, table, type Child } from '../dom.js';
import { navigate, type Page } from '../main.js';

/** The host (and path prefix) clients pull from: this page's own. */
export const pullHost = (): string => location.host + BASE.replace(/\/$/, '');

export async function rights(name: string): Promise<Set<string>> {
  const me = await json<Me>(`api/v1/me?repository=${encodeURIComponent(name)}`, { scopes: [repoScope(name, 'pull,push,delete')] });
  return new Set(me.repository?.actions ?? []);
}

export function digestCell(name: string, digest: string): HTMLElement {
  return h('span', { class: 'digest' },
    h('a', { href: `#/r/${name}@${digest}`, title: digest }, h('code', null, shortDigest(digest))),
    copyButton(digest, `Copy the digest ${digest}`));
}

export function platformsCell(s: Summary): Child {
  if (s.kind === 'artifact') return h('code', { class: 'small wrap', title: 'artifact type' }, s.artifactType ?? 'artifact');
  return s.platforms.length ? h('span', { class: 'platforms' }, s.platforms.map((p) => h('span', { class: 'badge' }, p))) : '–';
}

function policiesPanel(policies: Policies | undefined): Child {
  if (!policies) return null;
  const items: Child[] = [];
  if (policies.immutable?.length) items.push(h('li', null, 'Immutable tags: ', policies.immutable.map((p, i) => [i ? ', ' : '', h('code', null, p)])));
  for (const [what, quota] of Object.entries(policies.quota ?? {})) {
    if (!quota) continue;
    const shown = (n: number | undefined) => (n === undefined ? '–' : what === 'bytes' ? bytes(n) : count(n));
    items.push(h('li', null, `Quota on ${what}: ${shown(quota.used)} used of ${shown(quota.limit)}`,
      quota.limit ? h('meter', { min: 0, max: quota.limit, value: quota.used ?? 0, 'aria-label': `${what} used` }) : null));
  }
  const r = policies.retention;
  if (r && Object.values(r).some((v) => v !== undefined)) {
    const parts = [
      r.last !== undefined && `keep the last ${r.last} tags`, r.within && `keep tags pushed within ${r.within}`,
      r.matching && `applies to tags matching ${r.matching}`, r.protected && `never removes tags matching ${r.protected}`,
      r.untagged && `untagged manifests go after ${r.untagged}`,
    ].filter(Boolean) as string[];
    items.push(h('li', null, `Retention: ${parts.join('; ')}`));
  }
  return items.length ? h('section', { class: 'panel', 'aria-labelledby': 'policies' }, h('h2', { id: 'policies' }, 'Policies'), h('ul', null, items)) : null;
}

export async function deleteManifest(name: string, digest: string, tags: string[]): Promise<boolean> {
  const ok = await confirmDialog(`Delete manifest ${shortDigest(digest)}?`, [
    h('p', null, 'This removes the manifest ', h('code', { class: 'wrap' }, digest), ' from ', h('strong', null, name),
      tags.length ? [' and the tags pointing at it: ', tags.map((t, i) => [i ? ', ' : '', h('strong', null, t)]), '.'] : ' (no tag points at it).'),
    h('p', null, 'Its layers are freed by the next garbage collection unless other manifests use them.'),
  ], 'Delete manifest');
  if (!ok) return false;
  await request(`v2/${name}/manifests/${digest}`, { method: 'DELETE', scopes: [repoScope(name, 'delete')] });
  announce(`Deleted manifest ${shortDigest(digest)} from ${name}.`);
  return true;
}

export async function repositoryPage(page: Page, name: string): Promise<void> {
  const [repo, can] = await Promise.all([
    json<RepositoryDetail>(`api/v1/repositories/${name}`, { scopes: [repoScope(name)] }),
    rights(name),
  ]);
  const mayDelete = can.has('delete');
  const host = pullHost();
  const newest = repo.tagList[0];
  const pull = newest ? `docker pull ${host}/${name}:${newest.name}` : undefined;

  const deleteTag = async (tag: TagDetail) => {
    const ok = await confirmDialog(`Delete tag ${tag.name}?`, [
      h('p', null, 'This removes the tag ', h('strong', null, `${name}:${tag.name}`), '. The manifest ', h('code', null, shortDigest(tag.digest)),
        ' stays in the repository (untagged) until it is deleted or collected.'),
    ], 'Delete tag');
    if (!ok) return;
    await request(`v2/${name}/manifests/${encodeURIComponent(tag.name)}`, { method: 'DELETE', scopes: [repoScope(name, 'delete')] });
    announce(`Deleted tag ${name}:${tag.name}.`);
    navigate(location.hash);
  };
  const deleteRepository = async () => {
    const ok = await confirmDialog(`Delete repository ${name}?`, [
      h('p', null, 'This removes ', h('strong', null, name), ` with its ${count(repo.tags)} tag${repo.tags === 1 ? '' : 's'} and ${count(repo.manifests)} manifest${repo.manifests === 1 ? '' : 's'}.`),
      h('p', null, `${bytes(repo.uniqueBytes)} that no other repository uses is freed by the next garbage collection.`),
    ], 'Delete repository');
    if (!ok) return;
    await request(`api/v1/repositories/${name}`, { method: 'DELETE', scopes: [repoScope(name, 'delete')] });
    announce(`Deleted repository ${name}.`);
    navigate('#/');
  };
  const guard = (action: () => Promise<void>) => () => void action().catch((err: Error) => announce(err.message, 'error'));

  const tagFilter = h('input', { id: 'tag-filter', type: 'search', autocomplete: 'off', spellcheck: 'false', 'aria-controls': 'tags-table' });
  const tagRows = h('div', { id: 'tags-table' });
  const showTags = () => {
    const q = tagFilter.value.trim().toLowerCase();
    const shown = repo.tagList.filter((t) => !q || t.name.toLowerCase().includes(q));
    replace(tagRows, shown.length === 0 ? h('p', { class: 'muted' }, repo.tagList.length ? 'No tag matches.' : 'No tags.') :
      table('Tags', ['Tag', 'Digest', 'Size', 'Platforms', 'Pushed', ...(mayDelete ? ['Actions'] : [])], shown.map((t) => [
        h('span', { class: 'tag' }, h('strong', null, t.name),
          copyButton(`docker pull ${host}/${name}:${t.name}`, `Copy the pull command for ${t.name}`)),
        digestCell(name, t.digest),
        bytes(t.size),
        platformsCell(t),
        t.pushedAt ? h('time', { datetime: t.pushedAt, title: dateTime(t.pushedAt) }, age(t.pushedAt)) : '–',
        mayDelete ? h('button', { type: 'button', class: 'danger small', onclick: guard(() => deleteTag(t)), 'aria-label': `Delete tag ${t.name}` }, 'Delete') : null,
      ]), ['', '', 'num', '', 'when', 'actions']));
  };
  tagFilter.addEventListener('input', showTags);
  showTags();

  const untagged = repo.untagged;
  const role = (u: UntaggedDetail): Child => u.role === 'referrer' && u.subject ? h('span', { class: 'digest' }, 'attached to ', digestCell(name, u.subject))
    : u.role === 'platform' ? 'a platform of an index' : h('span', { title: 'removed by garbage collection with deleteuntagged' }, 'untagged');

  replace(page.main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/' }, 'Repositories'), ' / ', h('span', { 'aria-current': 'page' }, name)),
    page.heading(name),
    h('dl', { class: 'facts' },
      h('dt', null, 'Tags'), h('dd', null, count(repo.tags)),
      h('dt', null, 'Manifests'), h('dd', null, count(repo.manifests)),
      h('dt', null, 'Size'), h('dd', null, bytes(repo.bytes), h('span', { class: 'muted' }, ` (${bytes(repo.uniqueBytes)} its own)`)),
      h('dt', null, 'Last push'), h('dd', null, repo.lastPush ? h('time', { datetime: repo.lastPush, title: dateTime(repo.lastPush) }, age(repo.lastPush)) : '–')),
    pull ? h('section', { class: 'pull', 'aria-labelledby': 'pull-title' },
      h('h2', { id: 'pull-title', class: 'small-title' }, 'Pull the newest tag'),
      h('div', { class: 'command' }, h('code', null, pull), copyButton(pull, 'Copy the pull command'))) : null,
    policiesPanel(repo.policies),
    h('section', { 'aria-labelledby': 'tags-title' },
      h('div', { class: 'section-head' }, h('h2', { id: 'tags-title' }, `Tags (${count(repo.tagList.length)})`),
        repo.tagList.length > 5 ? h('span', { class: 'inline-field' }, h('label', { for: 'tag-filter' }, 'Filter tags'), tagFilter) : null),
      tagRows),
    h('section', { 'aria-labelledby': 'untagged-title' },
      h('h2', { id: 'untagged-title' }, `Untagged manifests (${count(untagged.length)})`),
      untagged.length === 0 ? h('p', { class: 'muted' }, 'None: every manifest has a tag.') :
        table('Untagged manifests', ['Digest', 'Kind', 'Size', 'Platforms or type', 'Kept as', ...(mayDelete ? ['Actions'] : [])], untagged.map((u) => [
          digestCell(name, u.digest), u.kind, bytes(u.size), platformsCell(u), role(u),
          mayDelete ? h('button', {
            type: 'button', class: 'danger small', 'aria-label': `Delete manifest ${shortDigest(u.digest)}`,
            onclick: guard(async () => { if (await deleteManifest(name, u.digest, [])) navigate(location.hash); }),
          }, 'Delete') : null,
        ]), ['', '', 'num', '', '', 'actions'])),
    mayDelete ? h('section', { class: 'danger-zone', 'aria-labelledby': 'danger-title' },
      h('h2', { id: 'danger-title' }, 'Delete this repository'),
      h('p', null, 'Removes every tag and manifest of ', h('strong', null, name), '.'),
      h('button', { type: 'button', class: 'danger', onclick: guard(deleteRepository) }, `Delete ${name}`)) : null,
  );
}
