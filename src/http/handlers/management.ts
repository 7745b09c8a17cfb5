// Berth's JSON management API under /api/v1/, authorised like /v2/: repositories with their
// usage, deleting a repository, collection, open uploads.
import { nameUnknown, RegistryError } from '../../registry/errors.js';
import { sendJson, type RequestContext } from '../context.js';
import { linkHeader, paginate } from '../pagination.js';

/** GET /api/v1/repositories?q=&n=&last= — the repositories the caller may list (names holding q), with usage. */
export async function listRepositories(ctx: RequestContext): Promise<void> {
  const { usage } = ctx.services;
  await usage.ready();
  const q = ctx.query.get('q')?.toLowerCase() ?? '';
  const names = usage.names().filter((name) => (!q || name.includes(q)) && (ctx.auth.unrestricted || ctx.auth.canList(name)));
  const query = new URLSearchParams(ctx.query);
  if (!query.has('n')) query.set('n', '100');
  query.delete('q');
  const page = paginate(names, query);
  const next = page.next && q ? `${page.next}&q=${encodeURIComponent(q)}` : page.next;
  sendJson(ctx, 200, { repositories: page.items.map((name) => usage.usage(name)).filter(Boolean), total: names.length },
    linkHeader(`${ctx.config.http.prefix}/api/v1/repositories`, next));
}

/** GET /api/v1/repositories/<name> — one repository's usage, its tags (push time, digest, size, platforms) and untagged manifests. */
export async function getRepository(ctx: RequestContext): Promise<void> {
  const { usage } = ctx.services;
  await usage.ready();
  const found = usage.usage(ctx.name);
  if (!found) throw nameUnknown(ctx.name);
  // newest push first, each with its digest, size and platforms; then the manifests no tag names
  const tags = await ctx.services.inventory.tags(ctx.name);
  const policies = ctx.services.policies?.view(ctx.name);
  sendJson(ctx, 200, { ...found, tagList: tags, untagged: await ctx.services.inventory.untagged(ctx.name, tags),
    ...(policies ? { policies } : {}) });
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
