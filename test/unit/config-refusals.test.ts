// registry:2 keys Berth does not act on: those whose being ignored would weaken security or change
// what clients get stop startup, naming the key and what to use instead; the rest load with a warning.
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { TOKEN_ALGORITHMS } from '../../src/config/schema.js';
import { tempDir } from '../helpers/registry.js';

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');

function configFile(text: string): string {
  const file = join(tempDir('berth-refusals-'), 'config.yml');
  writeFileSync(file, text);
  return file;
}

const TLS = 'http:\n  tls:\n    certificate: /certs/domain.crt\n    key: /certs/domain.key\n';

/** [config.yml, the key the message must name, what it must offer instead] */
const REFUSED: [string, string, RegExp][] = [
  ['auth:\n  silly:\n    realm: silly-realm\n    service: silly-service\n', 'auth.silly', /auth\.htpasswd/],
  ['auth:\n  token:\n    realm: https://auth.example.com/token\n    service: registry\n    issuer: auth\n    jwks: /certs/jwks.json\n    autoredirect: true\n',
    'auth.token.autoredirect', /auth\.token\.realm|tokenserver/],
  ['auth:\n  token:\n    realm: https://auth.example.com/token\n    service: registry\n    issuer: auth\n    jwks: /certs/jwks.json\n    signingalgorithms: [ES256, EdDSA]\n',
    'auth.token.signingalgorithms', /remove auth\.token\.signingalgorithms/],
  ['http:\n  tls:\n    letsencrypt:\n      cachefile: /cache/le\n      email: admin@example.com\n      hosts: [registry.example.com]\n',
    'http.tls.letsencrypt', /http\.tls\.certificate and http\.tls\.key/],
  [`${TLS}    ciphersuites:\n      - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n`, 'http.tls.ciphersuites', /minimumtls: tls1\.3/],
  [`${TLS}  http2:\n    disabled: true\n`, 'http.http2.disabled', /proxy that speaks only HTTP\/1\.1/],
  ['http:\n  h2c:\n    enabled: true\n', 'http.h2c.enabled', /HTTP\/1\.1|serve TLS/],
  ['http:\n  debug:\n    addr: 127.0.0.1:5001\n    tls:\n      certificate: /certs/debug.crt\n', 'http.debug.tls', /127\.0\.0\.1:5001|TLS proxy/],
  ['proxy:\n  remoteurl: https://registry-1.docker.io\n  exec:\n    command: docker-credential-pass\n', 'proxy.exec', /credential helpers.*proxy\.username/],
  ['middleware:\n  storage:\n    - name: cloudfront\n      options:\n        baseurl: https://d111111abcdef8.cloudfront.net/\n        privatekey: /keys/cf.pem\n        keypairid: KEYPAIR\n',
    'middleware', /remove the middleware section/],
  ['middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: https://cdn.example.com/\n', 'middleware', /CDN or proxy in front/],
  ['middleware:\n  registry:\n    - name: ARegistryMiddleware\n', 'middleware', /remove the middleware section/],
  ['validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://([^/]+\\.)*example\\.com/\n', 'validation.manifests.urls.allow', /access\.rules/],
  ['validation:\n  manifests:\n    urls:\n      deny:\n        - ^https?://www\\.example\\.com/\n', 'validation.manifests.urls.deny', /remove validation\.manifests\.urls/],
  ['validation:\n  manifests:\n    indexes:\n      platforms: none\n', 'validation.manifests.indexes.platforms', /platforms: all/],
  ['compatibility:\n  schema1:\n    enabled: true\n', 'compatibility.schema1.enabled', /schema2 or OCI/],
  ['health:\n  file:\n    - file: /tmp/out-of-rotation\n      interval: 10s\n', 'health.file', /load balancer or orchestrator/],
  ['health:\n  http:\n    - uri: http://backend/health\n      statuscode: 200\n', 'health.http', /load balancer or orchestrator/],
  ['health:\n  tcp:\n    - addr: redis:6379\n', 'health.tcp', /load balancer or orchestrator/],
  ['notifications:\n  events:\n    includereferences: true\n', 'notifications.events.includereferences', /target\.digest/],
  ['catalog:\n  maxentries: 100\n', 'catalog.maxentries', /remove catalog\.maxentries/],
  ['tags:\n  maxtags: 100\n', 'tags.maxtags', /remove tags\.maxtags/],
  ['policy:\n  repository:\n    classes: [image]\n', 'policy.repository.classes', /access\.rules/],
  ['storage:\n  azure:\n    accountname: registry\n', 'storage driver azure', /storage\.s3/],
  ['storage:\n  s3:\n    bucket: registry\n    region: us-east-1\n    v4auth: false\n', 'storage.s3.v4auth', /v4auth: true/],
  ['auth:\n  silly:\n', 'auth.silly', /auth\.htpasswd/], // without parameters still asks for it
  ['auth: silly\n', 'auth.silly', /auth\.htpasswd/],
  ['auth:\n  htpasswd:\n', 'auth.htpasswd.path is required', /htpasswd -B/], // never taken for no authentication
];

