// Where a 401's challenge goes. The web UI marks its requests with `X-Berth-UI: 1`; its 401s
// then carry the challenge as `X-Berth-Authenticate` instead of `WWW-Authenticate`, so the
// browser shows the UI's own login form rather than its native Basic dialog (which would also
// keep the credentials for the origin and resend them by itself). Other clients get the
// challenge unchanged.
import type { IncomingMessage } from 'node:http';

export function challengeHeader(req: IncomingMessage, header = 'WWW-Authenticate'): string {
  return header.toLowerCase() === 'www-authenticate' && req.headers['x-berth-ui'] === '1' ? 'X-Berth-Authenticate' : header;
}
