// The repositories page: every repository the user may pull, filtered as they type (on the
// server: ?q=), a page at a time, with tag count, size and last push.
import { CATALOG_SCOPE, request, type RepositoryUsage } from '../api.js';
import { age, bytes, count, dateTime } from '../format.js';
import { h, replace, table } from '../dom.js';
import type { Page } from '../main.js';

const PAGE_SIZE = 50;
/** The filter and the page survive a visit to a repository and back. */
const state = { q: '', cursors: [''] as string[] };

interface ListAnswer { repositories: RepositoryUsage[]; total: number }

function fetchPage(): Promise<Response> {
  const params = new URLSearchParams({ n: String(PAGE_SIZE) });
  if (state.q) params.set('q', state.q);
  const last = state.cursors[state.cursors.length - 1];
  if (last) params.set('last', last);
  return request(`api/v1/repositories?${params}`, { scopes: [CATALOG_SCOPE] });
}

/** Starts loading the page's rows at once (while the caller checks who is logged in). */
export function prefetchRepositories(): Promise<Response> {
  const early = fetchPage();
  early.catch(() => undefined); // a 401 here is handled by whoever checks the identity
  return early;
}

export async function repositoriesPage(page: Page, early?: Promise<Response>): Promise<void> {
  const filter = h('input', {
    id: 'filter', type: 'search', value: state.q, placeholder: 'e.g. team/web', autocomplete: 'off', spellcheck: 'false',
    'aria-controls': 'repo-results', 'aria-describedby': 'repo-count',
  });
  const counter = h('p', { id: 'repo-count', class: 'muted', role: 'status' });
  const results = h('div', { id: 'repo-results' });
  const prev = h('button', { type: 'button', class: 'secondary' }, '← Previous');
  const next = h('button', { type: 'button', class: 'secondary' }, 'Next →');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of repositories' }, prev, next);
  replace(page.main,
    page.heading('Repositories'),
    h('div', { class: 'toolbar' }, h('label', { for: 'filter' }, 'Filter repositories'), filter),
    counter, results, pager);

  let nextCursor: string | undefined;
  let loads = 0;
  const load = async () => {
    const id = ++loads;
    const res = await (early ?? fetchPage());
    early = undefined;
    const body = (await res.json()) as ListAnswer;
    if (id !== loads) return; // a newer filter was typed meanwhile
    nextCursor = /[?&]last=([^&>]*)/.exec(res.headers.get('Link') ?? '')?.[1];
    nextCursor = nextCursor === undefined ? undefined : decodeURIComponent(nextCursor);
    const first = (state.cursors.length - 1) * PAGE_SIZE;
    counter.textContent = body.total === 0 ? (state.q ? `No repository matches “${state.q}”.` : 'No repositories yet: push an image to start.')
      : `${count(first + 1)}–${count(first + body.repositories.length)} of ${count(body.total)} repositor${body.total === 1 ? 'y' : 'ies'}` +
        (state.q ? ` matching “${state.q}”` : '');
    replace(results, body.repositories.length === 0 ? null : table('Repositories', ['Name', 'Tags', 'Size', 'Last push'],
      body.repositories.map((r) => [
        h('a', { href: `#/r/${r.name}` }, r.name),
        count(r.tags),
        h('span', { title: `${count(r.bytes)} bytes; ${bytes(r.uniqueBytes)} not shared with other repositories` }, bytes(r.bytes)),
        r.lastPush ? h('time', { datetime: r.lastPush, title: dateTime(r.lastPush) }, age(r.lastPush)) : '–',
      ]), ['name', 'num', 'num', 'when']));
    prev.disabled = state.cursors.length <= 1;
    next.disabled = nextCursor === undefined;
    pager.hidden = prev.disabled && next.disabled;
  };

  let timer: number | undefined;
  filter.addEventListener('input', () => {
    clearTimeout(timer);
    timer = window.setTimeout(() => {
      state.q = filter.value.trim().toLowerCase();
      state.cursors = [''];
      void load().catch(showError);
    }, 120);
  });
  prev.addEventListener('click', () => {
    state.cursors.pop();
    void load().catch(showError);
  });
  next.addEventListener('click', () => {
    if (nextCursor === undefined) return;
    state.cursors.push(nextCursor);
    void load().catch(showError);
  });
  const showError = (err: unknown) => replace(results, h('p', { class: 'error', role: 'alert' }, String((err as Error).message ?? err)));
  await load();
}
