// The login form: shown when the registry answers 401 (htpasswd or token authentication).
import { credentials, logIn } from '../api.js';
import { h, replace } from '../dom.js';
import type { Page } from '../main.js';

export function loginPage(page: Page, done: () => Promise<void>, message?: string, name = credentials()?.user): void {
  const error = h('p', { class: 'error', role: 'alert', id: 'login-error' }, message);
  const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true, value: name ?? '' });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit' }, 'Log in');
  const form = h('form', { class: 'login', 'aria-describedby': 'login-error', novalidate: true },
    h('p', null, 'This registry asks for a user name and password: the same you give to ', h('code', null, 'docker login'), '.'),
    h('label', { for: 'login-user' }, 'User name'), user,
    h('label', { for: 'login-password' }, 'Password'), password,
    error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!user.value || !password.value) {
      error.textContent = 'Enter your user name and password.';
      (user.value ? password : user).focus();
      return;
    }
    submit.disabled = true;
    error.textContent = '';
    logIn(user.value, password.value);
    await done();
    submit.disabled = false;
  });
  replace(page.main, page.heading('Log in to Berth'), form);
  (user.value ? password : user).focus();
}
