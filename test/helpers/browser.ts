// A real browser for end-to-end tests: Debian's Chromium driven by playwright-core, with its
// profile, caches and crash reports in a directory of the test's scratch space, and no network
// beyond what the page asks for (no sync, no component updates, no QUIC).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { PROJECT_ROOT } from './clients.js';

export const CHROMIUM = '/usr/bin/chromium';

export async function launchBrowser(profile: string): Promise<BrowserContext> {
  mkdirSync(profile, { recursive: true });
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: join(profile, 'config'), XDG_CACHE_HOME: join(profile, 'cache') },
    viewport: { width: 1280, height: 800 },
    timeout: 60_000,
  });
}

/** Where the tests' screenshots go (git ignores it), so that a person can look at them. */
export const SCREENSHOTS = join(PROJECT_ROOT, 'test-results/ui');

/** Saves the page in the light and the dark theme (and, with `phone`, at a phone's width). */
export async function screenshots(page: Page, name: string, options: { phone?: boolean } = {}): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}-light.png`), fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}-dark.png`), fullPage: true });
  if (options.phone) {
    const size = page.viewportSize();
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-phone.png`), fullPage: true });
    if (size) await page.setViewportSize(size);
  }
  await page.emulateMedia({ colorScheme: 'light' });
}
