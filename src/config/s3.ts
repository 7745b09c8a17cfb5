// registry:2's `storage.s3` parameters: their schema (part of SCHEMA in schema.ts) and the
// driver options they give (src/storage/s3.ts). Every parameter registry:2 2.8 takes is here;
// `v4auth: false` stops startup (requests are signed with Signature Version 4 only).
import type { S3Options } from '../storage/s3.js';
import type { Spec } from './schema.js';

const str = (d?: string): Spec => ({ kind: 'string', default: d });
const bool = (d: boolean): Spec => ({ kind: 'bool', default: d });
const int = (d: number, min: number): Spec => ({ kind: 'int', default: d, min });

const MiB = 1 << 20;
/**
 * registry:2's defaults, but for the copy threshold: one CopyObject (up to S3's 5 GiB limit) is
 * as fast on S3 and, on the RADOS Gateway, shares the data instead of copying it (a 200 MiB
 * commit: 0.3 s against 1.5 s in 32 MiB parts), so Berth copies in parts only above 5 GiB.
 */
export const S3_DEFAULTS = {
  chunksize: 10 * MiB, multipartcopychunksize: 32 * MiB, multipartcopymaxconcurrency: 100, multipartcopythresholdsize: 5 * 1024 * MiB,
};

export const S3_FIELDS: Record<string, Spec> = {
  bucket: str(), region: str(), regionendpoint: str(), forcepathstyle: bool(false),
  secure: bool(true), skipverify: bool(false),
  v4auth: {
    kind: 'ignored', why: 'requests are always signed with Signature Version 4',
    refuse: {
      why: 'Berth signs S3 requests with Signature Version 4 only', instead: 'remove it or set v4auth: true (every S3 service and gateway accepts Version 4)',
      when: (v) => v === false || v === 'false',
    },
  },
  accesskey: str(), secretkey: str(), sessiontoken: str(),
  rootdirectory: str(''),
  chunksize: int(S3_DEFAULTS.chunksize, 5 * MiB),
  multipartcopychunksize: int(S3_DEFAULTS.multipartcopychunksize, 5 * MiB),
  multipartcopymaxconcurrency: int(S3_DEFAULTS.multipartcopymaxconcurrency, 1),
  multipartcopythresholdsize: int(S3_DEFAULTS.multipartcopythresholdsize, 0),
  storageclass: str('STANDARD'), encrypt: bool(false), keyid: str(), objectacl: str('private'),
  useragent: str(), usedualstack: bool(false), accelerate: bool(false),
  loglevel: { kind: 'ignored', why: 'S3 requests are not logged by the SDK; failures are in Berth\'s log and its metrics' },
};

export class S3ConfigError extends Error {}

/** The driver options of a normalised `storage.s3` section. */
export function s3Options(s: Record<string, any>): S3Options {
  if (!s.bucket) throw new S3ConfigError('storage.s3.bucket is required: the bucket that holds the registry (REGISTRY_STORAGE_S3_BUCKET)');
  if (!s.region) throw new S3ConfigError('storage.s3.region is required, e.g. us-east-1 (REGISTRY_STORAGE_S3_REGION); with regionendpoint, the region the gateway expects');
  if (!!s.accesskey !== !!s.secretkey) {
    throw new S3ConfigError('storage.s3 needs both accesskey and secretkey, or neither (the credentials then come from the environment, shared files or an instance role)');
  }
  if (s.keyid && !s.encrypt) throw new S3ConfigError('storage.s3.keyid is set but encrypt is not: set encrypt: true to use that KMS key');
  if (s.rootdirectory && !String(s.rootdirectory).startsWith('/')) {
    throw new S3ConfigError(`storage.s3.rootdirectory ${JSON.stringify(s.rootdirectory)} must start with /, e.g. /registry`);
  }
  return {
    bucket: s.bucket, region: s.region, regionEndpoint: s.regionendpoint || undefined, forcePathStyle: s.forcepathstyle,
    secure: s.secure, skipVerify: s.skipverify, accessKey: s.accesskey || undefined, secretKey: s.secretkey || undefined,
    sessionToken: s.sessiontoken || undefined, rootDirectory: s.rootdirectory ?? '',
    chunkSize: s.chunksize, multipartCopyChunkSize: s.multipartcopychunksize,
    multipartCopyMaxConcurrency: s.multipartcopymaxconcurrency, multipartCopyThresholdSize: s.multipartcopythresholdsize,
    storageClass: s.storageclass || undefined, encrypt: s.encrypt, keyId: s.keyid || undefined,
    objectAcl: s.objectacl || undefined, userAgent: s.useragent || undefined,
    useDualStack: s.usedualstack, accelerate: s.accelerate, redirectExpirySeconds: 20 * 60,
  };
}
