// The proxy block: registry:2's keys (remoteurl, username, password, ttl), Berth's upstreams by
// prefix, REGISTRY_PROXY_* overrides, credentials from named environment variables, and routing.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { UpstreamRoutes } from '../../src/proxy/routes.js';
import { Upstream, parseChallenge } from '../../src/proxy/upstream.js';
import { tempDir } from '../helpers/scratch.js';

function configFile(yaml: string): string {
  const file = join(tempDir('proxy-config-'), 'config.yml');
  writeFileSync(file, yaml);
  return file;
}

describe('proxy configuration', () => {
  it('takes registry:2\'s proxy block, from the file and from REGISTRY_PROXY_*', () => {
    const config = loadConfig({ file: configFile('proxy:\n  remoteurl: https://registry-1.docker.io\n  username: u\n  password: p\n  ttl: 2h\n'), env: {} });
    assert.deepEqual(config.proxy.upstreams.map((u) => [u.prefix, u.remoteUrl, u.username, u.password, u.ttlMs, u.tagTtlMs]),
      [['', 'https://registry-1.docker.io', 'u', 'p', 7_200_000, 600_000]]);
    const fromEnv = loadConfig({ env: { REGISTRY_PROXY_REMOTEURL: 'http://127.0.0.1:5001', REGISTRY_PROXY_USERNAME: 'a', REGISTRY_PROXY_PASSWORD: 'b' } });
    assert.deepEqual(fromEnv.proxy.upstreams.map((u) => [u.remoteUrl, u.host, u.username, u.password, u.ttlMs]),
      [['http://127.0.0.1:5001', '127.0.0.1:5001', 'a', 'b', 168 * 3_600_000]]);
    assert.deepEqual(loadConfig({ env: {} }).proxy.upstreams, []);
  });

  it('takes upstreams by prefix, with credentials from environment variables', () => {
    const config = loadConfig({
      file: configFile([
        'proxy:', '  upstreams:',
        '    - prefix: ghcr/', '      remoteurl: https://ghcr.io', '      usernameenv: GHCR_USER', '      passwordenv: GHCR_TOKEN', '      tagttl: 5m',
        '    - prefix: quay', '      remoteurl: https://quay.io/', '      maxconcurrent: 4', '      maxrps: 10', '',
      ].join('\n')),
      env: { GHCR_USER: 'me', GHCR_TOKEN: 'secret' },
    });
    assert.deepEqual(config.proxy.upstreams.map((u) => [u.prefix, u.remoteUrl, u.username, u.password, u.tagTtlMs, u.maxConcurrent, u.maxRps]),
      [['ghcr', 'https://ghcr.io', 'me', 'secret', 300_000, 64, 100], ['quay', 'https://quay.io', undefined, undefined, 600_000, 4, 10]]);
  });

  it('refuses what cannot work, saying what to write', () => {
    const refused: [string, NodeJS.ProcessEnv, RegExp][] = [
      ['proxy:\n  remoteurl: ftp://example.com\n', {}, /proxy\.remoteurl must be an http/],
      ['proxy:\n  username: u\n  password: p\n', {}, /need proxy\.remoteurl/],
      ['proxy:\n  upstreams:\n    - remoteurl: https://ghcr.io\n', {}, /prefix is required/],
      ['proxy:\n  upstreams:\n    - prefix: Bad Prefix\n      remoteurl: https://ghcr.io\n', {}, /must be the start of a repository name/],
      ['proxy:\n  upstreams:\n    - prefix: a\n      remoteurl: https://ghcr.io\n    - prefix: a/\n      remoteurl: https://quay.io\n', {}, /configured twice/],
      ['proxy:\n  upstreams:\n    - prefix: a\n      remoteurl: https://ghcr.io\n      passwordenv: NOPE\n', {}, /NOPE, which is not set/],
      ['proxy:\n  remoteurl: https://ghcr.io\n  username: u\n', {}, /both a username and a password/],
    ];
    for (const [yaml, env, message] of refused) assert.throws(() => loadConfig({ file: configFile(yaml), env }), message, yaml);
  });
});

describe('proxy routing', () => {
  const config = loadConfig({ env: {}, overrides: { proxy: {
    remoteurl: 'https://registry-1.docker.io',
    upstreams: [{ prefix: 'ghcr', remoteurl: 'https://ghcr.io' }, { prefix: 'ghcr/special', remoteurl: 'http://127.0.0.1:9' }],
  } } });
  const routes = new UpstreamRoutes(config.proxy.upstreams.map((u) => new Upstream(u)));

  it('strips the longest matching prefix; Docker Hub names get library/', () => {
    const route = (name: string) => { const r = routes.route(name); return r && [r.upstream.url, r.remote]; };
    assert.deepEqual(route('ghcr/org/image'), ['https://ghcr.io', 'org/image']);
    assert.deepEqual(route('ghcr/special/x'), ['http://127.0.0.1:9', 'x']);
    assert.deepEqual(route('library/alpine'), ['https://registry-1.docker.io', 'library/alpine']);
    assert.deepEqual(route('alpine'), ['https://registry-1.docker.io', 'library/alpine']);
  });

  it('places containerd\'s ?ns= requests under the upstream\'s prefix, and refuses pushes to mirrors', () => {
    assert.equal(routes.localName('org/image', new URLSearchParams('ns=ghcr.io')), 'ghcr/org/image');
    assert.equal(routes.localName('library/alpine', new URLSearchParams('ns=docker.io')), 'library/alpine');
    assert.equal(routes.localName('org/image', new URLSearchParams('ns=elsewhere.example')), 'org/image');
    assert.throws(() => routes.check('ghcr/org/image', 'write'), /under ghcr\/, a cache of https:\/\/ghcr\.io/);
    routes.check('ghcr/org/image', 'delete');
    routes.check('ghcr/org/image', 'read');
  });

  it('parses Basic and Bearer challenges', () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'),
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } });
    assert.deepEqual(parseChallenge('Basic realm="basic-realm"'), { scheme: 'basic', params: { realm: 'basic-realm' } });
    assert.equal(parseChallenge('Negotiate'), undefined);
  });
});
