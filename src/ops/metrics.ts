// Prometheus metrics (prom-client): requests, latency, bytes, uploads in flight, storage
// operations by driver, garbage collection and notification delivery.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Readable, Writable } from 'node:stream';
import type { GcReport } from '../registry/gc.js';
import type { FileInfo, StorageDriver } from '../storage/driver.js';

type CounterChild = ReturnType<Counter['labels']>;
type HistogramChild = ReturnType<Histogram['labels']>;

export class Metrics {
  readonly registry = new Registry();
  /** What /metrics serves: this process's registry, or (with several workers) every worker's. */
  gather: () => Promise<{ text: string; contentType: string }> =
    async () => ({ text: await this.registry.metrics(), contentType: this.registry.contentType });
  readonly requests = new Counter({ name: 'berth_http_requests_total', help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const, registers: [this.registry] });
  readonly duration = new Histogram({ name: 'berth_http_request_duration_seconds', help: 'HTTP request latency by route and method',
    labelNames: ['route', 'method'] as const, buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry] });
  readonly bytesIn = new Counter({ name: 'berth_http_request_bytes_total', help: 'Bytes received, by route',
    labelNames: ['route'] as const, registers: [this.registry] });
  readonly bytesOut = new Counter({ name: 'berth_http_response_bytes_total', help: 'Bytes sent, by route',
    labelNames: ['route'] as const, registers: [this.registry] });
  readonly uploadsInFlight = new Gauge({ name: 'berth_uploads_in_flight', help: 'Blob upload requests (POST, PATCH, PUT) in progress',
    registers: [this.registry] });
  readonly storage = new Histogram({ name: 'berth_storage_operation_duration_seconds', help: 'Storage driver operation latency',
    labelNames: ['driver', 'operation'] as const, buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry] });
  readonly notifications = new Counter({ name: 'berth_notifications_total', help: 'Notification deliveries by endpoint and outcome',
    labelNames: ['endpoint', 'outcome'] as const, registers: [this.registry] });
  readonly notificationsPending = new Gauge({ name: 'berth_notifications_pending', help: 'Events waiting for delivery, by endpoint',
    labelNames: ['endpoint'] as const, registers: [this.registry] });
  readonly notificationsDropped = new Counter({ name: 'berth_notifications_dropped_total',
    help: 'Events dropped undelivered, by endpoint and reason (full: the spool held maxevents; expired: older than maxage)',
    labelNames: ['endpoint', 'reason'] as const, registers: [this.registry] });

  // Label lookups hash their label set on every call; the children are cached per combination.
  private readonly requestChildren = new Map<string, { count: CounterChild; time: HistogramChild; in: CounterChild; out: CounterChild }>();
  private readonly storageChildren = new Map<string, HistogramChild>();

  observeRequest(route: string, method: string, status: number, seconds: number, bytesIn: number, bytesOut: number): void {
    const key = `${route} ${method} ${status}`;
    let child = this.requestChildren.get(key);
    if (!child) {
      child = {
        count: this.requests.labels(route, method, String(status)),
        time: this.duration.labels(route, method),
        in: this.bytesIn.labels(route),
        out: this.bytesOut.labels(route),
      };
      this.requestChildren.set(key, child);
    }
    child.count.inc();
    child.time.observe(seconds);
    if (bytesIn) child.in.inc(bytesIn);
    if (bytesOut) child.out.inc(bytesOut);
  }

  observeStorage(driver: string, operation: string, seconds: number): void {
    const key = `${driver} ${operation}`;
    let child = this.storageChildren.get(key);
    if (!child) this.storageChildren.set(key, (child = this.storage.labels(driver, operation)));
    child.observe(seconds);
  }

  constructor(gcReport?: () => Promise<GcReport | undefined>) {
    collectDefaultMetrics({ register: this.registry, prefix: 'berth_' });
    if (gcReport) {
      // `berth gc` runs as its own process; its last report, kept in storage, is read at scrape time
      const fields = [
        ['berth_gc_last_run_timestamp_seconds', 'When the last garbage collection finished', (r: GcReport) => Date.parse(r.finishedAt) / 1000],
        ['berth_gc_last_blobs_deleted', 'Blobs the last garbage collection deleted', (r: GcReport) => r.blobsDeleted],
        ['berth_gc_last_blobs_kept', 'Blobs the last garbage collection kept', (r: GcReport) => r.blobsKept],
        ['berth_gc_last_manifests_deleted', 'Manifests the last garbage collection deleted', (r: GcReport) => r.manifestsDeleted],
      ] as const;
      for (const [name, help, pick] of fields) {
        new Gauge({
          name, help, registers: [this.registry],
          async collect() {
            const report = await gcReport().catch(() => undefined);
            if (report) this.set(pick(report));
          },
        });
      }
    }
  }
}


/** Every member of T named, the optional ones too (possibly undefined): a wrapper cannot drop one unseen. */
type EveryMember<T> = { [K in keyof Required<T>]: T[K] };

/** Wraps a driver so that every operation's latency is observed, labelled by driver and operation. */
export function instrumentDriver(driver: StorageDriver, metrics: Metrics): StorageDriver {
  const time = <T>(operation: string, work: () => Promise<T>): Promise<T> => {
    const started = process.hrtime.bigint();
    return work().finally(() => metrics.observeStorage(driver.name, operation, Number(process.hrtime.bigint() - started) / 1e9));
  };
  const wrapped: EveryMember<StorageDriver> = {
    name: driver.name,
    localStat: driver.localStat,
    statNow: driver.statNow?.bind(driver),
    existsNow: driver.existsNow?.bind(driver),
    getContentWithInfo: driver.getContentWithInfo ? (path) => time('getcontent', () => driver.getContentWithInfo!(path)) : undefined,
    getContent: (path) => time('getcontent', () => driver.getContent(path)),
    putContent: (path, content, options) => time('putcontent', () => driver.putContent(path, content, options)),
    reader: (path, offset, end): Promise<Readable> => time('reader', () => driver.reader(path, offset, end)),
    copyTo: (path, dest: Writable, offset, end) => time('copyto', () => driver.copyTo(path, dest, offset, end)),
    writer: (path, append, options): Promise<Writable> => time('writer', () => driver.writer(path, append, options)),
    stat: (path): Promise<FileInfo> => time('stat', () => driver.stat(path)),
    list: (path) => time('list', () => driver.list(path)),
    move: (source, dest) => time('move', () => driver.move(source, dest)),
    touch: (path) => time('touch', () => driver.touch(path)),
    delete: (path) => time('delete', () => driver.delete(path)),
    ping: () => time('ping', () => driver.ping()),
    downloadUrl: driver.downloadUrl ? (path) => time('urlfor', () => driver.downloadUrl!(path)) : undefined,
    findFolders: driver.findFolders ? (path, marker, options) => time('findfolders', () => driver.findFolders!(path, marker, options)) : undefined,
    listMany: driver.listMany ? (paths) => time('listmany', () => driver.listMany!(paths)) : undefined,
    readMany: driver.readMany ? (paths) => time('readmany', () => driver.readMany!(paths)) : undefined,
  };
  return wrapped;
}
