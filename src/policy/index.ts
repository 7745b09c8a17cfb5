// Retention, tag immutability and quotas, assembled for the composition root: the write guard
// around the metadata store, the pull recorder around the content reader, and retention.
import type { Config } from '../config/load.js';
import type { ContentReader } from '../registry/content.js';
import type { MetadataStore } from '../registry/metadata.js';
import type { UsageIndex } from '../registry/usage.js';
import type { StorageDriver } from '../storage/driver.js';
import { GuardedMetadataStore } from './guard.js';
import { PullRecorder, PullRecordingContent } from './pulls.js';
import { QuotaLedger } from './quota.js';
import { Retention, type RetentionHooks } from './retention.js';
import { PolicySet, type PolicyView } from './rules.js';

/** Reservations of a push in progress count against a bytes quota at least this long. */
const MIN_RESERVE_MS = 10 * 60_000;

export interface Policies {
  set: PolicySet;
  quotas: QuotaLedger;
  retention: Retention;
  /** Pull times, when a rule keeps tags pulled within a duration. */
  pulls?: PullRecorder;
  /** What applies to a repository, with current usage: the management API's `policies` field. */
  view(name: string): PolicyView | undefined;
  /** The content reader the handlers use, recording pulls by tag when a rule needs them. */
  readsOf(content: ContentReader): ContentReader;
}

/**
 * Wraps `store`: client writes go through the result. Retention and collection use `store`
 * itself (they are not client writes). `readsOf` then wraps the content reader, so that reads by
 * tag are recorded when pull times matter.
 */
export function createPolicies(config: Config, store: MetadataStore, usage: UsageIndex, driver: StorageDriver,
                               hooks: RetentionHooks = {}): { policies?: Policies; store: MetadataStore } {
  const set = new PolicySet(config.policies);
  if (set.empty) return { store };
  const quotas = new QuotaLedger(set, usage, store, Math.max(config.storage.gc.graceMs, MIN_RESERVE_MS));
  const pulls = set.needsPullTimes ? new PullRecorder(driver) : undefined;
  const retention = new Retention(store, driver, set, pulls, hooks);
  const policies: Policies = {
    set, quotas, retention, pulls,
    view: (name) => set.view(name, (kind, scope) => quotas.used(scope, kind)),
    readsOf: (content) => (pulls ? new PullRecordingContent(content, pulls) : content),
  };
  return { policies, store: new GuardedMetadataStore(store, set, quotas, usage, driver) };
}
