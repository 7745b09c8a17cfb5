// One blob arriving from an upstream: its bytes are written to a temporary file under the
// repository's _uploads/<uuid>/data while they are hashed, and committed into storage only when
// the digest (and the announced size) match; a mismatch drops the file. Every client pulling
// the blob meanwhile — the first as much as the sixteenth — reads the same file as it grows, so
// the upstream is asked once, a client leaving does not stop the fill, and memory stays bounded
// (the driver's reused buffers) whatever the blob's size.
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { finished, type Readable, type Writable } from 'node:stream';
import type { MetadataStore } from '../registry/metadata.js';
import type { Digest } from '../registry/names.js';
import { paths } from '../registry/paths.js';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { UpstreamFailure } from './upstream.js';

/** What the upstream answered: its body, its announced size (-1: unknown), and the slot to release. */
export interface UpstreamBody {
  body: Readable | null;
  size: number;
  release(): void;
}

/** Bytes from the upstream written to the file in one go. */
const BATCH = 1 << 20;

/** How far ahead of a reader the file must grow before the reader is woken (unless the fill ends). */
const STEP = 1 << 20;

/** `verified`: every byte is in the temporary file and matched the digest; the commit (flush, rename) follows. */
type State = 'running' | 'verified' | 'committed' | 'failed';

/**
 * A client at the head of the stream: it is sent each chunk from memory as it arrives, not read
 * back from the file. `sent` bytes reached it; the newest byte is held (`held`) until the digest
 * check passes. A client whose socket backs up past LIVE_LIMIT falls back to reading the file.
 */
interface LiveReader {
  dest: Writable;
  sent: number;
  held: Buffer | undefined;
  /** `done`: it has every byte; `behind`: it reads on from the file at `sent`; an error: the fill failed. */
  settle: (outcome: 'done' | 'behind' | Error) => void;
}

/** Bytes a live client may have queued in its socket before it reads the file instead. */
const LIVE_LIMIT = 4 << 20;

/** How long the fill waits for a live reader's socket to drain before leaving it to read the file. */
const LIVE_PATIENCE_MS = 2_000;

/** The longest a live reader waits for a batch to fill. */
const LIVE_DELAY_MS = 20;

export class BlobFill {
  private written = 0;
  /** Bytes received from the upstream and hashed (some may still be on their way to the file). */
  private received = 0;
  private readonly live = new Set<LiveReader>();
  /** Chunks received but not yet sent to the live readers. */
  private pending: Buffer[] = [];
  /** Bytes handed to the live readers so far: where a reader joining them must stand. */
  private flushed = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private state: State = 'running';
  /** Every byte arrived and matched the digest: no reader joins the live ones any more. */
  private arrived = false;
  private error: Error | undefined;
  private readonly waiters: { at: number; wake: () => void }[] = [];
  private readonly id = randomUUID();
  /** Resolves with the size the upstream announced once its answer arrived; rejects with why it did not. */
  readonly ready: Promise<number>;
  /** Settles when the blob is committed (resolves) or dropped (rejects). */
  readonly done: Promise<void>;

  constructor(private readonly driver: StorageDriver, private readonly store: MetadataStore, readonly name: string,
              readonly digest: Digest, private readonly upstream: string, open: () => Promise<UpstreamBody>,
              private readonly onBytes: (n: number) => void = () => undefined) {
    let opened: (size: number) => void = () => undefined;
    let failedToOpen: (err: Error) => void = () => undefined;
    this.ready = new Promise<number>((resolve, reject) => { opened = resolve; failedToOpen = reject; });
    this.ready.catch(() => undefined);
    this.done = (async () => {
      let answer: UpstreamBody;
      try {
        answer = await open();
      } catch (err) {
        failedToOpen(err as Error);
        throw err;
      }
      opened(answer.size);
      try {
        await this.fill(answer);
      } finally {
        answer.release();
      }
    })().catch(async (err: Error) => {
      await this.driver.delete(paths.uploadDir(this.name, this.id)).catch(() => undefined); // nothing kept
      this.state = 'failed';
      this.error = err;
      if (this.flushTimer) clearTimeout(this.flushTimer);
      this.pending = [];
      for (const reader of this.live) reader.settle(err);
      this.live.clear(); // settled readers left the set
      this.wakeAll();
      throw err;
    });
    this.done.catch(() => undefined);
  }

