// The web UI: GET / for a browser (Accept: text/html) and GET /ui/<file> for its scripts and
// styles, built by `npm run build`. Served without authentication (they hold no data: the page
// reads everything from /api/v1/ and /v2/ with the user's credentials), precompressed, with
// strong ETags, long caching for hashed names and a strict Content-Security-Policy.
import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../../registry/errors.js';
import { UiAssetsMissing, type Encoding, type UiAsset } from '../../ui/assets.js';
import type { RequestContext } from '../context.js';

export const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const SECURITY_HEADERS = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const ETAG_SUFFIX: Record<Encoding, string> = { identity: '', gzip: '-gz', br: '-br' };

function uiOff(): RegistryError {
  return new RegistryError('UNSUPPORTED', 'the web UI is turned off (ui.enabled: false); the registry API is at /v2/', undefined, 404);
}

function notFound(): RegistryError {
  return new RegistryError('UNSUPPORTED', 'no such endpoint in the registry API (see /v2/)', undefined, 404);
}

/** Whether the client asks for HTML: browsers navigating do; registry clients never ask for /. */
function wantsHtml(req: IncomingMessage): boolean {
  return /(^|,)\s*text\/html\s*(;|,|$)/i.test(req.headers.accept ?? '');
}

/** The best encoding the client accepts among those stored (q=0 refuses one). */
export function chooseEncoding(acceptEncoding: string | undefined, asset: UiAsset): Encoding {
  const accepted = new Map<string, number>();
  for (const part of (acceptEncoding ?? '').split(',')) {
    const [token, ...params] = part.trim().toLowerCase().split(';');
    if (!token) continue;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    accepted.set(token, q ? Number(q.slice(2)) || 0 : 1);
  }
  const ok = (e: string) => (accepted.get(e) ?? accepted.get('*') ?? 0) > 0;
  if (asset.bodies.br && ok('br')) return 'br';
  if (asset.bodies.gzip && ok('gzip')) return 'gzip';
  return 'identity';
}

async function serve(ctx: RequestContext, file: string): Promise<void> {
  const { ui } = ctx.services;
  let asset: UiAsset | undefined;
  try {
    asset = await ui.get(file);
  } catch (err) {
    if (err instanceof UiAssetsMissing) {
      ctx.log.warn(err.message);
      throw new RegistryError('UNAVAILABLE', err.message, undefined, 503);
    }
    throw err;
  }
  if (!asset) throw new RegistryError('UNSUPPORTED', `the web UI has no file ${JSON.stringify(file.slice(0, 100))}`, undefined, 404);
  const encoding = chooseEncoding(ctx.req.headers['accept-encoding'], asset);
  const etag = `"${asset.etag}${ETAG_SUFFIX[encoding]}"`;
  const headers: Record<string, string | number> = {
    ...SECURITY_HEADERS,
    'Content-Type': asset.type,
    ETag: etag,
    Vary: 'Accept-Encoding',
    'Cache-Control': asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
  };
  const match = ctx.req.headers['if-none-match'];
  if (match && (match === '*' || match.split(',').some((t) => t.trim().replace(/^W\//, '') === etag))) {
    ctx.res.writeHead(304, headers).end();
    return;
  }
  const body = asset.bodies[encoding]!;
  if (encoding !== 'identity') headers['Content-Encoding'] = encoding;
  headers['Content-Length'] = body.length;
  ctx.res.writeHead(200, headers);
  ctx.res.end(ctx.req.method === 'HEAD' ? undefined : body);
}

/** GET / — the UI's page, for a browser; anything else asking for / gets the registry's 404, as before. */
export async function uiPage(ctx: RequestContext): Promise<void> {
  if (!wantsHtml(ctx.req)) throw notFound();
  if (!ctx.config.ui.enabled) throw uiOff();
  const path = (ctx.req.url ?? '/').split('?')[0]!;
  if (!path.endsWith('/')) { // http.prefix without its slash: the page's relative links need it
    ctx.res.writeHead(301, { Location: `${path}/`, 'Content-Length': 0 }).end();
    return;
  }
  await serve(ctx, 'index.html');
}

/** GET /ui/<file> — a script, style sheet or icon of the UI. */
export async function uiAsset(ctx: RequestContext): Promise<void> {
  if (!ctx.config.ui.enabled) throw uiOff();
  const path = (ctx.req.url ?? '').split('?')[0]!;
  await serve(ctx, path.slice(path.lastIndexOf('/') + 1));
}

