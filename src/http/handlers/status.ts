// GET /api/v1/status (the registry at a glance) and GET /api/v1/me (who the caller is and what
// they may do), for the web UI and for scripts. Both answer from the running services.
import { ACTIONS, type Action } from '../../auth/access.js';
import { lastGcReport } from '../../registry/gc.js';
import { validateName } from '../../registry/names.js';
import { VERSION } from '../../version.js';
import { sendJson, type RequestContext } from '../context.js';

/** GET /api/v1/status — version, storage used, uploads in progress, collection (running, last report, schedule). */
export async function status(ctx: RequestContext): Promise<void> {
  const { usage, collector, openUploads } = ctx.services;
  await usage.ready();
  const { storage } = ctx.config;
  sendJson(ctx, 200, {
    version: VERSION,
    repositories: usage.totals().repositories,
    storage: { bytes: usage.totals().bytes, driver: storage.driver },
    uploads: await openUploads.get(),
    gc: {
      // the last report of this process, else the one in storage (an earlier process, or berth gc)
      ...collector.state, last: collector.last ?? await lastGcReport(ctx.services.driver).catch(() => undefined) ?? null,
      settings: collector.settings,
      scheduled: storage.gc.enabled ? { intervalSeconds: storage.gc.intervalMs / 1000 } : null,
    },
    deleteEnabled: storage.deleteEnabled,
    readOnly: storage.readOnly,
  });
}

/** What the switches leave of an action, whatever the caller's rights. */
function possible(ctx: RequestContext, action: Action): boolean {
  const { storage } = ctx.config;
  if (action === 'pull') return true;
  if (storage.readOnly) return false;
  return action === 'push' || storage.deleteEnabled;
}

/**
 * GET /api/v1/me[?repository=<name>] — the caller's user name, how the registry authenticates,
 * whether they may start a collection, and with `repository` what they may do there.
 * The answer only describes: every operation is still authorised on its own request.
 */
export async function me(ctx: RequestContext): Promise<void> {
  const { auth, config } = ctx;
  const mode = config.auth.htpasswd ? 'htpasswd' : config.auth.token || config.tokenServer.enabled ? 'token' : 'none';
  const repository = ctx.query.get('repository');
  const actions = repository === null ? undefined
    : ACTIONS.filter((a) => possible(ctx, a) && auth.can(validateName(repository), a));
  sendJson(ctx, 200, {
    user: auth.identity.user ?? null,
    auth: mode,
    deleteEnabled: config.storage.deleteEnabled,
    readOnly: config.storage.readOnly,
    gc: !config.storage.readOnly && auth.canEverywhere('delete'),
    ...(repository === null ? {} : { repository: { name: repository, actions } }),
  });
}