  /** Every byte arrived and matched the digest (the commit may still be under way). */
  get complete(): boolean {
    return this.state === 'verified' || this.state === 'committed';
  }

  private get temp(): string {
    return paths.uploadData(this.name, this.id);
  }

  private async fill({ body, size }: UpstreamBody): Promise<void> {
    await this.driver.putContent(paths.uploadStartedAt(this.name, this.id), new Date().toISOString(), { durable: false });
    const sink: Writable = await this.driver.writer(this.temp, false);
    const hash = createHash(this.digest.algorithm);
    try {
      if (body) {
        // chunks are written in batches of about BATCH bytes (one writev), not one write each
        let batched = 0;
        sink.cork();
        await consume(body, (buffer) => {
          hash.update(buffer);
          this.received += buffer.length;
          // in order: a chunk goes to the live readers, or straight past them when there are none
          if (this.live.size > 0 || this.pending.length > 0) this.queueLive(buffer);
          else this.flushed += buffer.length;
          const more = sink.write(buffer, (err) => {
            if (err) return;
            this.written += buffer.length;
            this.wake();
          });
          batched += buffer.length;
          if (batched < BATCH && more) return undefined;
          this.onBytes(batched);
          batched = 0;
          return (async () => {
            if (this.live.size > 0) await this.liveDrained();
            this.flushLive();
            sink.uncork();
            if (!more) await once(sink, 'drain');
            sink.cork();
          })();
        });
        this.onBytes(batched);
        sink.uncork();
      }
      if (size >= 0 && this.received !== size) {
        throw new UpstreamFailure(this.upstream, `announced ${size} bytes for ${this.digest} but sent ${this.received}: not kept`);
      }
      const actual = hash.digest('hex');
      if (actual !== this.digest.hex) {
        throw new UpstreamFailure(this.upstream, `sent bytes whose digest is ${this.digest.algorithm}:${actual}, not ${this.digest}: not kept`);
      }
      // every byte arrived and matched: the live readers send their last byte now, while the
      // file's last writes, its flush and the rename of the commit follow
      this.arrived = true;
      this.flushLive();
      this.finishLive();
      await new Promise<void>((resolve, reject) => sink.end((err?: Error | null) => (err ? reject(err) : resolve())));
    } catch (err) {
      sink.destroy();
      if (err instanceof UpstreamFailure) throw err;
      throw new UpstreamFailure(this.upstream, `stopped sending ${this.digest} after ${this.received} bytes: ${(err as Error).message}`);
    }
    if (this.written !== this.received) {
      throw new UpstreamFailure(this.upstream, `${this.digest}: ${this.received} bytes arrived but ${this.written} reached the file: not kept`);
    }
    // readers of the file may send the last bytes now: the flush and rename of the commit need not delay them
    this.state = 'verified';
    this.wakeAll();
    await this.store.commitBlob(this.name, this.digest, this.temp);
    await this.driver.delete(paths.uploadDir(this.name, this.id));
    this.state = 'committed';
    this.wakeAll();
  }

  /** Sends the whole blob to `dest` as it arrives (the caller ends `dest`); throws when the fill fails. */
  async sendTo(dest: Writable): Promise<void> {
    let pos = 0;
    for (;;) {
      if (this.state === 'failed') throw this.error!;
      const committed = this.state === 'committed';
      const complete = committed || this.state === 'verified';
      // the last byte waits for the digest check: a blob that fails it never reaches a client whole
      const available = complete ? this.written : Math.max(0, this.written - 1);
      if (pos < available) {
        try {
          await this.driver.copyTo(committed ? paths.blobData(this.digest) : this.temp, dest, pos, available - 1);
          pos = available;
        } catch (err) {
          if (!isNotFound(err) || committed) throw err;
          await this.done.catch(() => undefined); // renamed into place, or dropped: look again
        }
        continue;
      }
      if (complete) return;
      if (pos === this.flushed && this.state === 'running' && !this.arrived) {
        // at the head of the stream: take the next chunks from memory
        const sent = await this.goLive(dest, pos);
        if (sent === undefined) return;
        pos = sent;
        continue;
      }
      await new Promise<void>((wake) => this.waiters.push({ at: Math.min(pos + STEP, this.received), wake }));
    }
  }

