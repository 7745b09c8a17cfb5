// The database section: GitLab container registry's keys and database.url, REGISTRY_DATABASE_*
// overriding both, and the values that stop startup with the key to fix.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { describeDatabase } from '../../src/config/database.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { tempDir } from '../helpers/registry.js';

function load(yaml: string, env: NodeJS.ProcessEnv = {}) {
  const file = join(tempDir('berth-dbconf-'), 'config.yml');
  writeFileSync(file, `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n${yaml}`);
  return loadConfig({ file, env });
}

describe('database configuration', () => {
  it('is off unless enabled: nothing changes without it', () => {
    assert.equal(load('').database, undefined);
    assert.equal(load('database:\n  enabled: false\n  host: db\n').database, undefined);
  });

  it('takes GitLab\'s keys, with their defaults', () => {
    const db = load('database:\n  enabled: true\n  host: db.internal\n  user: registry\n  password: s3cret\n  dbname: registry\n' +
      '  sslmode: verify-full\n  sslrootcert: /etc/ssl/db-ca.pem\n  connecttimeout: 5s\n  pool:\n    maxopen: 40\n    maxidle: 10\n    maxlifetime: 1h\n    maxidletime: 5m\n').database!;
    assert.deepEqual(db, {
      host: 'db.internal', port: 5432, user: 'registry', password: 's3cret', dbname: 'registry', sslMode: 'verify-full',
      sslCert: undefined, sslKey: undefined, sslRootCert: '/etc/ssl/db-ca.pem', connectTimeoutMs: 5000, statementTimeoutMs: 30_000,
      migrate: 'manual', pool: { maxOpen: 40, maxIdle: 10, maxLifetimeMs: 3_600_000, maxIdleTimeMs: 300_000 },
    });
    assert.equal(describeDatabase(db), 'postgresql://registry@db.internal:5432/registry');
  });

  it('reads database.url; the other keys and REGISTRY_DATABASE_* override its parts', () => {
    const fromUrl = load('database:\n  enabled: true\n  url: postgresql://berth:p%40ss@db:6432/meta?sslmode=require\n').database!;
    assert.deepEqual([fromUrl.host, fromUrl.port, fromUrl.user, fromUrl.password, fromUrl.dbname, fromUrl.sslMode],
      ['db', 6432, 'berth', 'p@ss', 'meta', 'require']);
    const overridden = load('database:\n  enabled: true\n  url: postgresql://berth:x@db:6432/meta\n  dbname: other\n', {
      REGISTRY_DATABASE_HOST: 'db2.internal', REGISTRY_DATABASE_PASSWORD: '007', REGISTRY_DATABASE_POOL_MAXOPEN: '5',
    }).database!;
    assert.deepEqual([overridden.host, overridden.port, overridden.dbname, overridden.password, overridden.pool.maxOpen],
      ['db2.internal', 6432, 'other', '007', 5]);
    const envOnly = loadConfig({ env: { REGISTRY_DATABASE_ENABLED: 'true', REGISTRY_DATABASE_URL: 'postgres://u@localhost/r' } }).database!;
    assert.equal(envOnly.host, 'localhost');
  });

  const refused: [string, RegExp][] = [
    ['  host: db\n  user: u\n', /database\.dbname is required/],
    ['  user: u\n  dbname: r\n', /database\.host is required/],
    ['  host: db\n  dbname: r\n', /database\.user is required/],
    ['  url: mysql://u@db/r\n', /database\.url must start with postgresql:\/\//],
    ['  url: not a url\n', /database\.url is not a URL/],
    ['  url: postgresql://u@db/r?application_name=x\n', /only sslmode is read from the URL/],
    ['  url: postgresql://u@db/r\n  sslmode: prefer\n', /database\.sslmode prefer is not supported: .*set sslmode: require/],
    ['  url: postgresql://u@db/r?sslmode=allow\n', /database\.sslmode allow is not supported/],
    ['  url: postgresql://u@db/r\n  sslmode: strict\n', /database\.sslmode is "strict": use one of/],
    ['  url: postgresql://u@db/r\n  sslcert: /c.pem\n  sslkey: /k.pem\n', /sslcert and sslkey need TLS/],
    ['  url: postgresql://u@db/r\n  sslmode: require\n  sslcert: /c.pem\n', /go together/],
    ['  url: postgresql://u@db/r\n  sslmode: require\n  sslrootcert: /ca.pem\n', /sslrootcert is only used to verify the server/],
    ['  url: postgresql://u@db:99999/r\n', /database\.url is not a URL|database\.port must be a TCP port/],
    ['  url: postgresql://u@db/r\n  pool:\n    maxopen: 2\n    maxidle: 5\n', /maxidle \(5\) cannot exceed database\.pool\.maxopen \(2\)/],
    ['  url: postgresql://u@db/r\n  pool:\n    maxopen: 0\n', /database\.pool\.maxopen is 0: use a whole number of at least 1/],
    ['  url: postgresql://u@db/r\n  migrate: always\n', /database\.migrate is "always": use one of manual, auto/],
    ['  url: postgresql://u@db/r\n  primary: db1\n', /unknown configuration key database\.primary/],
  ];
  for (const [yaml, message] of refused) {
    it(`refuses ${yaml.trim().replace(/\n\s*/g, ', ')}`, () => {
      assert.throws(() => load(`database:\n  enabled: true\n${yaml}`), (err: Error) => err instanceof ConfigError && message.test(err.message));
    });
  }

  it('refuses in-memory storage, which other processes cannot see', () => {
    assert.throws(() => loadConfig({ env: {}, overrides: { storage: { inmemory: {} }, 'database.enabled': true, 'database.url': 'postgresql://u@db/r' } }),
      /database\.enabled needs storage every process shares/);
  });

  it('never shows the password', () => {
    const db = load('database:\n  enabled: true\n  url: postgresql://u:hunter2@db/r\n').database!;
    assert.doesNotMatch(describeDatabase(db), /hunter2/);
  });
});
