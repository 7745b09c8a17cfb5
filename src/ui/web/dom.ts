// Building the page: elements are made with h(), text always as text nodes (never parsed as
// HTML), so nothing the registry holds can inject markup or script.
export type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(key.replace(/^on/, ''), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/** A table whose header row names each column; `wrap` lets it scroll sideways on a narrow screen. */
export function table(caption: string, headers: string[], rows: Child[][], classes: string[] = []): HTMLElement {
  return h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': caption },
    h('table', null,
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', null, h('tr', null, headers.map((name, i) => h('th', { scope: 'col', class: classes[i] }, name)))),
      h('tbody', null, rows.map((cells) => h('tr', null, cells.map((cell, i) => h('td', { class: classes[i], 'data-label': headers[i] }, cell)))))));
}

/** Announces a message to screen readers and shows it in the status line. */
export function announce(message: string, kind: 'info' | 'error' = 'info'): void {
  const live = document.getElementById('live');
  if (!live) return;
  live.className = `live ${kind}`;
  live.textContent = message;
  clearTimeout(announced);
  announced = window.setTimeout(() => { live.textContent = ''; }, kind === 'error' ? 10_000 : 5000);
}
let announced: number | undefined;

/** Copies text to the clipboard; says so on the button. */
export function copyButton(text: string, label: string): HTMLButtonElement {
  const button = h('button', { type: 'button', class: 'copy', 'aria-label': label, title: label }, 'Copy');
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = 'Copied';
    } catch {
      // without clipboard permission (plain http on another host): select the text for Ctrl+C
      const range = document.createRange();
      const target = button.previousElementSibling;
      if (target) {
        range.selectNodeContents(target);
        getSelection()?.removeAllRanges();
        getSelection()?.addRange(range);
      }
      button.textContent = 'Press Ctrl+C';
    }
    setTimeout(() => { button.textContent = 'Copy'; }, 2000);
  });
  return button;
}

/** Asks before something is removed; resolves true only when the user confirms. */
export function confirmDialog(title: string, body: Child[], action: string): Promise<boolean> {
  const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' });
  const cancel = h('button', { type: 'button', class: 'secondary', value: 'cancel' }, 'Cancel');
  const ok = h('button', { type: 'button', class: 'danger', value: 'ok' }, action);
  append(dialog, [h('h2', { id: 'confirm-title' }, title), h('div', { class: 'confirm-body' }, body), h('div', { class: 'actions' }, cancel, ok)]);
  document.body.appendChild(dialog);
  return new Promise((resolve) => {
    const done = (answer: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    cancel.addEventListener('click', () => done(false));
    ok.addEventListener('click', () => done(true));
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    dialog.showModal();
    cancel.focus();
  });
}
