// Webhook notifications, configured like registry:2's notifications.endpoints. Each event is
// first written to a spool in storage (/berth/notifications/<endpoint>/) and only removed once
// the endpoint accepted it, so events survive a restart; delivery retries with backoff.
// Delivery is at least once: after a crash an event may be sent twice. The spool is bounded per
// endpoint by count (maxevents: new events are dropped while it is full) and by age (maxage:
// older events are dropped unsent); drops are counted and logged once per episode.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { NotificationEndpoint } from '../config/load.js';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { EVENTS_MEDIA_TYPE, type RegistryEvent } from './events.js';
import type { Metrics } from './metrics.js';

const SPOOL = '/berth/notifications';

type DropReason = 'full' | 'expired';

class EndpointQueue {
  private readonly pending: string[] = [];
  /** Spool writes in progress: they count against maxevents already. */
  private writing = 0;
  /** Events dropped in the current episode, by reason (logged when an episode starts and ends). */
  private readonly dropped: Record<DropReason, number> = { full: 0, expired: 0 };
  private running: Promise<void> | undefined;
  private failures = 0;
  private stopped = false;
  private wake: (() => void) | undefined;
  private sequence = 0;

  constructor(private readonly endpoint: NotificationEndpoint, private readonly driver: StorageDriver,
              private readonly log: Logger, private readonly metrics?: Metrics) {}

  private get dir(): string {
    return `${SPOOL}/${this.endpoint.name}`;
  }

