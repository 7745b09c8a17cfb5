// S3 driver: registry:2's object layout in a bucket (`<rootdirectory>/docker/registry/v2/...`,
// keys without a leading slash), so Berth and registry:2 serve each other's data on one bucket.
//
// S3 has no append and no rename. A writer streams into a multipart upload whose parts are at
// most `chunksize` bytes each, with at most PARTS_IN_FLIGHT of them in memory; an append starts
// a new multipart upload whose first parts are server-side copies of the existing object (or,
// under S3's 5 MiB part minimum, its bytes read back once), and the object is replaced only
// when that upload completes. A request cut off midway therefore leaves the previous object
// whole, and nothing of a chunk is ever kept in memory between requests. A move is a
// server-side copy (multipart above `multipartcopythresholdsize`) followed by a delete.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable, Writable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CopyObjectCommand, CreateMultipartUploadCommand,
  DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand,
  ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, S3Client, UploadPartCopyCommand,
  type CompletedPart, type ObjectCannedACL, type S3ClientConfig, type ServerSideEncryption, type StorageClass,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { checkPath, PathNotFoundError, type FileInfo, type StorageDriver } from './driver.js';
import { MIN_PART, MultipartWriter } from './s3-writer.js';

export { MIN_PART };

/** registry:2's `storage.s3` parameters, as Berth reads them. */
export interface S3Options {
  bucket: string;
  region: string;
  /** A full URL (https://host:port), or a host that `secure` gives its scheme. */
  regionEndpoint?: string;
  forcePathStyle: boolean;
  secure: boolean;
  skipVerify: boolean;
  accessKey?: string;
  secretKey?: string;
  sessionToken?: string;
  rootDirectory: string;
  chunkSize: number;
  multipartCopyChunkSize: number;
  multipartCopyMaxConcurrency: number;
  multipartCopyThresholdSize: number;
  storageClass?: string;
  encrypt: boolean;
  keyId?: string;
  objectAcl?: string;
  userAgent?: string;
  useDualStack: boolean;
  accelerate: boolean;
  /** How long a presigned download URL is valid. */
  redirectExpirySeconds: number;
}

/** S3's largest single copy. */
const MAX_COPY = 5 * 1024 ** 3;
const DELETE_BATCH = 1000;
const SEND_BUFFER = 1 << 20;
/** What the buffers of all blob sends may hold together, about. */
const SEND_BUDGET = 32 << 20;

export class S3Driver implements StorageDriver {
  readonly name = 's3';
  readonly client: S3Client;
  /** S3 requests sent, by operation (the cost per registry request is measured with it). */
  readonly requests = new Map<string, number>();
  /** Called for every request sent, with its operation and key (or prefix): for tests and diagnosis. */
  onRequest?: (operation: string, key: string) => void;
  private readonly root: string;
  /** Blob sends in progress: their buffers share one memory budget. */
  private sends = 0;

  constructor(readonly options: S3Options) {
    this.root = options.rootDirectory.replace(/\/+$/, '');
    this.client = new S3Client(clientConfig(options));
    this.client.middlewareStack.add((next, context) => async (args) => {
      const op = context.commandName ?? 'unknown';
      this.requests.set(op, (this.requests.get(op) ?? 0) + 1);
      const input = args.input as { Key?: string; Prefix?: string };
      this.onRequest?.(op, input.Key ?? input.Prefix ?? '');
      return next(args);
    }, { step: 'initialize', name: 'berthRequestCounter' });
  }

  /** Total S3 requests sent so far. */
  get requestCount(): number {
    let n = 0;
    for (const v of this.requests.values()) n += v;
    return n;
  }

  /** The object key of a driver path, as registry:2 forms it. */
  key(path: string): string {
    checkPath(path);
    return `${this.root}${path === '/' ? '' : path}`.replace(/^\/+/, '');
  }

  /** The key prefix of everything under a directory path. */
  private prefix(path: string): string {
    const key = this.key(path);
    return key === '' ? '' : `${key}/`;
  }

  private get bucket(): string {
    return this.options.bucket;
  }

