// Cross-site request forgery: a page on another site must not make a browser change the
// registry. Berth takes credentials only from the Authorization header (it sets no cookies), but
// a browser that once answered the registry's Basic dialog resends those credentials by itself,
// also on a form another site submits. So a state-changing request that a browser sent (it
// carries Origin or Sec-Fetch-Site; registry clients send neither) must come from this origin
// and carry the UI's X-Berth-UI header or a JSON body type -- neither of which a cross-site form
// can send, and a cross-site script can only send after a CORS preflight that Berth never grants.
import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../registry/errors.js';

function first(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return (Array.isArray(value) ? value[0] : value)?.split(',')[0]?.trim() || undefined;
}

function hostOf(url: string): string | undefined {
  try {
    return url ? new URL(url).host : undefined;
  } catch {
    return undefined;
  }
}

function refuse(why: string): RegistryError {
  return new RegistryError('DENIED', `${why}: a browser may change the registry only from Berth's own web UI`);
}

/** Throws 403 DENIED for a state-changing request a browser sent from another site; `externalUrl` is http.host. */
export function checkCrossSite(req: IncomingMessage, externalUrl = ''): void {
  const origin = first(req, 'origin');
  const site = first(req, 'sec-fetch-site');
  if (!origin && !site) return; // not a browser: docker, podman, skopeo, curl, ...
  if (site && site !== 'same-origin' && site !== 'none') throw refuse(`the request came from another site (Sec-Fetch-Site: ${site})`);
  if (origin) {
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      throw refuse(`the request came from an opaque origin (Origin: ${origin.slice(0, 100)})`);
    }
    const served = [first(req, 'x-forwarded-host'), req.headers.host, hostOf(externalUrl)];
    if (!served.includes(host)) throw refuse(`the request came from ${origin.slice(0, 100)}, not from this registry`);
  }
  const type = first(req, 'content-type')?.split(';')[0]?.trim().toLowerCase();
  if (req.headers['x-berth-ui'] !== '1' && type !== 'application/json') {
    throw refuse('the request has neither the X-Berth-UI header nor a JSON body');
  }
}