  /** Picks up events a previous run spooled but did not deliver. */
  async resume(): Promise<void> {
    try {
      const files = (await this.driver.list(this.dir)).filter((f) => f.endsWith('.json')).sort();
      this.pending.push(...files.map((f) => `${this.dir}/${f}`));
      if (files.length) this.log.info({ endpoint: this.endpoint.name, events: files.length }, 'resuming undelivered notifications');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    await this.dropExpired();
    // a spool left by a run with a larger maxevents keeps its oldest events
    for (const path of this.pending.splice(this.endpoint.maxEvents)) {
      await this.driver.delete(path);
      this.drop('full');
    }
    this.kick();
  }

  async enqueue(event: RegistryEvent): Promise<void> {
    if (this.pending.length + this.writing >= this.endpoint.maxEvents) {
      this.drop('full');
      return;
    }
    const name = `${Date.now().toString().padStart(15, '0')}-${(this.sequence++).toString().padStart(6, '0')}-${randomUUID()}.json`;
    const path = `${this.dir}/${name}`;
    this.writing++;
    try {
      await this.driver.putContent(path, JSON.stringify({ events: [event] }));
    } finally {
      this.writing--;
    }
    this.pending.push(path);
    this.kick();
  }

  /** Counts a dropped event; the first drop of an episode is logged, not every one. */
  private drop(reason: DropReason): void {
    this.metrics?.notificationsDropped.inc({ endpoint: this.endpoint.name, reason });
    if (this.dropped[reason]++ > 0) return;
    const { name, maxEvents, maxAgeMs } = this.endpoint;
    this.log.warn({ endpoint: name, reason, maxEvents, maxAgeHours: maxAgeMs / 3_600_000 }, reason === 'full'
      ? 'notification spool full: new events for this endpoint are dropped until it catches up (notifications.endpoints[].maxevents)'
      : 'notification events older than maxage are dropped unsent (notifications.endpoints[].maxage)');
  }

  /** Ends drop episodes once the spool has room again, with how many events they cost. */
  private noteRecovery(): void {
    for (const reason of ['full', 'expired'] as const) {
      const count = this.dropped[reason];
      if (count === 0 || (reason === 'full' && this.pending.length > this.endpoint.maxEvents * 0.9)) continue;
      this.dropped[reason] = 0;
      this.log.info({ endpoint: this.endpoint.name, reason, count }, 'notification spool has room again; events were dropped meanwhile');
    }
  }

  /** Drops spooled events older than maxage (file names start with their time; the list is sorted). */
  private async dropExpired(): Promise<void> {
    const oldest = Date.now() - this.endpoint.maxAgeMs;
    while (this.pending.length > 0 && spooledAt(this.pending[0]!) < oldest) {
      await this.driver.delete(this.pending.shift()!);
      this.drop('expired');
    }
  }

  private kick(): void {
    this.metrics?.notificationsPending.set({ endpoint: this.endpoint.name }, this.pending.length);
    this.wake?.();
    this.running ??= this.deliverAll()
      .catch(async (err) => {
        // storage trouble (not the endpoint's): keep the events and try again after a pause
        this.log.error({ err, endpoint: this.endpoint.name }, 'notification spool unreadable; retrying');
        await this.pause(this.endpoint.backoffMs);
        if (!this.stopped) setImmediate(() => this.kick());
      })
      .finally(() => { this.running = undefined; });
  }

  private async deliverAll(): Promise<void> {
    while (!this.stopped && this.pending.length > 0) {
      await this.dropExpired();
      if (this.pending.length === 0) break;
      const path = this.pending[0]!;
      let body: Buffer;
      try {
        body = await this.driver.getContent(path);
      } catch (err) {
        if (isNotFound(err)) { // delivered by another run sharing the spool
          this.pending.shift();
          continue;
        }
        throw err;
      }
      if (await this.send(body.toString('utf8'))) {
        this.failures = 0;
        this.pending.shift();
        await this.driver.delete(path);
        this.metrics?.notifications.inc({ endpoint: this.endpoint.name, outcome: 'delivered' });
      } else {
        this.failures++;
        this.metrics?.notifications.inc({ endpoint: this.endpoint.name, outcome: 'failed' });
        await this.pause(this.delay());
      }
      this.metrics?.notificationsPending.set({ endpoint: this.endpoint.name }, this.pending.length);
      this.noteRecovery();
    }
    this.metrics?.notificationsPending.set({ endpoint: this.endpoint.name }, this.pending.length);
  }

  /** Quick retries until `threshold` failures in a row, then `backoff`, doubling up to 64 times it. */
  private delay(): number {
    const { threshold, backoffMs } = this.endpoint;
    if (this.failures < threshold) return Math.min(100, backoffMs);
    return backoffMs * Math.min(64, 2 ** (this.failures - threshold));
  }

  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.stopped) return resolve(); // stop() came while a delivery was under way
      const timer = setTimeout(resolve, ms);
      timer.unref();
      this.wake = () => { clearTimeout(timer); resolve(); };
    }).finally(() => { this.wake = undefined; });
  }

  private async send(body: string): Promise<boolean> {
    const headers: Record<string, string> = { 'Content-Type': EVENTS_MEDIA_TYPE };
    for (const [k, v] of Object.entries(this.endpoint.headers)) headers[k] = v.join(', ');
    try {
      const res = await fetch(this.endpoint.url, { method: 'POST', body, headers, signal: AbortSignal.timeout(this.endpoint.timeoutMs) });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status >= 200 && res.status < 400) return true;
      this.log.warn({ endpoint: this.endpoint.name, status: res.status, failures: this.failures + 1 }, 'notification endpoint refused an event; will retry');
    } catch (err) {
      this.log.warn({ endpoint: this.endpoint.name, err: (err as Error).message, failures: this.failures + 1 }, 'notification delivery failed; will retry');
    }
    return false;
  }

  /** Stops retrying; what is still pending stays spooled for the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running?.catch(() => undefined);
  }
}

/** When a spool file was written: its name starts with the time in milliseconds. */
function spooledAt(path: string): number {
  const time = Number(path.slice(path.lastIndexOf('/') + 1).split('-')[0]);
  return Number.isFinite(time) ? time : Date.now();
}

export class Notifier {
  private readonly queues: { endpoint: NotificationEndpoint; queue: EndpointQueue }[];
  private readonly writes = new Set<Promise<void>>();

  constructor(endpoints: NotificationEndpoint[], driver: StorageDriver, private readonly log: Logger, metrics?: Metrics) {
    this.queues = endpoints.map((endpoint) => ({ endpoint, queue: new EndpointQueue(endpoint, driver, log, metrics) }));
  }

  get enabled(): boolean {
    return this.queues.length > 0;
  }

  async start(): Promise<void> {
    await Promise.all(this.queues.map(({ queue }) => queue.resume()));
  }

  publish(event: RegistryEvent): void {
    for (const { endpoint, queue } of this.queues) {
      if (endpoint.ignoredActions.includes(event.action)) continue;
      if (event.target.mediaType && endpoint.ignoredMediaTypes.includes(event.target.mediaType)) continue;
      const write = queue.enqueue(event).catch((err) => this.log.error({ err, endpoint: endpoint.name }, 'cannot spool a notification'));
      this.writes.add(write);
      void write.finally(() => this.writes.delete(write));
    }
  }

  /** Waits for spool writes in progress, then stops delivery. */
  async stop(): Promise<void> {
    await Promise.all([...this.writes]);
    await Promise.all(this.queues.map(({ queue }) => queue.stop()));
  }
}
