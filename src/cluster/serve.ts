// `berth serve` with `http.workers` > 1: the primary's start, and a worker's coordination.
import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { Coordination } from '../app.js';
import type { Config } from '../config/load.js';
import { Primary, type ListenSpec } from './primary.js';
import { ClusterLink, workerSlot } from './worker.js';

/** Whether this process should start workers rather than serve. */
export function startsWorkers(config: Config): boolean {
  return config.http.workers > 1 && cluster.isPrimary && workerSlot() === undefined;
}

/** What stops a registry from running as several workers, as a message naming the fix. */
export function workersRefusal(config: Config): string | undefined {
  if (config.tokenServer.enabled && !config.tokenServer.key) {
    return 'tokenserver.key is not set, so each worker would sign tokens with a key of its own that the others refuse: '
      + 'set tokenserver.key (a PEM private key file), or http.workers: 1';
  }
  if (config.http.net === 'unix') {
    return 'http.workers > 1 needs a TCP listener (http.net: tcp): set http.workers: 1 to listen on a unix socket';
  }
  return undefined;
}

/** Runs the primary until it stops; resolves with the exit code. */
export function servePrimary(config: Config, log: Logger, listeners: ListenSpec[]): Promise<number> {
  // every worker must sign and check upload state with the same secret
  const env: Record<string, string> = { REGISTRY_HTTP_SECRET: config.http.secret };
  return new Primary({ workers: config.http.workers, listeners, log, env, drainMs: config.http.drainTimeoutMs }).start();
}

/** A worker's coordination with the others, or undefined when this process serves alone. */
export function workerCoordination(onPrimaryGone: () => void): { coordination: Coordination; link: ClusterLink; slot: number } | undefined {
  const slot = workerSlot();
  if (slot === undefined) return undefined;
  const link = new ClusterLink(onPrimaryGone);
  return {
    slot,
    link,
    coordination: {
      locks: link, relay: link, walks: link.walks, leader: slot === 0,
      metrics: (registry) => {
        link.shareMetrics(registry);
        return () => link.metrics();
      },
    },
  };
}