/** [config.yml, the key the warning must name] */
const HARMLESS: [string, string][] = [
  ['log:\n  hooks:\n    - type: mail\n      levels: [panic]\n      options:\n        smtp:\n          addr: mail.example.com:25\n', 'log.hooks'],
  ['log:\n  reportcaller: true\n', 'log.reportcaller'],
  ['storage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n    maxthreads: 100\n', 'storage.filesystem.maxthreads'],
  ['storage:\n  cache:\n    blobdescriptor: inmemory\n', 'storage.cache'],
  ['storage:\n  cache:\n    blobdescriptor: redis\nredis:\n  addr: localhost:6379\n  password: secret\n  db: 0\n', 'redis'],
  ['storage:\n  s3:\n    bucket: registry\n    region: us-east-1\n    loglevel: debug\n', 'storage.s3.loglevel'],
  ['storage:\n  tag:\n    concurrencylimit: 8\n', 'storage.tag'],
  ['http:\n  http2:\n    disabled: true\n', 'http.http2.disabled'], // without TLS registry:2 has no HTTP/2 either
  ['http:\n  h2c:\n    enabled: false\n', 'http.h2c.enabled'],
  ['reporting:\n  bugsnag:\n    apikey: key\n  newrelic:\n    licensekey: key\n', 'reporting'],
  ['middleware:\n  storage:\n    - name: cloudfront\n      disabled: true\n      options:\n        baseurl: https://d111111abcdef8.cloudfront.net/\n', 'middleware'],
  ['validation:\n  disabled: true\n', 'validation.disabled'],
  ['validation:\n  enabled: true\n', 'validation.enabled'],
  ['validation:\n  manifests:\n    indexes:\n      platforms: all\n', 'validation.manifests.indexes.platforms'],
  ['compatibility:\n  schema1:\n    enabled: false\n    signingkeyfile: /etc/registry/key.json\n', 'compatibility.schema1.enabled'],
  ['compatibility:\n  schema1:\n    signingkeyfile: /etc/registry/key.json\n', 'compatibility.schema1.signingkeyfile'],
  ['notifications:\n  events:\n    includereferences: false\n', 'notifications.events.includereferences'],
  ['auth:\n  token:\n    realm: https://auth.example.com/token\n    service: registry\n    issuer: auth\n    jwks: /certs/jwks.json\n    autoredirect: false\n    autoredirectpath: /auth/token\n',
    'auth.token.autoredirect'],
  [`auth:\n  token:\n    realm: https://auth.example.com/token\n    service: registry\n    issuer: auth\n    jwks: /certs/jwks.json\n    signingalgorithms: [${TOKEN_ALGORITHMS.join(', ')}]\n`,
    'auth.token.signingalgorithms'],
  ['auth:\n  token:\n    realm: https://auth.example.com/token\n    service: registry\n    issuer: auth\n    jwks: /certs/jwks.json\n    signingalgorithms: []\n',
    'auth.token.signingalgorithms'], // empty: registry:3's default list
];

