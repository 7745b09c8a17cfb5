// Metrics of the pull-through cache, per upstream: hits and misses (manifests, blobs), bytes
// fetched, upstream requests by kind and status with their latency, and cached copies served
// because the upstream failed.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { CacheObserver } from '../proxy/cache.js';
import type { UpstreamObserver } from '../proxy/upstream.js';

export function registerProxyMetrics(registry: Registry): CacheObserver & UpstreamObserver {
  const lookups = new Counter({ name: 'berth_proxy_lookups_total', help: 'Pull-through cache lookups, by upstream, kind and result (hit, miss)',
    labelNames: ['upstream', 'kind', 'result'] as const, registers: [registry] });
  const bytes = new Counter({ name: 'berth_proxy_upstream_bytes_total', help: 'Blob bytes received from each upstream',
    labelNames: ['upstream'] as const, registers: [registry] });
  const requests = new Histogram({ name: 'berth_proxy_upstream_request_seconds', help: 'Upstream requests (until headers), by upstream, kind and status (error: no answer)',
    labelNames: ['upstream', 'kind', 'status'] as const, registers: [registry], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
  const errors = new Counter({ name: 'berth_proxy_upstream_errors_total', help: 'Upstream requests that got no answer, 429 or 5xx',
    labelNames: ['upstream', 'kind'] as const, registers: [registry] });
  const stale = new Counter({ name: 'berth_proxy_stale_served_total', help: 'Cached copies served because the upstream failed',
    labelNames: ['upstream'] as const, registers: [registry] });
  return {
    hit: (upstream, kind) => lookups.labels(upstream, kind, 'hit').inc(),
    miss: (upstream, kind) => lookups.labels(upstream, kind, 'miss').inc(),
    bytes: (upstream, n) => bytes.labels(upstream).inc(n),
    stale: (upstream) => stale.labels(upstream).inc(),
    request: (upstream, kind, status, seconds) => {
      requests.labels(upstream, kind, String(status)).observe(seconds);
      if (status === 'error' || status === 429 || status >= 500) errors.labels(upstream, kind).inc();
    },
  };
}