  /** Resolves undefined when the reader got the whole blob live, or the position it reached before falling behind. */
  private goLive(dest: Writable, pos: number): Promise<number | undefined> {
    return new Promise<number | undefined>((resolve, reject) => {
      const reader: LiveReader = {
        dest, sent: pos, held: undefined,
        settle: (outcome) => {
          if (outcome instanceof Error) reject(outcome);
          else if (outcome === 'done') resolve(undefined);
          else {
            // fell behind: the held byte is read again from the file, after the socket drains
            const at = reader.sent;
            if (dest.writableNeedDrain) once(dest, 'drain').then(() => resolve(at), reject);
            else resolve(at);
          }
        },
      };
      this.live.add(reader);
    });
  }

  /**
   * Chunks for the live readers are sent in batches (one socket write for about BATCH bytes),
   * with the file's batches, or after LIVE_DELAY_MS when the upstream sends slowly.
   */
  private queueLive(chunk: Buffer): void {
    this.pending.push(chunk);
    this.flushTimer ??= setTimeout(() => this.flushLive(), LIVE_DELAY_MS);
  }

  /**
   * A live reader whose socket is backed up is waited for a while (a client slower than the
   * upstream sets the pace, as it would pulling directly) before it is left to read the file.
   */
  private async liveDrained(): Promise<void> {
    const slow = [...this.live].filter((reader) => reader.dest.writableLength > LIVE_LIMIT && !reader.dest.destroyed);
    if (slow.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const patience = new Promise<void>((resolve) => { timer = setTimeout(resolve, LIVE_PATIENCE_MS); });
    await Promise.race([Promise.all(slow.map((reader) => once(reader.dest, 'drain').catch(() => undefined))), patience]);
    clearTimeout(timer);
  }

  private flushLive(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const chunks = this.pending.splice(0);
    if (chunks.length === 0) return;
    for (const chunk of chunks) this.flushed += chunk.length;
    for (const reader of this.live) {
      const { dest } = reader;
      if (dest.destroyed || dest.writableEnded) {
        this.live.delete(reader); // its request's own handling reports the disconnect
        reader.settle(new Error('the client went away'));
        continue;
      }
      if (dest.writableLength > LIVE_LIMIT) {
        this.live.delete(reader);
        reader.settle('behind');
        continue;
      }
      dest.cork();
      for (const chunk of chunks) {
        if (reader.held) dest.write(reader.held);
        if (chunk.length > 1) dest.write(chunk.subarray(0, chunk.length - 1));
        reader.sent += chunk.length - 1 + (reader.held ? 1 : 0);
        reader.held = chunk.subarray(chunk.length - 1);
      }
      dest.uncork();
    }
  }

  /** The digest matched: live readers get their held byte and are done. */
  private finishLive(): void {
    for (const reader of this.live) {
      if (reader.held && !reader.dest.destroyed) reader.dest.write(reader.held);
      reader.held = undefined;
      this.live.delete(reader);
      reader.settle('done');
    }
  }

  private wake(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i]!;
      if (waiter.at <= this.written) {
        this.waiters.splice(i, 1);
        waiter.wake();
      }
    }
  }

  private wakeAll(): void {
    for (const waiter of this.waiters.splice(0)) waiter.wake();
  }
}

/**
 * Hands each chunk of `body` to `onChunk` as it arrives ('data' events: an async iterator would
 * join chunks that queued up into new buffers, a copy of every byte); while the promise
 * `onChunk` returns is pending, the body is paused. Resolves at the end; rejects when the body
 * fails or closes early.
 */
function consume(body: Readable, onChunk: (chunk: Buffer) => Promise<void> | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let failed = false;
    let waiting: Promise<void> = Promise.resolve(); // the end can come while the last chunk's wait is pending
    const fail = (err: Error) => {
      if (failed) return;
      failed = true;
      body.off('data', onData);
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      if (failed) return;
      try {
        const wait = onChunk(chunk);
        if (!wait) return;
        body.pause();
        waiting = wait.then(() => { if (!failed) body.resume(); }, fail);
      } catch (err) {
        fail(err as Error);
      }
    };
    body.on('data', onData);
    finished(body, (err) => {
      if (err) fail(err);
      else void waiting.then(() => { if (!failed) resolve(); });
    });
  });
}
