// GET / HEAD / DELETE /v2/<name>/blobs/<digest>
import { RegistryError } from '../../registry/errors.js';
import { parseDigest } from '../../registry/names.js';
import type { BlobDescriptor } from '../../registry/blobs.js';
import type { BlobBody } from '../../registry/content.js';
import { send, type RequestContext } from '../context.js';

/** Parses a single `bytes=` range against a blob's size; undefined means "the whole blob".
 *  Several ranges are answered with the whole blob (RFC 9110 lets a server ignore Range). */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (!header || header.includes(',')) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  const unsatisfiable = () => new RegistryError('RANGE_INVALID',
    `range ${JSON.stringify(header.slice(0, 100))} cannot be served from a blob of ${size} bytes; ask for bytes=START-END within it`)
    .withHeaders({ 'Content-Range': `bytes */${size}` });
  if (!match) {
    if (/^bytes=/.test(header.trim())) throw unsatisfiable(); // a malformed byte range
    return undefined; // other units are ignored, as HTTP allows
  }
  const [, from, to] = match;
  let start: number;
  let end: number;
  if (from === '' && to === '') throw unsatisfiable();
  if (from === '') { // suffix: the last N bytes
    const n = Number(to);
    if (n === 0) throw unsatisfiable();
    start = Math.max(size - n, 0);
    end = size - 1;
  } else {
    start = Number(from);
    end = to === '' ? size - 1 : Math.min(Number(to), size - 1);
    if (to !== '' && Number(to) < start) throw unsatisfiable();
  }
  if (start >= size) throw unsatisfiable();
  return { start, end };
}

export async function getBlob(ctx: RequestContext): Promise<void> {
  const digest = parseDigest(ctx.param);
  const head = ctx.req.method === 'HEAD';
  const blob: Partial<BlobBody> & BlobDescriptor = head ? await ctx.services.content.blobStat(ctx.name, digest)
    : await ctx.services.content.blob(ctx.name, digest);
  const { size } = blob;
  if (!head && blob.redirect) { // to storage, as registry:2 does: ranges go along with the client
    send(ctx, 307, { Location: blob.redirect, 'Docker-Content-Digest': digest.toString(), 'Content-Length': 0, ...blob.notes });
    return;
  }
  const ranges = head || blob.ranges; // a HEAD says whether a GET would honour a range
  const range = ranges && size >= 0 ? parseRange(ctx.req.headers.range, size) : undefined;
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': digest.toString(),
    'Accept-Ranges': ranges ? 'bytes' : 'none',
    'Cache-Control': 'max-age=31536000',
    ETag: `"${digest}"`,
    ...blob.notes,
  };
  if (range) {
    headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
    headers['Content-Length'] = range.end - range.start + 1;
  } else if (size >= 0) {
    headers['Content-Length'] = size;
  }
  const status = range ? 206 : 200;
  if (head || !blob.send || size === 0) {
    send(ctx, status, headers);
    return;
  }
  ctx.res.writeHead(status, headers);
  if (!blob.ranges) ctx.res.flushHeaders(); // still arriving from an upstream: the client sees the answer start
  await blob.send(ctx.res, range?.start, range?.end);
  ctx.res.end();
}

export async function deleteBlob(ctx: RequestContext): Promise<void> {
  const digest = parseDigest(ctx.param);
  await ctx.services.blobs.unlink(ctx.name, digest);
  send(ctx, 202, { 'Content-Length': 0, 'Docker-Content-Digest': digest.toString() });
}
