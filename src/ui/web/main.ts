// The web UI's entry: the layout, who is logged in, and the hash router
// (#/ repositories, #/r/<name> a repository, #/r/<name>@<digest> a manifest, #/status, #/login).
import { ApiError, credentials, json, logOut, type Me } from './api.js';
import { h, replace } from './dom.js';
import { loginPage } from './pages/login.js';
import { manifestPage } from './pages/manifest.js';
import { prefetchRepositories, repositoriesPage } from './pages/repositories.js';
import { repositoryPage } from './pages/repository.js';
import { statusPage } from './pages/status.js';

export interface Page {
  /** The main element to fill. */
  main: HTMLElement;
  me: Me;
  /** Sets the document title and the page's heading (focused after a navigation, for screen readers). */
  heading(text: string, ...extra: (Node | string)[]): HTMLHeadingElement;
}

const main = document.getElementById('main')!;
const account = document.getElementById('account')!;
let me: Me | undefined;
let renders = 0;

export function navigate(hash: string): void {
  if (location.hash === hash) void render();
  else location.hash = hash;
}

/** Who the caller is; a 401 means the registry wants credentials. */
async function whoAmI(): Promise<Me> {
  me ??= await json<Me>('api/v1/me', { scopes: ['registry:catalog:*'] });
  return me;
}

export function forgetIdentity(): void {
  me = undefined;
}

function showAccount(current: Me | undefined): void {
  const user = current?.user ?? credentials()?.user;
  if (user && current) {
    replace(account, h('span', { class: 'user' }, 'Signed in as ', h('strong', null, user)), ' ',
      h('button', { type: 'button', class: 'link', onclick: () => { logOut(); forgetIdentity(); navigate('#/login'); } }, 'Log out'));
  } else if (current && current.auth !== 'none') {
    replace(account, h('a', { href: '#/login' }, 'Log in'));
  } else {
    replace(account);
  }
}

function markNav(route: string): void {
  for (const link of document.querySelectorAll<HTMLAnchorElement>('nav.primary a')) {
    const current = link.dataset.route === route;
    if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
}

async function render(): Promise<void> {
  const id = ++renders;
  const hash = decodeURIComponent(location.hash.replace(/^#/, '')) || '/';
  const focus = document.activeElement === document.body || document.activeElement === null ? false : true;
  const page: Page = {
    main, me: undefined as unknown as Me,
    heading(text, ...extra) {
      document.title = `${text} · Berth`;
      const heading = h('h1', { tabindex: -1 }, text, ...extra);
      return heading;
    },
  };
  try {
    if (hash === '/login') {
      markNav('');
      showAccount(undefined);
      replace(main);
      loginPage(page, async () => { forgetIdentity(); navigate('#/'); });
      return;
    }
    const list = hash === '/' ? prefetchRepositories() : undefined; // both requests at once
    const who = await whoAmI();
    if (id !== renders) return;
    page.me = who;
    showAccount(who);
    replace(main, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
    if (hash === '/status') {
      markNav('status');
      await statusPage(page);
    } else if (hash.startsWith('/r/')) {
      markNav('repositories');
      const rest = hash.slice(3);
      const at = rest.indexOf('@');
      if (at > 0) await manifestPage(page, rest.slice(0, at), rest.slice(at + 1));
      else await repositoryPage(page, rest);
    } else {
      markNav('repositories');
      await repositoriesPage(page, list);
    }
    if (id !== renders) return;
    performance.mark(`berth:rendered:${id}`); // when the page is complete and interactive (measured by the tests)
    if (focus) main.querySelector<HTMLElement>('h1')?.focus();
  } catch (err) {
    if (id !== renders) return;
    if (err instanceof ApiError && err.status === 401) {
      const tried = credentials()?.user;
      const refused = tried ? `The registry refused these credentials: ${err.message}.` : undefined;
      logOut();
      forgetIdentity();
      replace(main);
      showAccount(undefined);
      loginPage(page, async () => { forgetIdentity(); await render(); }, refused, tried);
      return;
    }
    const message = err instanceof ApiError ? `${err.message} (${err.status} ${err.code})` : String(err);
    replace(main, h('h1', { tabindex: -1 }, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, message),
      h('p', null, h('a', { href: '#/' }, 'Back to the repositories')));
  }
}

window.addEventListener('hashchange', () => void render());
void render();
