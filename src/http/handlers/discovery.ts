// GET /v2/, GET /v2/_catalog, GET /v2/<name>/tags/list, GET /v2/<name>/referrers/<digest>
import { MEDIA } from '../../registry/media-types.js';
import { parseDigest } from '../../registry/names.js';
import { sendJson, type RequestContext } from '../context.js';
import { linkHeader, paginate } from '../pagination.js';

export async function base(ctx: RequestContext): Promise<void> {
  sendJson(ctx, 200, {});
}

export async function catalog(ctx: RequestContext): Promise<void> {
  const all = await ctx.services.catalog.list();
  const page = paginate(ctx.auth.unrestricted ? all : all.filter((name) => ctx.auth.canList(name)), ctx.query);
  sendJson(ctx, 200, { repositories: page.items }, linkHeader(`${ctx.config.http.prefix}/v2/_catalog`, page.next));
}

export async function tagsList(ctx: RequestContext): Promise<void> {
  const { tags, notes } = await ctx.services.content.tags(ctx.name);
  const page = paginate(tags, ctx.query);
  sendJson(ctx, 200, { name: ctx.name, tags: page.items },
    { ...linkHeader(`${ctx.config.http.prefix}/v2/${ctx.name}/tags/list`, page.next), ...notes });
}

export async function referrers(ctx: RequestContext): Promise<void> {
  const subject = parseDigest(ctx.param);
  const artifactType = ctx.query.get('artifactType') ?? undefined;
  const manifests = await ctx.services.referrers.list(ctx.name, subject, artifactType);
  sendJson(ctx, 200, { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests },
    artifactType ? { 'OCI-Filters-Applied': 'artifactType' } : {}, MEDIA.ociIndex);
}
