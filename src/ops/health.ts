// Health endpoints: /healthz (the process answers), /readyz (storage answers now), and
// registry:2's /debug/health (periodic storage checks with a failure threshold), plus /metrics.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StorageDriver } from '../storage/driver.js';
import type { Metrics } from './metrics.js';

const PROBE_TIMEOUT_MS = 5000;

function probe(driver: { ping(): Promise<void> }, what = 'storage'): Promise<void> {
  return Promise.race([
    driver.ping(),
    new Promise<void>((_, reject) => setTimeout(() => reject(new Error(`${what} did not answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS).unref()),
  ]);
}

/** registry:2's storage health check: unhealthy after `threshold` failed checks in a row. */
export class StorageHealth {
  private failures = 0;
  private lastError: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly driver: StorageDriver, private readonly intervalMs: number, private readonly threshold: number) {}

  start(): void {
    const check = () => probe(this.driver).then(() => { this.failures = 0; this.lastError = undefined; },
      (err: Error) => { this.failures++; this.lastError = err.message; });
    void check();
    this.timer = setInterval(check, this.intervalMs).unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Failing checks by name, as /debug/health reports them; empty when healthy. */
  get failing(): Record<string, string> {
    return this.failures >= this.threshold ? { [`storagedriver_${this.driver.name}`]: this.lastError ?? 'failing' } : {};
  }
}

export interface OpsEndpoints {
  driver: StorageDriver;
  metrics?: Metrics;
  metricsPath?: string;
  health?: StorageHealth;
  /** The metadata database, when there is one: /readyz asks it too. */
  database?: { ping(): Promise<void> };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': data.length, 'Cache-Control': 'no-store' });
  res.end(data);
}

/** Answers an operations path; false when `path` is not one. */
export function serveOps(path: string, req: IncomingMessage, res: ServerResponse, ops: OpsEndpoints): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  if (path === '/healthz') {
    json(res, 200, { status: 'ok' });
  } else if (path === '/readyz') {
    const database = ops.database ? { database: 'postgresql' } : {};
    Promise.all([probe(ops.driver), ops.database && probe(ops.database, 'the database')])
      .then(() => json(res, 200, { status: 'ready', storage: ops.driver.name, ...database }),
        (err: Error) => json(res, 503, { status: 'unavailable', storage: ops.driver.name, ...database, error: err.message }));
  } else if (path === '/debug/health' && ops.health) {
    const failing = ops.health.failing;
    json(res, Object.keys(failing).length ? 503 : 200, failing);
  } else if (ops.metrics && ops.metricsPath && path === ops.metricsPath) {
    ops.metrics.gather().then(({ text, contentType }) => {
      res.writeHead(200, { 'Content-Type': contentType });
      res.end(text);
    }, () => json(res, 500, { error: 'metrics unavailable' }));
  } else {
    return false;
  }
  return true;
}
