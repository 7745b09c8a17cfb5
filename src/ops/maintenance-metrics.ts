// Metrics of maintenance inside the registry: collections (runs, duration, what they freed,
// errors), stored manifests that cannot be read, and open uploads.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Services } from '../app.js';

export interface MaintenanceMetrics {
  unreadable: Counter;
}

export function registerMaintenanceMetrics(registry: Registry, services: Services): MaintenanceMetrics {
  const { collector, openUploads } = services;
  const runs = new Counter({ name: 'berth_gc_runs_total', help: 'Garbage collections run in this process, by outcome',
    labelNames: ['outcome'] as const, registers: [registry] });
  const freed = new Counter({ name: 'berth_gc_freed_bytes_total', help: 'Bytes of blobs garbage collection removed in this process',
    registers: [registry] });
  new Gauge({ name: 'berth_gc_last_duration_seconds', help: 'How long the last garbage collection took', registers: [registry],
    collect() { if (collector.last) this.set(collector.last.durationMs / 1000); } });
  new Gauge({ name: 'berth_gc_last_freed_bytes', help: 'Bytes the last garbage collection freed', registers: [registry],
    collect() { if (collector.last) this.set(collector.last.bytesFreed); } });
  new Gauge({ name: 'berth_gc_running', help: '1 while a garbage collection runs', registers: [registry],
    collect() { this.set(collector.state.running ? 1 : 0); } });
  new Gauge({ name: 'berth_gc_errors', help: 'Garbage collections that failed in this process', registers: [registry],
    collect() { this.set(collector.errors); } });
  new Gauge({ name: 'berth_uploads_open', help: 'Blob uploads open in storage (in progress or abandoned)', registers: [registry],
    async collect() { this.set((await openUploads.get().catch(() => ({ count: 0 }))).count); } });
  new Gauge({ name: 'berth_uploads_open_bytes', help: 'Bytes held by open blob uploads', registers: [registry],
    async collect() { this.set((await openUploads.get().catch(() => ({ bytes: 0 }))).bytes); } });
  collector.onFinished((report) => {
    runs.labels('ok').inc();
    freed.inc(report.bytesFreed);
  });
  const unreadable = new Counter({ name: 'berth_manifests_unreadable_total',
    help: 'Stored manifests found unreadable (kept, with everything they might reference)', registers: [registry] });
  return { unreadable };
}
