// The primary of a registry served by several processes (`http.workers` > 1, node:cluster). It
// serves no request itself: it listens and hands each connection to a worker, restarts a worker
// that dies, stops them all on SIGTERM, and is the one place their locks and events meet.
//
// Locks (docs/architecture.md, "Several workers"): an operation whose keys are all shared takes
// them in its own worker only. One with an exclusive key asks the primary, which takes all its
// keys in one lock table shared by every worker, then, key by key in the global order, has every
// worker take that key exclusively in its own table too ("holds"), so no reader anywhere is
// inside it; then the operation runs in its worker and releases. Every lock of every process is
// thus taken in one global key order: no cycle, so no deadlock. A worker that dies releases what
// it held, and a new worker starts with every hold in force before it serves.
import cluster, { type Worker } from 'node:cluster';
import { createServer, type ListenOptions, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { KeyedLocks, normaliseRequests, type LockRequest } from '../registry/locks.js';
import { WORKER_ENV, type ListenerName, type ToPrimary, type ToWorker } from './messages.js';

/** Gauges that state one fact about the storage (every worker reports the same): not summed. */
const SAME_IN_EVERY_WORKER = /^berth_(gc_last_|gc_running|uploads_open|retention_last_|retention_running|quota_|gc_review_queue)/;

/** How long a request for metrics waits for the workers' parts. */
const METRICS_WAIT_MS = 3000;

interface Member {
  worker: Worker;
  slot: number;
  joined: boolean;
  /** Whether a worker in this slot has served before (one that dies starting then is restarted). */
  restart: boolean;
  /** Operations of this worker holding or waiting for global locks: its op id → the global op. */
  ops: Map<number, GlobalOp>;
  /** Connections handed to it and not yet written to its channel (still open here). */
  handing: Set<Socket>;
}

interface GlobalOp {
  id: number;
  /** Called when the owner is done (or gone). */
  done: () => void;
  finished: boolean;
}

/** A port the primary listens on; each connection goes to a worker's server of that name. */
export interface ListenSpec {
  name: ListenerName;
  target: ListenOptions;
  /** Logged once it listens. */
  listening: () => void;
  /** Why it cannot listen, as a message naming the fix. */
  failed: (err: NodeJS.ErrnoException) => string;
}

export interface PrimaryOptions {
  workers: number;
  listeners: ListenSpec[];
  log: Logger;
  /** Environment every worker gets beyond the primary's own. */
  env: Record<string, string>;
  /** How long workers may take to drain on SIGTERM before they are killed. */
  drainMs: number;
}

export class Primary {
  private readonly locks = new KeyedLocks();
  private readonly members = new Map<number, Member>(); // by worker id
  private nextOp = 0;
  /** Holds in force: global op id → exclusive keys every worker has been asked to hold. */
  private readonly holds = new Map<number, string[]>();
  /** Holds sent and not yet confirmed: `${op}\0${key}\0${worker}` → confirm. */
  private readonly pendingHolds = new Map<string, () => void>();
  private readonly metricRequests = new Map<number, { parts: unknown[][]; waiting: Set<number>; finish: () => void }>();
  private nextMetrics = 0;
  private stopping = false;
  private readonly restarts: number[] = [];
  private readonly servers: Server[] = [];
  /** Connections accepted while no worker could take them (all of them starting). */
  private readonly waiting: { name: ListenerName; socket: Socket }[] = [];
  private turn = 0;

  constructor(private readonly options: PrimaryOptions) {}

  start(): Promise<number> {
    const { log, workers } = this.options;
    log.info({ workers }, `starting ${workers} worker processes`);
    for (let slot = 0; slot < workers; slot++) this.fork(slot);
    return new Promise((resolve) => {
      this.listen(resolve);
      const stop = (signal: string) => this.stop(signal).then(() => resolve(0));
      process.on('SIGTERM', () => void stop('SIGTERM'));
      process.on('SIGINT', () => void stop('SIGINT'));
      this.onFatal = (code) => {
        void this.stop('a worker could not start').then(() => resolve(code));
      };
    });
  }

  private onFatal: (code: number) => void = () => undefined;

  /**
   * The primary accepts every connection and hands its socket to a worker, in turn. (node:cluster's
   * own round robin leaves a connection unanswered, and open, when the worker it was handed to
   * dies before taking it; here, `exited` closes every socket still on its way to a dead worker.)
   */
  private listen(exit: (code: number) => void): void {
    for (const spec of this.options.listeners) {
      const server = createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.dispatch(spec.name, socket));
      server.on('error', (err: NodeJS.ErrnoException) => {
        this.options.log.fatal(spec.failed(err));
        void this.stop('cannot listen').then(() => exit(2));
      });
      server.listen(spec.target, spec.listening);
      this.servers.push(server);
    }
  }

  private dispatch(name: ListenerName, socket: Socket): void {
    const ready = [...this.members.values()].filter((m) => m.joined && m.worker.isConnected());
    if (ready.length === 0) {
      this.waiting.push({ name, socket });
      socket.once('close', () => {
        const at = this.waiting.findIndex((w) => w.socket === socket);
        if (at >= 0) this.waiting.splice(at, 1);
      });
      return;
    }
    const member = ready[this.turn++ % ready.length]!;
    // a socket waits here while the channel is busy handing over an earlier one; if the worker
    // dies meanwhile, node leaves it open, so it is closed on the worker's exit
    member.handing.add(socket);
    member.worker.send({ t: 'conn', listener: name } satisfies ToWorker, socket, (err: Error | null) => {
      member.handing.delete(socket);
      if (err) socket.destroy();
    });
  }

  private fork(slot: number, restart = false): void {
    const worker = cluster.fork({ ...this.options.env, [WORKER_ENV.slot]: String(slot) });
    const member: Member = { worker, slot, joined: false, restart, ops: new Map(), handing: new Set() };
    this.members.set(worker.id, member);
    worker.on('message', (message: ToPrimary) => this.receive(member, message));
    worker.on('exit', (code, signal) => this.exited(member, code, signal));
  }

  private send(member: Member, message: ToWorker): void {
    if (!member.worker.isConnected()) return;
    try {
      member.worker.send(message);
    } catch {
      // it is going: its exit releases what it held
    }
  }

  private receive(member: Member, message: ToPrimary): void {
    switch (message.t) {
      case 'join': return this.join(member);
      case 'acquire': return this.acquire(member, message.op, message.requests);
      case 'release': {
        const op = member.ops.get(message.op);
        if (op) this.finish(op);
        return;
      }
      case 'held': {
        const key = `${message.op}\0${message.key}\0${member.worker.id}`;
        this.pendingHolds.get(key)?.();
        return;
      }
      case 'event':
      case 'walking':
      case 'walked':
        for (const other of this.members.values()) if (other !== member && other.joined) this.send(other, message);
        return;
      case 'metrics': return this.collectMetrics(member, message.id);
      case 'metrics-part': {
        const request = this.metricRequests.get(message.id);
        if (!request || !request.waiting.delete(member.worker.id)) return;
        request.parts.push(message.metrics);
        if (request.waiting.size === 0) request.finish();
        return;
      }
      default:
    }
  }

  /** A new worker: every hold in force is its own before it serves; later holds include it. */
  private join(member: Member): void {
    member.joined = true;
    for (const [op, keys] of this.holds) for (const key of keys) this.send(member, { t: 'hold', op, key });
    this.send(member, { t: 'welcome' });
    for (const { name, socket } of this.waiting.splice(0)) this.dispatch(name, socket);
    this.options.log.debug({ slot: member.slot, pid: member.worker.process.pid }, 'worker joined');
  }

  private acquire(member: Member, localOp: number, requests: LockRequest[]): void {
    const op: GlobalOp = { id: ++this.nextOp, done: () => undefined, finished: false };
    member.ops.set(localOp, op);
    const ordered = normaliseRequests(requests);
    const exclusive = ordered.filter((r) => r.mode === 'exclusive').map((r) => r.key);
    void this.locks.withLocks(ordered, async () => {
      const ended = new Promise<void>((resolve) => { op.done = resolve; });
      try {
        for (const key of exclusive) {
          if (op.finished) break;
          await this.holdEverywhere(op.id, key);
        }
        if (!op.finished) this.send(member, { t: 'granted', op: localOp });
        if (!op.finished) await ended;
      } finally {
        this.unholdEverywhere(op.id);
        member.ops.delete(localOp);
      }
    });
  }

  private finish(op: GlobalOp): void {
    if (op.finished) return;
    op.finished = true;
    op.done();
  }

  /** Every joined worker takes `key` exclusively for `op`; resolves once each has (or is gone). */
  private holdEverywhere(op: number, key: string): Promise<unknown> {
    let keys = this.holds.get(op);
    if (!keys) this.holds.set(op, (keys = []));
    keys.push(key);
    const confirmations: Promise<void>[] = [];
    for (const member of this.members.values()) {
      if (!member.joined) continue; // it gets the hold when it joins
      const id = `${op}\0${key}\0${member.worker.id}`;
      confirmations.push(new Promise((resolve) => this.pendingHolds.set(id, () => {
        this.pendingHolds.delete(id);
        resolve();
      })));
      this.send(member, { t: 'hold', op, key });
    }
    return Promise.all(confirmations);
  }

  private unholdEverywhere(op: number): void {
    if (!this.holds.delete(op)) return;
    for (const member of this.members.values()) if (member.joined) this.send(member, { t: 'unhold', op });
  }

  private collectMetrics(asker: Member, id: number): void {
    const request = { parts: [] as unknown[][], waiting: new Set<number>(), finish: () => undefined as void };
    const requestId = ++this.nextMetrics;
    for (const member of this.members.values()) {
      if (!member.joined) continue;
      request.waiting.add(member.worker.id);
      this.send(member, { t: 'metrics-get', id: requestId });
    }
    const timer = setTimeout(() => request.finish(), METRICS_WAIT_MS);
    request.finish = () => {
      clearTimeout(timer);
      this.metricRequests.delete(requestId);
      for (const part of request.parts) {
        for (const m of part as { name: string; type: string; aggregator: string }[]) {
          if (m.type === 'gauge' && SAME_IN_EVERY_WORKER.test(m.name)) m.aggregator = 'max';
        }
      }
      const registry = AggregatorRegistry.aggregate(request.parts as Parameters<typeof AggregatorRegistry.aggregate>[0]);
      void registry.metrics().then((text) => this.send(asker, { t: 'metrics-text', id, text, contentType: registry.contentType }));
    };
    this.metricRequests.set(requestId, request);
    if (request.waiting.size === 0) request.finish();
  }

  private exited(member: Member, code: number | null, signal: string | null): void {
    this.members.delete(member.worker.id);
    for (const socket of member.handing) socket.destroy();
    member.handing.clear();
    // the socket written to its channel last stays open here until the worker acknowledges it,
    // and node does not close it when the worker dies before that: the client would wait forever
    const channel = member.worker.process as unknown as { _pendingMessage?: { handle?: { close?: () => void } } | null };
    channel._pendingMessage?.handle?.close?.();
    // what it held or waited for is released; holds waiting for it are confirmed
    for (const op of member.ops.values()) this.finish(op);
    for (const [id, confirm] of [...this.pendingHolds]) if (id.endsWith(`\0${member.worker.id}`)) confirm();
    for (const [, request] of this.metricRequests) {
      if (request.waiting.delete(member.worker.id) && request.waiting.size === 0) request.finish();
    }
    // a catalog walk it had started will not end: whoever waits for one walks itself
    for (const other of this.members.values()) if (other.joined) this.send(other, { t: 'walked', startedAt: 0 });
    if (this.stopping) return;
    const { log } = this.options;
    // one that ends on its own before it ever served failed to start, and would only fail again;
    // one ended by a signal (kill -9, the OOM killer) is replaced, even while starting
    if (!member.joined && !member.restart && signal === null) {
      log.error({ slot: member.slot, code, signal }, 'a worker process exited before it could serve: stopping');
      this.onFatal(code || 1);
      return;
    }
    const now = Date.now();
    this.restarts.push(now);
    while (this.restarts.length && this.restarts[0]! < now - 60_000) this.restarts.shift();
    const delayMs = Math.min(5000, 100 * 2 ** Math.max(0, this.restarts.length - 1));
    log.error({ slot: member.slot, pid: member.worker.process.pid, code, signal, restartInMs: delayMs },
      'a worker process exited: its locks are released and a new one starts');
    setTimeout(() => { if (!this.stopping) this.fork(member.slot, true); }, delayMs);
  }

  private async stop(reason: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const { log, drainMs } = this.options;
    log.info({ reason, workers: this.members.size }, 'stopping: no new connections; the workers finish what is in flight');
    for (const server of this.servers) server.close();
    for (const { socket } of this.waiting.splice(0)) socket.destroy();
    const exits = [...this.members.values()].map(({ worker }) => new Promise<void>((resolve) => {
      if (worker.isDead()) return resolve();
      worker.once('exit', () => resolve());
      worker.process.kill('SIGTERM');
    }));
    const killer = setTimeout(() => {
      for (const { worker } of this.members.values()) worker.process.kill('SIGKILL');
    }, drainMs + 5000);
    await Promise.all(exits);
    clearTimeout(killer);
    log.info('stopped');
  }
}
