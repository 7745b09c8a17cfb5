// POST /v2/<name>/blobs/uploads/ and GET / PATCH / PUT / DELETE /v2/<name>/blobs/uploads/<id>
import { RegistryError } from '../../registry/errors.js';
import { parseDigest, validateName } from '../../registry/names.js';
import { rangeHeader, type UploadRange, type UploadStatus } from '../../registry/uploads.js';
import { hasBody, send, type RequestContext } from '../context.js';

function uploadHeaders(ctx: RequestContext, upload: UploadStatus): Record<string, string | number> {
  return {
    Location: `${ctx.base}/v2/${ctx.name}/blobs/uploads/${upload.id}?_state=${encodeURIComponent(upload.state)}`,
    Range: rangeHeader(upload.size),
    'Docker-Upload-UUID': upload.id,
    'Content-Length': 0,
  };
}

function created(ctx: RequestContext, digest: string): void {
  send(ctx, 201, {
    Location: `${ctx.base}/v2/${ctx.name}/blobs/${digest}`,
    'Docker-Content-Digest': digest,
    'Content-Length': 0,
  });
}

/**
 * The signed `_state` of the upload's Location. Every client follows Location verbatim, so a
 * request without it did not come from the upload's own answers: refused, as registry:2 does.
 */
function stateOf(ctx: RequestContext): string {
  const state = ctx.query.get('_state');
  if (!state) {
    throw new RegistryError('BLOB_UPLOAD_INVALID',
      'the upload URL lacks its _state token: use the Location of the previous answer as it was given');
  }
  return state;
}

/** Content-Range of a PATCH or closing PUT: "start-end", also accepting "bytes start-end/total". */
function parseContentRange(header: string | undefined): UploadRange | undefined {
  if (header === undefined) return undefined;
  const match = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!match || Number(match[2]) < Number(match[1])) {
    throw new RegistryError('RANGE_INVALID', `Content-Range ${JSON.stringify(header.slice(0, 100))} is not START-END`);
  }
  return { start: Number(match[1]), end: Number(match[2]) };
}

export async function startUpload(ctx: RequestContext): Promise<void> {
  const { blobs, uploads } = ctx.services;
  const mount = ctx.query.get('mount');
  const from = ctx.query.get('from');
  if (mount) {
    const digest = parseDigest(mount);
    // Mount from a named repository the caller may pull, or by digest alone when the content
    // is stored and the caller may read everything; otherwise a normal upload starts.
    const source = from ? validateName(from) : undefined;
    const available = source ? ctx.auth.can(source, 'pull') && await blobs.present(source, digest) : ctx.auth.unrestricted;
    if (available && await blobs.mount(ctx.name, digest)) {
      created(ctx, digest.toString());
      return;
    }
  }
  const digestParam = ctx.query.get('digest');
  if (digestParam) {
    const digest = parseDigest(digestParam);
    const upload = await uploads.start(ctx.name);
    try {
      await uploads.complete(ctx.name, upload.id, digest, ctx.req);
    } catch (err) {
      await uploads.cancel(ctx.name, upload.id).catch(() => undefined);
      throw err;
    }
    created(ctx, digest.toString());
    return;
  }
  const upload = await uploads.start(ctx.name);
  send(ctx, 202, uploadHeaders(ctx, upload));
}

export async function uploadStatus(ctx: RequestContext): Promise<void> {
  const upload = await ctx.services.uploads.status(ctx.name, ctx.param, stateOf(ctx));
  send(ctx, 204, uploadHeaders(ctx, upload));
}

export async function patchUpload(ctx: RequestContext): Promise<void> {
  const range = parseContentRange(ctx.req.headers['content-range']);
  const upload = await ctx.services.uploads.append(ctx.name, ctx.param, ctx.req, range, stateOf(ctx));
  send(ctx, 202, uploadHeaders(ctx, upload));
}

export async function finishUpload(ctx: RequestContext): Promise<void> {
  const digestParam = ctx.query.get('digest');
  if (!digestParam) throw new RegistryError('DIGEST_INVALID', 'PUT of an upload needs ?digest=<algorithm>:<hex> of the whole blob');
  const digest = parseDigest(digestParam);
  const body = hasBody(ctx) ? ctx.req : undefined;
  const range = body ? parseContentRange(ctx.req.headers['content-range']) : undefined;
  await ctx.services.uploads.complete(ctx.name, ctx.param, digest, body, stateOf(ctx), range);
  created(ctx, digest.toString());
}

export async function cancelUpload(ctx: RequestContext): Promise<void> {
  await ctx.services.uploads.cancel(ctx.name, ctx.param, stateOf(ctx));
  send(ctx, 204, { 'Content-Length': 0 });
}
