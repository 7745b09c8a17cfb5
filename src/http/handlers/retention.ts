// GET and POST /api/v1/retention: the last retention report, and a run on demand (or a dry run).
import { RegistryError } from '../../registry/errors.js';
import { sendJson, type RequestContext } from '../context.js';

/** GET /api/v1/retention — whether retention runs, the last report and the settings. */
export async function retentionStatus(ctx: RequestContext): Promise<void> {
  const policies = ctx.services.policies;
  const settings = { interval: ctx.config.policies.intervalMs / 1000, dryrun: ctx.config.policies.dryRun, rules: ctx.config.policies.rules.length };
  if (!policies) {
    sendJson(ctx, 200, { running: false, last: null, settings });
    return;
  }
  sendJson(ctx, 200, { ...policies.retention.state, last: (await policies.retention.lastReport()) ?? null, settings });
}

/** POST /api/v1/retention[?dryrun=true][&wait=true] — starts retention (or joins the running run); 202 at once. */
export async function startRetention(ctx: RequestContext): Promise<void> {
  if (!ctx.auth.canEverywhere('delete')) {
    throw new RegistryError('DENIED', 'starting retention needs delete rights on every repository (an access rule for "**" granting delete)');
  }
  const policies = ctx.services.policies;
  if (!policies?.set.hasRetention) {
    throw new RegistryError('UNSUPPORTED', 'no retention rules are configured: add policies.rules with keep or untagged (see docs/configuration.md#policies)',
      undefined, 409);
  }
  const dryRun = ctx.query.get('dryrun');
  const run = policies.retention.run(dryRun === null ? {} : { dryRun: dryRun === 'true' || dryRun === '1' });
  run.catch((err) => ctx.log.error({ err }, 'retention failed'));
  if (ctx.query.get('wait') === 'true') {
    sendJson(ctx, 200, await run);
    return;
  }
  sendJson(ctx, 202, { ...policies.retention.state, last: policies.retention.last ?? null });
}
