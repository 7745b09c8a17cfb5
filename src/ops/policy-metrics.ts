// Metrics of the policies: retention runs and what the last one removed (or, in a dry run, would
// remove), and each quota's limit and usage, for repositories and namespaces a limit applies to.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Policies } from '../policy/index.js';
import type { UsageIndex } from '../registry/usage.js';

export function registerPolicyMetrics(registry: Registry, policies: Policies, usage: UsageIndex): void {
  const { retention, set, quotas } = policies;
  const runs = new Counter({ name: 'berth_retention_runs_total', help: 'Retention runs in this process, by mode (dryrun or applied)',
    labelNames: ['mode'] as const, registers: [registry] });
  const tags = new Gauge({ name: 'berth_retention_last_tags',
    help: 'Tags the last retention run of each mode removed (applied) or would have removed (dryrun)', labelNames: ['mode'] as const, registers: [registry] });
  const manifests = new Gauge({ name: 'berth_retention_last_manifests',
    help: 'Manifests the last retention run of each mode removed (applied) or would have removed (dryrun)', labelNames: ['mode'] as const, registers: [registry] });
  const duration = new Gauge({ name: 'berth_retention_last_duration_seconds', help: 'How long the last retention run took', registers: [registry] });
  new Gauge({ name: 'berth_retention_running', help: '1 while retention runs', registers: [registry],
    collect() { this.set(retention.state.running ? 1 : 0); } });
  retention.onFinished((report) => {
    const mode = report.dryRun ? 'dryrun' : 'applied';
    runs.labels(mode).inc();
    tags.labels(mode).set(report.tagsRemoved);
    manifests.labels(mode).set(report.manifestsRemoved);
    duration.set(report.durationMs / 1000);
  });
  if (!set.hasQuotas) return;
  // per repository (bytes, tags) and per namespace (repositories): only where a limit applies
  const each = (fn: (scope: string, kind: 'bytes' | 'tags' | 'repositories', limit: number) => void) => {
    const names = usage.names();
    const namespaces = new Set(names.flatMap((n) => set.namespacesOf(n).map((ns) => ns.namespace)));
    for (const name of names) {
      for (const kind of ['bytes', 'tags'] as const) {
        const limit = set.limit(name, kind);
        if (limit) fn(name, kind, limit.limit);
      }
    }
    for (const ns of namespaces) fn(ns, 'repositories', set.limit(ns, 'repositories')!.limit);
  };
  new Gauge({ name: 'berth_quota_limit', help: 'The limit a quota sets (bytes, tags: per repository; repositories: per namespace)',
    labelNames: ['scope', 'quota'] as const, registers: [registry],
    collect() { this.reset(); each((scope, quota, limit) => this.labels(scope, quota).set(limit)); } });
  new Gauge({ name: 'berth_quota_used', help: 'What counts against a quota now',
    labelNames: ['scope', 'quota'] as const, registers: [registry],
    collect() { this.reset(); each((scope, quota) => this.labels(scope, quota).set(quotas.used(scope, quota))); } });
}
