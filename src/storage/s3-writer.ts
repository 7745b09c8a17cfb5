// The S3 driver's writer: a stream into one multipart upload (see s3.ts for the protocol).
import { Writable } from 'node:stream';
import {
  CompleteMultipartUploadCommand, CreateMultipartUploadCommand, GetObjectCommand, PutObjectCommand, UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import type { S3Driver } from './s3.js';

/** S3's smallest part other than the last. */
export const MIN_PART = 5 << 20;
/** Parts of one writer being sent while the next one fills (more only slowed the RADOS Gateway down). */
const PARTS_IN_FLIGHT = 2;

/**
 * Streams into a multipart upload: bytes gather into a part of `chunksize`; full parts are sent
 * while the next fills, at most PARTS_IN_FLIGHT at once (the stream waits beyond that, which
 * is what bounds memory per upload). An append first copies the existing object in. The object
 * appears only when the upload completes in `final`; a destroyed writer aborts the upload.
 */
export class MultipartWriter extends Writable {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private uploadId?: string;
  private readonly parts: CompletedPart[] = [];
  private readonly sending = new Set<Promise<void>>();
  private failure?: Error;
  private partNumber = 1;
  private prepared = false;

  constructor(private readonly driver: S3Driver, private readonly key: string, private readonly existing: number) {
    super({ highWaterMark: 1 << 20 });
  }

  private get partSize(): number {
    return Math.max(this.driver.options.chunkSize, MIN_PART);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.accept(chunk).then(() => done(), done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.finish().then(() => done(), (err: Error) => {
      void this.abortUpload();
      done(err);
    });
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (err) void this.abortUpload();
    done(err);
  }

  private async accept(chunk: Buffer): Promise<void> {
    await this.prepare();
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    while (this.bufferedBytes >= this.partSize) {
      await this.startUpload();
      const part = this.take(this.partSize);
      while (this.sending.size >= PARTS_IN_FLIGHT) await Promise.race(this.sending);
      if (this.failure) throw this.failure;
      this.send(part);
    }
  }

  /** An append: the existing bytes come first, copied server-side, or read back when under a part's minimum. */
  private async prepare(): Promise<void> {
    if (this.prepared) return;
    this.prepared = true;
    if (this.existing === 0) return;
    if (this.existing >= MIN_PART) {
      await this.startUpload();
      const copied = await this.driver.copyParts(this.uploadId!, this.key, this.key, this.existing, this.partNumber);
      this.parts.push(...copied);
      this.partNumber += copied.length;
    } else {
      const res = await this.driver.client.send(new GetObjectCommand({ Bucket: this.driver.options.bucket, Key: this.key }));
      const bytes = Buffer.from(await res.Body!.transformToByteArray());
      this.buffered.push(bytes);
      this.bufferedBytes += bytes.length;
    }
  }

  private async startUpload(): Promise<void> {
    if (this.uploadId) return;
    const res = await this.driver.client.send(new CreateMultipartUploadCommand({
      Bucket: this.driver.options.bucket, Key: this.key, ContentType: 'application/octet-stream', ...this.driver.writeParams(),
    }));
    this.uploadId = res.UploadId!;
  }

  /** The first `n` buffered bytes as one part (copied once into a single buffer). */
  private take(n: number): Buffer {
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered, this.bufferedBytes);
    const part = n >= all.length ? all : Buffer.from(all.subarray(0, n));
    const rest = n >= all.length ? Buffer.alloc(0) : all.subarray(n);
    this.buffered = rest.length > 0 ? [Buffer.from(rest)] : [];
    this.bufferedBytes = rest.length;
    return part;
  }

  private send(body: Buffer): void {
    const PartNumber = this.partNumber++;
    const sent: Promise<void> = this.driver.client.send(new UploadPartCommand({
      Bucket: this.driver.options.bucket, Key: this.key, UploadId: this.uploadId, PartNumber, Body: body, ContentLength: body.length,
    })).then((res) => {
      this.parts.push({ PartNumber, ETag: res.ETag });
    }, (err: Error) => {
      this.failure ??= err;
    }).finally(() => this.sending.delete(sent));
    this.sending.add(sent);
  }

  private async finish(): Promise<void> {
    await this.prepare();
    if (!this.uploadId) { // small enough for one PUT
      const body = this.take(this.bufferedBytes);
      await this.driver.client.send(new PutObjectCommand({
        Bucket: this.driver.options.bucket, Key: this.key, Body: body, ContentLength: body.length,
        ContentType: 'application/octet-stream', ...this.driver.writeParams(),
      }));
      return;
    }
    if (this.bufferedBytes > 0) this.send(this.take(this.bufferedBytes));
    while (this.sending.size > 0) await Promise.race(this.sending);
    if (this.failure) throw this.failure;
    this.parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
    await this.driver.client.send(new CompleteMultipartUploadCommand({
      Bucket: this.driver.options.bucket, Key: this.key, UploadId: this.uploadId, MultipartUpload: { Parts: this.parts },
    }));
    this.uploadId = undefined;
  }

  private async abortUpload(): Promise<void> {
    const id = this.uploadId;
    this.uploadId = undefined;
    this.buffered = [];
    this.bufferedBytes = 0;
    if (id) await this.driver.abort(this.key, id);
  }
}

