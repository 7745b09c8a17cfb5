// The embedded token server (Docker token specification): authenticates users against an
// htpasswd file and issues JWTs granting the intersection of the scopes asked for and what the
// access policy allows. Answers GET (docker, podman) and the OAuth2 password grant (POST).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { parseScope, type AccessPolicy, type Identity, type Scope } from './access.js';
import { basicCredentials, checkPassword } from './authenticator.js';
import { challengeHeader } from './challenge.js';
import type { FailureThrottle, HtpasswdFile } from './htpasswd.js';
import type { TokenSigner } from './token.js';
import { RegistryError } from '../registry/errors.js';

export class TokenServer {
  constructor(private readonly signer: TokenSigner, private readonly users: HtpasswdFile, private readonly policy: AccessPolicy,
              private readonly service: string, private readonly throttle: FailureThrottle, private readonly log: Logger) {}

  async handle(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    let params = query;
    if (req.method === 'POST') {
      let body = '';
      for await (const chunk of req as AsyncIterable<Buffer>) {
        body += chunk.toString('utf8');
        if (body.length > 64 * 1024) return reply(res, 400, { error: 'invalid_request', error_description: 'request too large' });
      }
      params = new URLSearchParams(body);
    } else if (req.method !== 'GET') {
      return reply(res, 405, { error: 'invalid_request', error_description: 'use GET or POST' });
    }
    const service = params.get('service');
    if (service && service !== this.service) {
      return reply(res, 400, { error: 'invalid_request', error_description: `unknown service ${service}; this server issues tokens for ${this.service}` });
    }
    let identity: Identity = {};
    const credentials = req.method === 'POST' && params.get('grant_type') === 'password'
      ? { user: params.get('username') ?? '', password: params.get('password') ?? '' }
      : basicCredentials(req);
    if (credentials === null) return this.unauthorized(res, 'malformed Authorization header');
    if (credentials) {
      let ok: boolean;
      try {
        ok = await checkPassword(this.users, this.throttle, req, credentials.user, credentials.password);
      } catch (err) {
        if (!(err instanceof RegistryError) || err.code !== 'UNAVAILABLE') throw err;
        res.setHeader('Retry-After', err.headers['Retry-After'] ?? '1');
        return reply(res, 503, { error: 'temporarily_unavailable', error_description: err.message,
          errors: [{ code: err.code, message: err.message, detail: {} }] });
      }
      if (!ok) {
        this.log.info({ user: credentials.user, remote: req.socket.remoteAddress }, 'token request with a wrong password');
        return this.unauthorized(res, 'invalid username or password');
      }
      identity = { user: credentials.user };
    }
    const granted: Scope[] = [];
    for (const text of params.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean)) {
      const scope = parseScope(text);
      if (!scope) continue;
      const actions = this.policy.grant(identity, scope);
      if (actions.length > 0) granted.push({ ...scope, actions });
    }
    const { token, expiresIn, issuedAt } = await this.signer.sign(identity.user, granted);
    reply(res, 200, { token, access_token: token, expires_in: expiresIn, issued_at: issuedAt.toISOString() });
  }

  private unauthorized(res: ServerResponse, description: string): void {
    res.setHeader(challengeHeader(res.req), 'Basic realm="berth token server"');
    reply(res, 401, { error: 'invalid_grant', error_description: description,
      errors: [{ code: 'UNAUTHORIZED', message: description, detail: {} }] });
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': data.length, 'Cache-Control': 'no-store' });
  res.end(data);
}
