// Metrics of the database: the pool (connections open, idle, and requests waiting for one),
// query and transaction latency, the depth of the review queues and reviews by outcome.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Database } from './index.js';

export function registerDatabaseMetrics(registry: Registry, database: Database): void {
  const { pool, reviewer, store } = database;
  new Gauge({ name: 'berth_database_pool_connections', help: 'Connections of the database pool, by state (total, idle, waiting: requests queued for one)',
    labelNames: ['state'] as const, registers: [registry],
    collect() {
      this.labels('total').set(pool.totalCount);
      this.labels('idle').set(pool.idleCount);
      this.labels('waiting').set(pool.waitingCount);
    } });
  const latency = new Histogram({ name: 'berth_database_query_duration_seconds', help: 'Database round trips by kind (read, transaction)',
    labelNames: ['kind'] as const, buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry] });
  store.observe = (kind, seconds) => latency.labels(kind).observe(seconds);
  new Gauge({ name: 'berth_gc_review_queue_depth', help: 'Items in the collection review queues, by queue and whether their review is due',
    labelNames: ['queue', 'due'] as const, registers: [registry],
    async collect() {
      const depth = await reviewer.depth().catch(() => undefined);
      if (!depth) return;
      this.labels('blob', 'false').set(depth.blob - depth.due.blob);
      this.labels('blob', 'true').set(depth.due.blob);
      this.labels('manifest', 'false').set(depth.manifest - depth.due.manifest);
      this.labels('manifest', 'true').set(depth.due.manifest);
    } });
  const reviews = new Counter({ name: 'berth_gc_reviews_total', help: 'Reviews of queued items made in this process, by queue and outcome (deleted, kept, skipped)',
    labelNames: ['queue', 'outcome'] as const, registers: [registry] });
  reviewer.observer.reviewed = (queue, outcome) => reviews.labels(queue, outcome).inc();
}
