// Berth's JSON management API under /api/v1/, authorised like /v2/: repositories with their
// usage, deleting a repository, collection, open uploads.
import { nameUnknown, RegistryError } from '../../registry/errors.js';
import { sendJson, type RequestContext } from '../context.js';
import { linkHeader, paginate } from '../pagination.js';

/** GET /api/v1/repositories?n=&last= — the repositories the caller may list, with usage. */
export async function listRepositories(ctx: RequestContext): Promise<void> {
  const { usage } = ctx.services;
  await usage.ready();
  const names = usage.names().filter((name) => ctx.auth.unrestricted || ctx.auth.canList(name));
  const query = new URLSearchParams(ctx.query);
  if (!query.has('n')) query.set('n', '100');
  const page = paginate(names, query);
  sendJson(ctx, 200, { repositories: page.items.map((name) => usage.usage(name)).filter(Boolean) },
    linkHeader(`${ctx.config.http.prefix}/api/v1/repositories`, page.next));
}

/** GET /api/v1/repositories/<name> — one repository's usage and its tags with push times. */
export async function getRepository(ctx: RequestContext): Promise<void> {
  const { usage } = ctx.services;
  await usage.ready();
  const found = usage.usage(ctx.name);
  if (!found) throw nameUnknown(ctx.name);
  const tags = [...usage.tagTimes(ctx.name)].sort((a, b) => b[1] - a[1])
    .map(([name, at]) => ({ name, pushedAt: at ? new Date(at).toISOString() : undefined }));
  const policies = ctx.services.policies?.view(ctx.name);
  sendJson(ctx, 200, { ...found, tagList: tags, ...(policies ? { policies } : {}) });
}

/** DELETE /api/v1/repositories/<name> — its tags, manifests, links and uploads; blobs go with collection. */
export async function deleteRepository(ctx: RequestContext): Promise<void> {
  if (!(await ctx.services.store.deleteRepository(ctx.name))) throw nameUnknown(ctx.name);
  sendJson(ctx, 202, { deleted: ctx.name, note: 'blobs no other repository references are removed by the next garbage collection' });
}

/** GET /api/v1/gc — whether a collection runs, the last report and the settings. */
export async function gcStatus(ctx: RequestContext): Promise<void> {
  const { collector } = ctx.services;
  sendJson(ctx, 200, { ...collector.state, last: collector.last ?? null, settings: collector.settings });
}

/** POST /api/v1/gc[?dryrun=true] — starts a collection (or joins the running one); 202 at once. */
export async function startGc(ctx: RequestContext): Promise<void> {
  if (!ctx.auth.canEverywhere('delete')) {
    throw new RegistryError('DENIED', 'starting garbage collection needs delete rights on every repository (an access rule for "**" granting delete)');
  }
  const { collector } = ctx.services;
  const dryRun = ctx.query.get('dryrun');
  const run = collector.run(dryRun === null ? {} : { dryRun: dryRun === 'true' || dryRun === '1' });
  run.catch((err) => ctx.log.error({ err }, 'garbage collection failed'));
  if (ctx.query.get('wait') === 'true') {
    sendJson(ctx, 200, await run);
    return;
  }
  sendJson(ctx, 202, { ...collector.state, last: collector.last ?? null });
}

/** GET /api/v1/uploads — how many uploads are open and how many bytes they hold. */
export async function uploadsStatus(ctx: RequestContext): Promise<void> {
  sendJson(ctx, 200, await ctx.services.openUploads.get());
}
