// GET / HEAD / PUT / DELETE /v2/<name>/manifests/<tag or digest>
import { RegistryError } from '../../registry/errors.js';
import { acceptsMediaType } from '../../registry/manifests.js';
import { isTag, looksLikeDigest, parseDigest, validateTag } from '../../registry/names.js';
import { readBody, send, type RequestContext } from '../context.js';

export async function getManifest(ctx: RequestContext): Promise<void> {
  // registry:2's routes match only tags and digests: anything else names no manifest (404, as
  // the conformance suite expects), while PUT still refuses such a tag with 400
  if (!isTag(ctx.param) && !isDigest(ctx.param)) {
    throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${JSON.stringify(ctx.param.slice(0, 200))} is neither a tag nor a digest`,
      { reference: ctx.param.slice(0, 200) });
  }
  const manifest = await ctx.services.content.manifest(ctx.name, ctx.param);
  const accept = ctx.req.headers.accept;
  if (!acceptsMediaType(accept, manifest.mediaType)) {
    throw new RegistryError('MANIFEST_UNKNOWN',
      `manifest ${ctx.param} is ${manifest.mediaType}, which the Accept header (${accept}) does not list; add it to Accept`);
  }
  const etag = `"${manifest.digest}"`;
  if (ctx.req.headers['if-none-match']?.split(',').some((tag) => tag.trim() === etag || tag.trim() === '*')) {
    send(ctx, 304, { ETag: etag, 'Docker-Content-Digest': manifest.digest.toString(), ...manifest.notes });
    return;
  }
  send(ctx, 200, {
    'Content-Type': manifest.mediaType,
    'Content-Length': manifest.content.length,
    'Docker-Content-Digest': manifest.digest.toString(),
    ETag: etag,
    ...manifest.notes,
  }, manifest.content);
}

export async function putManifest(ctx: RequestContext): Promise<void> {
  const content = await readBody(ctx.req, ctx.services.manifests.maxSize,
    (limit) => new RegistryError('MANIFEST_TOO_LARGE', `manifest exceeds the ${limit}-byte limit`));
  const result = await ctx.services.manifests.put(ctx.name, ctx.param, content, ctx.req.headers['content-type']);
  ctx.services.catalog.add(ctx.name);
  const headers: Record<string, string | number> = {
    Location: `${ctx.base}/v2/${ctx.name}/manifests/${result.digest}`,
    'Docker-Content-Digest': result.digest.toString(),
    'Content-Length': 0,
  };
  if (result.subject) headers['OCI-Subject'] = result.subject.toString();
  send(ctx, 201, headers);
}

export async function deleteManifest(ctx: RequestContext): Promise<void> {
  if (looksLikeDigest(ctx.param)) {
    await ctx.services.manifests.delete(ctx.name, parseDigest(ctx.param));
  } else {
    await ctx.services.tags.remove(ctx.name, validateTag(ctx.param));
  }
  send(ctx, 202, { 'Content-Length': 0 });
}

function isDigest(reference: string): boolean {
  try {
    parseDigest(reference);
    return true;
  } catch {
    return false;
  }
}