describe('configuration keys Berth does not act on', () => {
  for (const [yaml, key, instead] of REFUSED) {
    it(`refuses ${key} (${yaml.split('\n').slice(0, 3).join(' ').trim()})`, () => {
      assert.throws(() => loadConfig({ file: configFile(yaml), env: {} }), (err: Error) => {
        assert.ok(err instanceof ConfigError, err.message);
        assert.ok(err.message.startsWith(key), `names ${key}: ${err.message}`);
        assert.match(err.message, instead);
        return true;
      });
    });
  }

  for (const [yaml, key] of HARMLESS) {
    it(`loads ${key} with a warning (${yaml.split('\n').slice(0, 3).join(' ').trim()})`, () => {
      const config = loadConfig({ file: configFile(yaml), env: {} });
      assert.ok(config.ignored.some((note) => note.startsWith(`${key} is ignored: `)), `a warning for ${key}: ${JSON.stringify(config.ignored)}`);
    });
  }

  it('refuses the same keys from REGISTRY_* environment variables', () => {
    assert.throws(() => loadConfig({ env: { REGISTRY_PROXY_REMOTEURL: 'https://registry-1.docker.io', REGISTRY_PROXY_EXEC_COMMAND: 'helper' } }),
      /^ConfigError: proxy\.exec is not supported/);
    assert.throws(() => loadConfig({ env: { REGISTRY_AUTH_SILLY_REALM: 'silly', REGISTRY_AUTH_SILLY_SERVICE: 'silly' } }),
      (err: Error) => err instanceof ConfigError && err.message.startsWith('auth.silly'));
    assert.throws(() => loadConfig({ env: { REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE: '/cache' } }), /http\.tls\.letsencrypt/);
    assert.throws(() => loadConfig({ env: { REGISTRY_COMPATIBILITY_SCHEMA1_ENABLED: 'true' } }), /compatibility\.schema1\.enabled/);
    assert.throws(() => loadConfig({ env: { REGISTRY_CATALOG_MAXENTRIES: '100' } }), /catalog\.maxentries/);
  });

  it('acts on loglevel (deprecated for log.level), auth: none and bare section names', () => {
    assert.equal(loadConfig({ file: configFile('loglevel: debug\n'), env: {} }).log.level, 'debug');
    assert.equal(loadConfig({ file: configFile('loglevel: debug\nlog:\n  level: warn\n'), env: {} }).log.level, 'warn');
    const none = loadConfig({ file: configFile('auth:\n  none: {}\n'), env: {} });
    assert.equal(none.auth.htpasswd, undefined);
    assert.equal(none.auth.token, undefined);
    assert.deepEqual(none.ignored, []);
    assert.equal(loadConfig({ file: configFile('auth: none\nstorage: inmemory\n'), env: {} }).storage.driver, 'inmemory');
  });

  it('REGISTRY_CONFIGURATION_PATH names the file, not a key', () => {
    const config = loadConfig({ env: { REGISTRY_CONFIGURATION_PATH: '/etc/docker/registry/config.yml' } });
    assert.deepEqual(config.ignored, []);
  });

  it('berth serve prints the error and exits with status 2', async () => {
    const file = configFile('version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /tmp/never-used\nauth:\n  silly:\n    realm: silly-realm\n    service: silly-service\nhttp:\n  addr: 127.0.0.1:0\n');
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolvePromise) => {
      execFile(process.execPath, [CLI, 'serve', file], { timeout: 10_000 }, (err, _stdout, stderr) => {
        resolvePromise({ code: err ? (err as { code?: number }).code ?? null : 0, stderr });
      });
    });
    assert.equal(code, 2);
    assert.match(stderr, /^berth: configuration error: auth\.silly is not supported: .*use auth\.htpasswd/);
  });
});
