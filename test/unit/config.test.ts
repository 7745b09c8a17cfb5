import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseDuration } from '../../src/config/load.js';
import { tempDir } from '../helpers/registry.js';

function configFile(text: string): string {
  const file = join(tempDir('berth-config-'), 'config.yml');
  writeFileSync(file, text);
  return file;
}

// The config.yml the registry:2 image ships, plus common additions from its documentation.
const REGISTRY2_CONFIG = `version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
http:
  addr: :5000
  secret: asecretforlocaldevelopment
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`;

describe('configuration', () => {
  it('defaults: 0.0.0.0:5000, ./data, deletes off', () => {
    const c = loadConfig({ env: {} });
    assert.equal(c.http.addr, '0.0.0.0:5000');
    assert.equal(c.storage.rootDirectory, './data');
    assert.equal(c.storage.deleteEnabled, false);
    assert.equal(c.storage.uploadPurging.ageMs, 168 * 3600 * 1000);
    assert.equal(c.http.secretGenerated, true);
  });

  it("loads registry:2's own config.yml", () => {
    const c = loadConfig({ file: configFile(REGISTRY2_CONFIG), env: {} });
    assert.equal(c.http.addr, ':5000');
    assert.equal(c.storage.rootDirectory, '/var/lib/registry');
    assert.equal(c.storage.deleteEnabled, true);
    assert.equal(c.http.secret, 'asecretforlocaldevelopment');
    assert.deepEqual(c.http.headers, { 'X-Content-Type-Options': ['nosniff'] });
    assert.ok(c.ignored.some((note) => note.startsWith('storage.cache')));
    assert.equal(c.health.intervalMs, 10_000);
    assert.equal(c.health.threshold, 3);
  });

  it('REGISTRY_* environment variables override the file, flags override both', () => {
    const c = loadConfig({
      file: configFile(REGISTRY2_CONFIG),
      env: {
        REGISTRY_HTTP_ADDR: '127.0.0.1:5001', REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/registry',
        REGISTRY_STORAGE_DELETE_ENABLED: 'false', REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE: '2h',
        REGISTRY_LOG_LEVEL: 'debug', REGISTRY_AUTH_FILE: '/tmp/auth.json', PATH: '/bin',
      },
      overrides: { 'storage.delete.enabled': true },
    });
    assert.equal(c.http.addr, '127.0.0.1:5001');
    assert.equal(c.storage.rootDirectory, '/srv/registry');
    assert.equal(c.storage.deleteEnabled, true);
    assert.equal(c.storage.uploadPurging.ageMs, 2 * 3600 * 1000);
    assert.equal(c.log.level, 'debug');
  });

  it('stops on an unknown key, naming it and the keys it could be', () => {
    assert.throws(() => loadConfig({ file: configFile('http:\n  adr: :5000\n'), env: {} }),
      (err: Error) => err instanceof ConfigError && /http\.adr/.test(err.message) && /addr/.test(err.message));
  });

  it('stops on bad values with the fix', () => {
    assert.throws(() => loadConfig({ file: configFile('storage:\n  delete:\n    enabled: maybe\n'), env: {} }), /true or false/);
    assert.throws(() => loadConfig({ file: configFile('log:\n  level: loud\n'), env: {} }), /error, warn, info, debug/);
    assert.throws(() => loadConfig({ file: configFile('storage:\n  maintenance:\n    uploadpurging:\n      age: soon\n'), env: {} }), /duration/);
    assert.throws(() => loadConfig({ file: configFile('storage:\n  s3:\n    bucket: x\n'), env: {} }), /storage\.s3\.region is required/);
    assert.throws(() => loadConfig({ file: configFile('a: [unclosed\n'), env: {} }), /not valid YAML/);
  });

  it('parses Go durations', () => {
    assert.equal(parseDuration('1h30m'), 90 * 60 * 1000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('abc'), undefined);
    assert.equal(parseDuration('10x'), undefined);
  });
});
