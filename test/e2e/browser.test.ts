// A real browser (headless Chromium) opens /v2/_catalog and /v2/<name>/tags/list as a person
// following the registry:2 tutorial would, and sees the JSON as text.
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir, pushImage } from '../helpers/registry.js';
import { needs, run, startBerth } from '../helpers/clients.js';

/** Chromium's profile, crash reports and caches all go to `profile`, not to $HOME. */
async function browse(url: string, profile: string): Promise<string> {
  return run('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`,
    '--dump-dom', url], { HOME: profile, XDG_CONFIG_HOME: join(profile, 'config'), XDG_CACHE_HOME: join(profile, 'cache') }, 60_000);
}

describe('a browser on the registry', () => {
  it('shows the catalog and a tag list as readable JSON', { skip: needs('chromium') }, async () => {
    const work = tempDir('berth-browser-');
    const berth = await startBerth(join(work, 'data'));
    try {
      await pushImage(berth.url, 'myalpine', 'v1');
      await pushImage(berth.url, 'team/web', 'latest', 'web');
      const catalog = await browse(`${berth.url}/v2/_catalog`, join(work, 'profile'));
      assert.match(catalog, /<pre[^>]*>\{"repositories":\["myalpine","team\/web"\]\}<\/pre>/);
      const tags = await browse(`${berth.url}/v2/myalpine/tags/list`, join(work, 'profile'));
      assert.match(tags, /\{"name":"myalpine","tags":\["v1"\]\}/);
    } finally {
      await berth.stop();
    }
  });
});
