// storage.s3 as registry:2 takes it: keys, defaults, REGISTRY_STORAGE_S3_* overrides, and the
// mistakes that stop startup with the fix.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { tempDir } from '../helpers/registry.js';

function configFile(yaml: string): string {
  const file = join(tempDir('berth-s3conf-'), 'config.yml');
  writeFileSync(file, yaml);
  return file;
}

describe('storage.s3 configuration', () => {
  it('reads every registry:2 key, with its defaults', () => {
    const config = loadConfig({ file: configFile(`version: 0.1
storage:
  s3:
    accesskey: AKIA1
    secretkey: secret1
    region: us-east-1
    regionendpoint: http://127.0.0.1:7480
    forcepathstyle: true
    bucket: registry
    encrypt: true
    keyid: arn:aws:kms:us-east-1:1:key/k
    secure: false
    skipverify: true
    v4auth: true
    chunksize: 20971520
    multipartcopychunksize: 33554432
    multipartcopymaxconcurrency: 10
    multipartcopythresholdsize: 33554432
    rootdirectory: /registry
    storageclass: REDUCED_REDUNDANCY
    objectacl: bucket-owner-full-control
    useragent: berth-test
`), env: {} });
    assert.equal(config.storage.driver, 's3');
    assert.equal(config.storage.redirect, true);
    assert.deepEqual(config.storage.s3, {
      bucket: 'registry', region: 'us-east-1', regionEndpoint: 'http://127.0.0.1:7480', forcePathStyle: true, secure: false,
      skipVerify: true, accessKey: 'AKIA1', secretKey: 'secret1', sessionToken: undefined, rootDirectory: '/registry',
      chunkSize: 20 << 20, multipartCopyChunkSize: 32 << 20, multipartCopyMaxConcurrency: 10, multipartCopyThresholdSize: 32 << 20,
      storageClass: 'REDUCED_REDUNDANCY', encrypt: true, keyId: 'arn:aws:kms:us-east-1:1:key/k', objectAcl: 'bucket-owner-full-control',
      userAgent: 'berth-test', useDualStack: false, accelerate: false, redirectExpirySeconds: 1200,
    });
    const minimal = loadConfig({ file: configFile('storage:\n  s3:\n    bucket: b\n    region: eu-west-1\n'), env: {} }).storage.s3!;
    assert.equal(minimal.secure, true);
    assert.equal(minimal.chunkSize, 10 << 20);
    assert.equal(minimal.multipartCopyChunkSize, 32 << 20);
    assert.equal(minimal.multipartCopyThresholdSize, 5 * 1024 ** 3);
    assert.equal(minimal.storageClass, 'STANDARD');
    assert.equal(minimal.accessKey, undefined); // the SDK's credential chain
  });

  it('takes REGISTRY_STORAGE_S3_* and REGISTRY_STORAGE_REDIRECT_DISABLE from the environment', () => {
    const config = loadConfig({
      env: {
        REGISTRY_STORAGE_S3_BUCKET: 'from-env', REGISTRY_STORAGE_S3_REGION: 'us-east-1',
        REGISTRY_STORAGE_S3_REGIONENDPOINT: '127.0.0.1:9000', REGISTRY_STORAGE_S3_SECURE: 'false',
        REGISTRY_STORAGE_S3_ACCESSKEY: 'k', REGISTRY_STORAGE_S3_SECRETKEY: 's', REGISTRY_STORAGE_S3_CHUNKSIZE: '5242880',
        REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/r', REGISTRY_STORAGE_REDIRECT_DISABLE: 'true',
      },
    });
    assert.equal(config.storage.driver, 's3');
    assert.equal(config.storage.redirect, false);
    const s3 = config.storage.s3!;
    assert.deepEqual([s3.bucket, s3.regionEndpoint, s3.secure, s3.accessKey, s3.chunkSize, s3.rootDirectory],
      ['from-env', '127.0.0.1:9000', false, 'k', 5 << 20, '/r']);
  });

  it('stops on what it cannot use, naming the fix', () => {
    const cases: [string, RegExp][] = [
      ['storage:\n  s3:\n    region: us-east-1\n', /storage\.s3\.bucket is required/],
      ['storage:\n  s3:\n    bucket: b\n    region: us-east-1\n    accesskey: only-the-key\n', /both accesskey and secretkey, or neither/],
      ['storage:\n  s3:\n    bucket: b\n    region: us-east-1\n    chunksize: 1024\n', /storage\.s3\.chunksize .* at least 5242880/],
      ['storage:\n  s3:\n    bucket: b\n    region: us-east-1\n    keyid: k\n', /encrypt: true/],
      ['storage:\n  s3:\n    bucket: b\n    region: us-east-1\n    rootdirectory: registry\n', /must start with \//],
      ['storage:\n  s3:\n    bucket: b\n    region: us-east-1\n    bukket: typo\n', /unknown configuration key storage\.s3\.bukket/],
      ['storage:\n  s3:\n    bucket: b\n    region: us-east-1\n  filesystem:\n    rootdirectory: /x\n', /exactly one storage driver/],
    ];
    for (const [yaml, message] of cases) {
      assert.throws(() => loadConfig({ file: configFile(yaml), env: {} }), (err: Error) => {
        assert.ok(err instanceof ConfigError, err.message);
        assert.match(err.message, message);
        return true;
      });
    }
  });
});