  /** What every object write carries: storage class, encryption, ACL. */
  writeParams(): { StorageClass?: StorageClass; ServerSideEncryption?: ServerSideEncryption; SSEKMSKeyId?: string; ACL?: ObjectCannedACL } {
    const { storageClass, encrypt, keyId, objectAcl } = this.options;
    return {
      StorageClass: storageClass && storageClass !== 'NONE' ? storageClass as StorageClass : undefined,
      ServerSideEncryption: encrypt ? (keyId ? 'aws:kms' : 'AES256') : undefined,
      SSEKMSKeyId: encrypt && keyId ? keyId : undefined,
      ACL: objectAcl ? objectAcl as ObjectCannedACL : undefined,
    };
  }

  async getContent(path: string): Promise<Buffer> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(path) }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      throw translate(err, path);
    }
  }

  async putContent(path: string, content: Buffer | string): Promise<void> {
    // a PUT replaces an object atomically and is durable once answered
    const body = Buffer.from(content);
    await this.client.send(new PutObjectCommand({
      Bucket: this.bucket, Key: this.key(path), Body: body, ContentLength: body.length,
      ContentType: 'application/octet-stream', ...this.writeParams(),
    }));
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    if (end !== undefined && end < offset) return Readable.from([]);
    const range = offset > 0 || end !== undefined ? `bytes=${offset}-${end ?? ''}` : undefined;
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(path), Range: range }));
      return res.Body as Readable;
    } catch (err) {
      if (errorName(err) === 'InvalidRange') return Readable.from([]); // at or past the end: nothing to read
      throw translate(err, path);
    }
  }

  /**
   * Sends [offset, end] to `dest` in 1 MiB writes through two buffers used in turn: S3's answer
   * arrives in 64 KiB reads, and one write per read to a client costs more CPU than the copy
   * that gathers them.
   */
  async copyTo(path: string, dest: Writable, offset = 0, end?: number): Promise<void> {
    const body = await this.reader(path, offset, end);
    // 1 MiB for a lone download, shrinking so that all sends together stay near SEND_BUDGET
    const size = Math.max(64 << 10, Math.min(SEND_BUFFER, 2 ** Math.floor(Math.log2(SEND_BUDGET / 2 / (this.sends + 1)))));
    this.sends++;
    try {
      await this.send(body, dest, size);
    } finally {
      this.sends--;
    }
  }

  private async send(body: Readable, dest: Writable, size: number): Promise<void> {
    const buffers = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)];
    let turn = 0;
    let used = 0;
    let writing: Promise<void> = Promise.resolve();
    const flush = async () => {
      const full = buffers[turn]!.subarray(0, used);
      turn ^= 1;
      used = 0;
      await writing; // the other buffer is free again once its write is done
      const send = writeChunk(dest, full);
      send.catch(() => undefined); // awaited on the next turn or at the end
      writing = send;
    };
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        for (let at = 0; at < chunk.length;) {
          const n = chunk.copy(buffers[turn]!, used, at);
          used += n;
          at += n;
          if (used === size) await flush();
        }
      }
      if (used > 0) await flush();
      await writing;
    } catch (err) {
      body.destroy();
      throw err;
    }
  }

  async writer(path: string, append: boolean): Promise<Writable> {
    const key = this.key(path);
    let existing = 0;
    if (append) {
      try {
        existing = (await this.stat(path)).size;
      } catch (err) {
        if (!(err instanceof PathNotFoundError)) throw err;
      }
    }
    return new MultipartWriter(this, key, existing);
  }

  async stat(path: string): Promise<FileInfo> {
    const key = this.key(path);
    if (key !== '') {
      try {
        const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
        return { size: head.ContentLength ?? 0, modTime: head.LastModified ?? new Date(0), isDir: false };
      } catch (err) {
        if (!(translate(err, path) instanceof PathNotFoundError)) throw err;
      }
    }
    // a "directory" is a key prefix with something under it
    const listed = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix(path), MaxKeys: 1 }));
    const first = listed.Contents?.[0];
    if (!first) throw new PathNotFoundError(path);
    return { size: 0, modTime: first.LastModified ?? new Date(0), isDir: true };
  }

  async list(path: string): Promise<string[]> {
    const prefix = this.prefix(path);
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({
        Bucket: this.bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token,
      }));
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix) names.push(p.Prefix.slice(prefix.length, -1));
      for (const o of page.Contents ?? []) if (o.Key && o.Key.length > prefix.length) names.push(o.Key.slice(prefix.length));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    if (names.length === 0) throw new PathNotFoundError(path);
    return names;
  }

  async move(source: string, dest: string): Promise<void> {
    const from = this.key(source);
    const to = this.key(dest);
    let size: number;
    try {
      size = (await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: from }))).ContentLength ?? 0;
    } catch (err) {
      throw translate(err, source);
    }
    if (size > this.options.multipartCopyThresholdSize) {
      await this.multipartCopy(from, to, size);
    } else {
      await this.client.send(new CopyObjectCommand({
        Bucket: this.bucket, Key: to, CopySource: copySource(this.bucket, from), ...this.writeParams(),
      })).catch((err) => { throw translate(err, source); });
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: from }));
  }

  /** Copies `from` to `to` in parts of `multipartcopychunksize`, several at once. */
  private async multipartCopy(from: string, to: string, size: number): Promise<void> {
    const upload = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: to, ...this.writeParams() }));
    const uploadId = upload.UploadId!;
    try {
      const parts = await this.copyParts(uploadId, to, from, size, 1);
      await this.client.send(new CompleteMultipartUploadCommand({
        Bucket: this.bucket, Key: to, UploadId: uploadId, MultipartUpload: { Parts: parts },
      }));
    } catch (err) {
      await this.abort(to, uploadId);
      throw err;
    }
  }

  /** Server-side copies of `from` as parts `first`, `first + 1`, ... of an upload; each at least MIN_PART. */
  async copyParts(uploadId: string, to: string, from: string, size: number, first: number): Promise<CompletedPart[]> {
    const chunk = Math.min(Math.max(this.options.multipartCopyChunkSize, MIN_PART), MAX_COPY - MIN_PART);
    const ranges: [number, number][] = [];
    for (let start = 0; start < size; start += chunk) ranges.push([start, Math.min(start + chunk, size) - 1]);
    const last = ranges[ranges.length - 1]!;
    if (ranges.length > 1 && last[1] - last[0] + 1 < MIN_PART) { // a short tail joins the part before it
      ranges.pop();
      ranges[ranges.length - 1]![1] = last[1];
    }
    const parts: CompletedPart[] = new Array(ranges.length);
    let next = 0;
    const worker = async () => {
      while (next < ranges.length) {
        const i = next++;
        const [start, end] = ranges[i]!;
        const res = await this.client.send(new UploadPartCopyCommand({
          Bucket: this.bucket, Key: to, UploadId: uploadId, PartNumber: first + i,
          CopySource: copySource(this.bucket, from), CopySourceRange: `bytes=${start}-${end}`,
        }));
        parts[i] = { PartNumber: first + i, ETag: res.CopyPartResult?.ETag };
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.multipartCopyMaxConcurrency, ranges.length) }, worker));
    return parts;
  }

  async abort(key: string, uploadId: string): Promise<void> {
    await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId })).catch(() => undefined);
  }

  async touch(path: string): Promise<void> {
    // S3 cannot set a modification time: copying an object onto itself renews it. An object
    // written within the last two seconds (S3 keeps whole seconds) is fresh already: a blob just
    // committed is not copied again.
    const key = this.key(path);
    let head;
    try {
      head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (translate(err, path) instanceof PathNotFoundError) return;
      throw err;
    }
    if (head.LastModified && Date.now() - head.LastModified.getTime() < 2000) return;
    const size = head.ContentLength ?? 0;
    try {
      if (size > MAX_COPY) {
        await this.multipartCopy(key, key, size);
      } else {
        await this.client.send(new CopyObjectCommand({
          Bucket: this.bucket, Key: key, CopySource: copySource(this.bucket, key), MetadataDirective: 'REPLACE',
          ContentType: 'application/octet-stream', ...this.writeParams(),
        }));
      }
    } catch (err) {
      if (translate(err, path) instanceof PathNotFoundError) return;
      throw err;
    }
  }

  async delete(path: string): Promise<void> {
    const key = this.key(path);
    const prefix = this.prefix(path);
    const keys: string[] = key === '' ? [] : [key];
    let token: string | undefined;
    let tree = false;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
      tree ||= (page.Contents?.length ?? 0) > 0;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      while (keys.length >= DELETE_BATCH || (!token && keys.length > 0)) {
        await this.deleteKeys(keys.splice(0, DELETE_BATCH));
      }
    } while (token);
    // multipart uploads left under the tree (writers cut off by a crash) go with it
    if (tree) await this.abortUploads(prefix);
  }

  private async deleteKeys(keys: string[]): Promise<void> {
    if (keys.length === 1) {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: keys[0] }));
      return;
    }
    const res = await this.client.send(new DeleteObjectsCommand({
      Bucket: this.bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
    }));
    const failed = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
    if (failed.length > 0) throw new Error(`S3 could not delete ${failed.length} objects, e.g. ${failed[0]!.Key}: ${failed[0]!.Code} ${failed[0]!.Message ?? ''}`);
  }

  /** Aborts the multipart uploads under a key prefix; returns how many. */
  async abortUploads(prefix: string, olderThan?: Date): Promise<number> {
    let aborted = 0;
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    do {
      const page = await this.client.send(new ListMultipartUploadsCommand({
        Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: idMarker,
      }));
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || (olderThan && u.Initiated && u.Initiated >= olderThan)) continue;
        await this.abort(u.Key, u.UploadId);
        aborted++;
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      idMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
    return aborted;
  }

  async ping(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket })).catch((err) => {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404) throw new Error(`bucket ${this.bucket} does not exist: create it, or set storage.s3.bucket to one that does`);
      if (status === 403) throw new Error(`access to bucket ${this.bucket} is denied: check storage.s3.accesskey and secretkey (or the credentials in the environment)`);
      if ((err as Error).name === 'CredentialsProviderError') {
        throw new Error('no S3 credentials: set storage.s3.accesskey and secretkey, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile (AWS_PROFILE) or an instance role');
      }
      throw new Error(`S3 (bucket ${this.bucket}) does not answer: ${(err as Error).message}; check storage.s3.regionendpoint, region and secure`);
    });
  }

  /** A presigned GET of a path, valid for `redirectExpirySeconds`: where downloads are redirected. */
  downloadUrl(path: string): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.key(path) }),
      { expiresIn: this.options.redirectExpirySeconds });
  }
}

