// A worker's side of a registry served by several processes (see primary.ts): its locks, the
// metadata events it shares with the other workers, and /metrics for the whole registry.
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Registry } from 'prom-client';
import { excl, KeyedLocks, normaliseRequests, type LockRequest, type Locker } from '../registry/locks.js';
import type { EventRelay, MetadataEvent } from '../registry/metadata.js';
import type { WalkShare } from '../registry/catalog.js';
import { decodeEvent, encodeEvent, WORKER_ENV, type ListenerName, type ToPrimary, type ToWorker } from './messages.js';

/** This process's place in a cluster, or undefined when it serves alone. */
export function workerSlot(): number | undefined {
  const slot = process.env[WORKER_ENV.slot];
  return slot === undefined || !process.send ? undefined : Number(slot);
}

export class ClusterLink implements Locker, EventRelay {
  private readonly local = new KeyedLocks();
  private nextOp = 0;
  private readonly granted = new Map<number, () => void>();
  /** Holds for the primary's operations: global op → releases (or cancelled before granted). */
  private readonly holding = new Map<number, (() => void)[]>();
  private readonly cancelled = new Set<number>();
  /** Holds still waiting for this worker's own readers: global op → how many. */
  private readonly queuedHolds = new Map<number, number>();
  private readonly remote: ((event: MetadataEvent) => void)[] = [];
  private readonly walkListeners: Parameters<WalkShare['onRemote']>[0][] = [];
  private readonly metricsWaiting = new Map<number, (answer: { text: string; contentType: string }) => void>();
  private nextMetrics = 0;
  private welcomed!: () => void;
  /** Resolves once the primary has given this worker every hold in force: then it may serve. */
  readonly joined = new Promise<void>((resolve) => { this.welcomed = resolve; });
  private registry: Registry | undefined;
  private servers: Partial<Record<ListenerName, EventEmitter>> = {};
  /** Connections this worker serves (the servers do not count sockets handed to them). */
  private readonly sockets = new Set<Socket>();
  private drainedNow: (() => void) | undefined;
  private serving = false;
  private readonly early: [ListenerName, Socket][] = [];

  constructor(private readonly onPrimaryGone: () => void) {
    process.on('message', (message: ToWorker, handle?: unknown) => this.receive(message, handle as Socket | undefined));
    process.on('disconnect', () => this.onPrimaryGone());
    this.send({ t: 'join' });
  }

  private send(message: ToPrimary): void {
    if (process.connected) process.send!(message);
  }

  /** Shared keys alone are taken here; anything exclusive goes through the primary. */
  async withLocks<T>(requests: LockRequest[], work: () => Promise<T>): Promise<T> {
    const ordered = normaliseRequests(requests);
    if (ordered.every((r) => r.mode === 'shared')) return this.local.withLocks(ordered, work);
    await this.joined;
    const op = ++this.nextOp;
    await new Promise<void>((resolve) => {
      this.granted.set(op, resolve);
      this.send({ t: 'acquire', op, requests: ordered });
    });
    try {
      return await work();
    } finally {
      this.send({ t: 'release', op });
    }
  }

  publish(event: MetadataEvent): void {
    this.send({ t: 'event', event: encodeEvent(event) });
  }

  onRemote(listener: (event: MetadataEvent) => void): void {
    this.remote.push(listener);
  }

  /** The catalog walks of every worker (WalkShare). */
  readonly walks: WalkShare = {
    starting: () => this.send({ t: 'walking' }),
    publish: (names, startedAt) => this.send({ t: 'walked', names, startedAt }),
    onRemote: (listener) => { this.walkListeners.push(listener); },
  };

  /** Serves the connections the primary hands over; each goes to the server of its listener. */
  serve(servers: Partial<Record<ListenerName, EventEmitter>>): void {
    this.servers = servers;
    // an HTTP server starts tracking its connections (header deadlines, idle connections closed
    // on shutdown) when it starts listening: these never listen themselves, so they are told
    for (const server of Object.values(servers)) server?.emit('listening');
    this.serving = true;
    for (const [listener, socket] of this.early.splice(0)) this.accept(listener, socket);
  }

  /** Resolves once every connection this worker serves has closed. */
  drained(): Promise<void> {
    if (this.sockets.size === 0) return Promise.resolve();
    return new Promise((resolve) => { this.drainedNow = resolve; });
  }

  private accept(listener: ListenerName, socket: Socket | undefined): void {
    if (!socket) return;
    if (!this.serving) {
      // handed over right after the welcome, before serve() (several messages can come in one read)
      this.early.push([listener, socket]);
      return;
    }
    const server = this.servers[listener];
    if (!server) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      if (this.sockets.size === 0) this.drainedNow?.();
    });
    server.emit('connection', socket);
  }

  /** Serves this worker's metrics to the primary, which sums every worker's for /metrics. */
  shareMetrics(registry: Registry): void {
    this.registry = registry;
  }

  /** The whole registry's metrics, gathered by the primary from every worker. */
  metrics(): Promise<{ text: string; contentType: string }> {
    const id = ++this.nextMetrics;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.metricsWaiting.delete(id);
        reject(new Error('the primary did not answer'));
      }, 10_000);
      this.metricsWaiting.set(id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.send({ t: 'metrics', id });
    });
  }

  private receive(message: ToWorker, handle: Socket | undefined): void {
    switch (message.t) {
      case 'welcome': return this.welcomed();
      case 'conn': return this.accept(message.listener, handle);
      case 'granted': {
        const grant = this.granted.get(message.op);
        this.granted.delete(message.op);
        grant?.();
        return;
      }
      case 'hold': return this.hold(message.op, message.key);
      case 'unhold': {
        const releases = this.holding.get(message.op);
        this.holding.delete(message.op);
        // a hold still queued here is released as soon as it is granted
        if (this.queuedHolds.has(message.op)) this.cancelled.add(message.op);
        for (const release of releases ?? []) release();
        return;
      }
      case 'event': {
        const event = decodeEvent(message.event);
        for (const listener of this.remote) listener(event);
        return;
      }
      case 'walking':
        for (const listener of this.walkListeners) listener.started();
        return;
      case 'walked':
        for (const listener of this.walkListeners) listener.walked(message.names, message.startedAt);
        return;
      case 'metrics-get': {
        const id = message.id;
        void (this.registry?.getMetricsAsJSON() ?? Promise.resolve([]))
          .then((metrics) => this.send({ t: 'metrics-part', id, metrics }), () => this.send({ t: 'metrics-part', id, metrics: [] }));
        return;
      }
      case 'metrics-text': {
        const answer = this.metricsWaiting.get(message.id);
        this.metricsWaiting.delete(message.id);
        answer?.({ text: message.text, contentType: message.contentType });
        return;
      }
      default:
    }
  }

  /** Takes `key` exclusively here for the primary's operation `op`, until it says unhold. */
  private hold(op: number, key: string): void {
    this.queuedHolds.set(op, (this.queuedHolds.get(op) ?? 0) + 1);
    void this.local.withLocks([excl(key)], () => new Promise<void>((release) => {
      const queued = this.queuedHolds.get(op)! - 1;
      if (queued > 0) this.queuedHolds.set(op, queued); else this.queuedHolds.delete(op);
      if (this.cancelled.has(op)) {
        if (queued === 0) this.cancelled.delete(op);
        return release();
      }
      let releases = this.holding.get(op);
      if (!releases) this.holding.set(op, (releases = []));
      releases.push(release);
      this.send({ t: 'held', op, key });
    }));
  }
}
