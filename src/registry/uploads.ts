// Blob uploads: bytes stream straight to `_uploads/<id>/data` while they are hashed; the upload
// is committed into the blob store by one atomic move once its digest is verified.
//
// Node cannot serialise a hash's internal state, so the running hash lives in memory keyed by
// upload id and byte offset. When a request lands on a process without it (another replica, a
// restart, an interrupted request) the stored bytes are hashed again from storage.
import { createHash, createHmac, randomUUID, timingSafeEqual, type Hash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import type { BlobDescriptor } from './blobs.js';
import type { MetadataStore } from './metadata.js';
import { RegistryError } from './errors.js';
import type { Digest } from './names.js';
import { paths } from './paths.js';

export interface UploadRange {
  start: number;
  end: number;
}

export interface UploadStatus {
  id: string;
  size: number;
  /** Signed state token carried in the Location URL (`_state`), as distribution does. */
  state: string;
}

interface RunningHash {
  hash: Hash;
  offset: number;
}

interface StateToken {
  name: string;
  id: string;
  offset: number;
}

const MAX_RUNNING_HASHES = 4096;
const UPLOAD_ID = /^[a-zA-Z0-9_-]{1,128}$/;

export class UploadService {
  private readonly hashes = new Map<string, RunningHash>();
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly driver: StorageDriver, private readonly store: MetadataStore,
              private readonly secret: string) {}

  async start(name: string): Promise<UploadStatus> {
    const id = randomUUID();
    // it marks the upload as started (its `data` comes with the first bytes); only upload purging
    // reads the time in it, and falls back to the file's own time when it cannot
    await this.driver.putContent(paths.uploadStartedAt(name, id), new Date().toISOString(), { durable: false, inPlace: true });
    this.remember(id, { hash: createHash('sha256'), offset: 0 });
    return { id, size: 0, state: this.signState({ name, id, offset: 0 }) };
  }

  /** Current size of an upload; BLOB_UPLOAD_UNKNOWN when there is none. */
  async status(name: string, id: string, state?: string): Promise<UploadStatus> {
    if (!UPLOAD_ID.test(id)) throw uploadUnknown(id);
    if (state !== undefined) this.verifyState(state, name, id);
    const info = await this.stored(name, id);
    if (!info) throw uploadUnknown(id);
    return { id, size: info.size, state: this.signState({ name, id, offset: info.size }) };
  }

  /** The upload's size and last write; undefined when there is no such upload. Before its first bytes it has no `data`. */
  private async stored(name: string, id: string): Promise<{ size: number; modTime: Date } | undefined> {
    const data = await this.statIfThere(paths.uploadData(name, id));
    if (data) return data;
    const started = await this.statIfThere(paths.uploadStartedAt(name, id));
    return started && { size: 0, modTime: started.modTime };
  }

  private async statIfThere(path: string): Promise<{ size: number; modTime: Date } | undefined> {
    try {
      return await this.driver.stat(path);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Appends a chunk; `range` (from Content-Range) must start where the upload ends. */
  append(name: string, id: string, body: Readable, range?: UploadRange, state?: string): Promise<UploadStatus> {
    return this.exclusive(id, async () => {
      const { size } = await this.status(name, id, state);
      await this.writeChunk(name, id, size, body, range);
      return this.status(name, id);
    });
  }

  /** Finishes an upload: optional last chunk (whose `range` must start where the upload ends),
   *  digest check, atomic commit, link. */
  complete(name: string, id: string, digest: Digest, body?: Readable, state?: string, range?: UploadRange): Promise<BlobDescriptor> {
    return this.exclusive(id, async () => {
      let { size } = await this.status(name, id, state);
      // the last chunk's bytes are flushed as the file closes, so the commit has nothing left to flush
      if (body) size += await this.writeChunk(name, id, size, body, range, true);
      else if (size === 0) await this.write(name, id, 0, Readable.from([]), true); // an empty blob: its data appears now
      const actual = await this.digestOf(name, id, size, digest.algorithm);
      if (actual !== digest.hex) {
        throw new RegistryError('DIGEST_INVALID',
          `upload content has digest ${digest.algorithm}:${actual}, not ${digest}; the upload stays open`,
          { digest: digest.toString() });
      }
      await this.store.commitBlob(name, digest, paths.uploadData(name, id));
      await this.driver.delete(paths.uploadDir(name, id));
      this.hashes.delete(id);
      return { digest, size };
    });
  }

  cancel(name: string, id: string, state?: string): Promise<void> {
    return this.exclusive(id, async () => {
      await this.status(name, id, state);
      this.hashes.delete(id);
      await this.driver.delete(paths.uploadDir(name, id));
    });
  }

  /** Removes uploads started before `olderThan`; returns how many were removed. */
  async purge(name: string, olderThan: Date): Promise<number> {
    let ids: string[];
    try {
      ids = await this.driver.list(paths.uploadsRoot(name));
    } catch (err) {
      if (isNotFound(err)) return 0;
      throw err;
    }
    let removed = 0;
    for (const id of ids) {
      // under the upload's lock, so a purge never races the upload's own completion
      await this.exclusive(id, async () => {
        if ((await this.startedAt(name, id)) >= olderThan) return;
        this.hashes.delete(id);
        await this.driver.delete(paths.uploadDir(name, id));
        removed++;
      });
    }
    return removed;
  }


  /** Uploads of a repository with their size and start time (uploads being created may be missed). */
  async list(name: string): Promise<{ id: string; size: number; startedAt: Date }[]> {
    let ids: string[];
    try {
      ids = await this.driver.list(paths.uploadsRoot(name));
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
    const found: { id: string; size: number; startedAt: Date }[] = [];
    for (const id of ids) {
      const info = await this.stored(name, id);
      if (info) found.push({ id, size: info.size, startedAt: await this.startedAt(name, id) });
    }
    return found;
  }

  /** Removes uploads that received no bytes since `idleBefore` (collection's grace); under each upload's lock. */
  async purgeIdle(name: string, idleBefore: Date): Promise<{ count: number; bytes: number }> {
    const removed = { count: 0, bytes: 0 };
    for (const { id } of await this.list(name)) {
      await this.exclusive(id, async () => {
        const info = await this.stored(name, id);
        if (!info) return;
        if (info.modTime >= idleBefore || (await this.startedAt(name, id)) >= idleBefore) return;
        this.hashes.delete(id);
        await this.driver.delete(paths.uploadDir(name, id));
        removed.count++;
        removed.bytes += info.size;
      });
    }
    return removed;
  }

  private async startedAt(name: string, id: string): Promise<Date> {
    try {
      const at = new Date((await this.driver.getContent(paths.uploadStartedAt(name, id))).toString('utf8').trim());
      if (!Number.isNaN(at.getTime())) return at;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return (await this.driver.stat(paths.uploadDir(name, id)).catch(() => ({ modTime: new Date(0) }))).modTime;
  }

  private async writeChunk(name: string, id: string, size: number, body: Readable, range?: UploadRange, last = false): Promise<number> {
    if (range && range.start !== size) {
      throw new RegistryError('RANGE_INVALID',
        `chunk starts at ${range.start} but the upload holds ${size} bytes; resume at ${size}`)
        .withHeaders({ Range: rangeHeader(size), 'Docker-Upload-UUID': id });
    }
    const written = await this.write(name, id, size, body, last);
    if (range && written !== range.end - range.start + 1) {
      throw new RegistryError('SIZE_INVALID',
        `Content-Range announced ${range.end - range.start + 1} bytes but the body held ${written}`);
    }
    return written;
  }

  private async write(name: string, id: string, offset: number, body: Readable, durable: boolean): Promise<number> {
    let running = this.hashes.get(id);
    if (running && running.offset !== offset) running = undefined;
    if (!running && offset === 0) this.remember(id, (running = { hash: createHash('sha256'), offset: 0 }));
    let written = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, done) {
        running?.hash.update(chunk);
        written += chunk.length;
        done(null, chunk);
      },
    });
    const sink = await this.driver.writer(paths.uploadData(name, id), true, { durable });
    try {
      await pipeline(body, tap, sink);
    } catch (err) {
      this.hashes.delete(id); // the stored bytes may now differ from what was hashed
      throw err;
    }
    if (running) {
      running.offset = offset + written;
    } else {
      this.hashes.delete(id);
    }
    return written;
  }

  private async digestOf(name: string, id: string, size: number, algorithm: Digest['algorithm']): Promise<string> {
    const running = this.hashes.get(id);
    if (algorithm === 'sha256' && running && running.offset === size) return running.hash.copy().digest('hex');
    const hash = createHash(algorithm);
    const reader = await this.driver.reader(paths.uploadData(name, id));
    let hashed = 0;
    for await (const chunk of reader as AsyncIterable<Buffer>) {
      hash.update(chunk);
      hashed += chunk.length;
    }
    if (algorithm === 'sha256') this.remember(id, { hash: hash.copy(), offset: hashed });
    return hash.digest('hex');
  }

  /** Keeps a running hash; abandoned uploads age out first when too many are open. */
  private remember(id: string, running: RunningHash): void {
    this.hashes.delete(id);
    this.hashes.set(id, running);
    if (this.hashes.size > MAX_RUNNING_HASHES) this.hashes.delete(this.hashes.keys().next().value!);
  }

  /** Runs one operation on an upload at a time within this process. */
  private async exclusive<T>(id: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    this.locks.set(id, next);
    try {
      return await next;
    } finally {
      if (this.locks.get(id) === next) this.locks.delete(id);
    }
  }

  private signState(token: StateToken): string {
    const payload = Buffer.from(JSON.stringify(token)).toString('base64url');
    return `${payload}.${this.mac(payload)}`;
  }

  private verifyState(state: string, name: string, id: string): void {
    const [payload, mac, extra] = state.split('.');
    // compared as bytes: a forged MAC may hold multi-byte characters
    const given = Buffer.from(mac ?? '');
    const expected = Buffer.from(payload ? this.mac(payload) : '');
    const valid = !!payload && extra === undefined && given.length === expected.length && given.length > 0 &&
      timingSafeEqual(given, expected);
    let token: StateToken | undefined;
    if (valid) {
      try {
        token = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as StateToken;
      } catch { /* reported below */ }
    }
    if (!token || token.name !== name || token.id !== id) {
      throw new RegistryError('BLOB_UPLOAD_INVALID',
        'upload state token is invalid: every process serving the same storage needs the same http.secret');
    }
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.secret).update(payload).digest('base64url');
  }
}

export function rangeHeader(size: number): string {
  return `0-${Math.max(size - 1, 0)}`;
}

function uploadUnknown(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', `blob upload unknown: ${id.slice(0, 128)}`);
}