function clientConfig(o: S3Options): S3ClientConfig {
  let endpoint: string | undefined;
  if (o.regionEndpoint) endpoint = /^[a-z]+:\/\//i.test(o.regionEndpoint) ? o.regionEndpoint : `${o.secure ? 'https' : 'http'}://${o.regionEndpoint}`;
  else if (!o.secure) endpoint = `http://s3.${o.region}.amazonaws.com`;
  const agent = { keepAlive: true, maxSockets: 128 };
  return {
    region: o.region,
    endpoint,
    // registry:2 uses path-style URLs whenever regionendpoint is set
    forcePathStyle: o.forcePathStyle || !!o.regionEndpoint,
    useDualstackEndpoint: o.useDualStack,
    useAccelerateEndpoint: o.accelerate,
    credentials: o.accessKey && o.secretKey
      ? { accessKeyId: o.accessKey, secretAccessKey: o.secretKey, sessionToken: o.sessionToken || undefined }
      : undefined, // the SDK's chain: environment, shared files, web identity, container and instance roles
    customUserAgent: o.userAgent || undefined,
    // checksums only where S3 requires them: gateways such as Ceph's refuse streamed trailing checksums
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      httpAgent: new HttpAgent(agent),
      httpsAgent: new HttpsAgent({ ...agent, rejectUnauthorized: !o.skipVerify }),
      connectionTimeout: 10_000,
    },
  };
}

function writeChunk(dest: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const closed = () => reject(Object.assign(new Error('destination closed'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    if (dest.destroyed) return closed();
    dest.once('close', closed);
    dest.write(chunk, (err) => {
      dest.off('close', closed);
      if (err) reject(err); else resolve();
    });
  });
}

function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

function errorName(err: unknown): string | undefined {
  return (err as { name?: string; Code?: string })?.name;
}

function translate(err: unknown, path: string): unknown {
  const name = errorName(err);
  const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  if (name === 'NoSuchBucket') return err;
  return name === 'NoSuchKey' || name === 'NotFound' || status === 404 ? new PathNotFoundError(path) : err;
}
