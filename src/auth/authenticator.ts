// Authentication and authorization of one request: who is calling (anonymous, htpasswd user,
// bearer token) and whether they hold the scopes the route needs. Failures are RegistryErrors
// carrying the WWW-Authenticate challenge the Docker clients expect.
import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../registry/errors.js';
import { formatScope, type AccessPolicy, type Action, type Identity, type Scope } from './access.js';
import type { FailureThrottle, HtpasswdFile } from './htpasswd.js';
import { PasswordChecksBusy } from './password-pool.js';
import { TokenError, type TokenVerifier } from './token.js';

export interface RequestAuth {
  identity: Identity;
  /** Whether the caller may do `action` on `repository`. */
  can(repository: string, action: Action): boolean;
  /** Whether the catalog shows `repository` to the caller. */
  canList(repository: string): boolean;
  /** Whether the caller may read every repository (mounting by digest alone needs it). */
  readonly unrestricted: boolean;
  /** Whether the caller may do `action` on every repository, present and future (registry-wide operations). */
  canEverywhere(action: Action): boolean;
}

export interface Authenticator {
  /** `base` is the request's external base URL, for a token realm served on this listener. */
  authenticate(req: IncomingMessage, required: Scope[], base: string): Promise<RequestAuth>;
}

export const OPEN_ACCESS: Authenticator = {
  authenticate: async () => ({ identity: {}, can: () => true, canList: () => true, unrestricted: true, canEverywhere: () => true }),
};

export function basicCredentials(req: IncomingMessage): { user: string; password: string } | undefined | null {
  const header = req.headers.authorization;
  if (!header?.toLowerCase().startsWith('basic ')) return header ? null : undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? null : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function wait(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

/**
 * Checks a username and password. Credentials that passed a moment ago are let through at once;
 * other attempts wait as the throttle says, then take their turn on the password-check workers.
 * When too many checks are waiting: 503 UNAVAILABLE with Retry-After (the attempt is not counted).
 */
export async function checkPassword(users: HtpasswdFile, throttle: FailureThrottle, req: IncomingMessage,
                                    user: string, password: string): Promise<boolean> {
  if (users.recentlyVerified(user, password)) return true;
  const attempt = throttle.begin(user, req.socket.remoteAddress ?? 'unknown');
  await wait(attempt.delayMs);
  let ok: boolean;
  try {
    ok = await users.verify(user, password);
  } catch (err) {
    attempt.cancel();
    if (err instanceof PasswordChecksBusy) {
      throw new RegistryError('UNAVAILABLE', 'too many password checks are waiting; retry in a moment')
        .withHeaders({ 'Retry-After': '1' });
    }
    throw err;
  }
  attempt.settle(ok);
  return ok;
}

export class BasicAuthenticator implements Authenticator {
  constructor(private readonly users: HtpasswdFile, private readonly policy: AccessPolicy,
              private readonly realm: string, private readonly throttle: FailureThrottle) {}

  async authenticate(req: IncomingMessage, required: Scope[]): Promise<RequestAuth> {
    const challenge = { 'WWW-Authenticate': `Basic realm="${this.realm}"` };
    const credentials = basicCredentials(req);
    if (credentials === null) throw new RegistryError('UNAUTHORIZED', 'malformed Authorization header; send Basic credentials').withHeaders(challenge);
    let identity: Identity = {};
    if (credentials) {
      if (!(await checkPassword(this.users, this.throttle, req, credentials.user, credentials.password))) {
        throw new RegistryError('UNAUTHORIZED', 'invalid username or password', { user: credentials.user }).withHeaders(challenge);
      }
      identity = { user: credentials.user };
    }
    const auth = policyAuth(this.policy, identity);
    if (!identity.user && required.length === 0 && !this.policy.allowsAnonymous) {
      throw new RegistryError('UNAUTHORIZED', 'authentication required; log in with docker login').withHeaders(challenge);
    }
    for (const scope of required) {
      const granted = this.policy.grant(identity, scope);
      const missing = scope.actions.filter((a) => !granted.includes(a));
      if (missing.length === 0) continue;
      if (!identity.user) {
        throw new RegistryError('UNAUTHORIZED', 'authentication required; log in with docker login', scopeDetail(scope)).withHeaders(challenge);
      }
      throw new RegistryError('DENIED', `${identity.user} may not ${missing.join(', ')} ${scope.name}`, scopeDetail(scope));
    }
    return auth;
  }
}

function policyAuth(policy: AccessPolicy, identity: Identity): RequestAuth {
  return {
    identity,
    can: (repository, action) => policy.allowed(identity, repository).has(action),
    canList: (repository) => policy.allowed(identity, repository).has('pull'),
    unrestricted: !policy.hasRules && !!identity.user,
    canEverywhere: (action) => policy.allowedEverywhere(identity).has(action),
  };
}

function scopeDetail(scope: Scope): Record<string, unknown> {
  return { type: scope.type, name: scope.name, actions: scope.actions };
}

export class TokenAuthenticator implements Authenticator {
  constructor(private readonly verifier: TokenVerifier, private readonly policy: AccessPolicy,
              private readonly realm: string | undefined, private readonly realmPath: string, private readonly service: string) {}

  async authenticate(req: IncomingMessage, required: Scope[], base: string): Promise<RequestAuth> {
    const realm = this.realm ?? `${base}${this.realmPath}`;
    const challenge = (error?: string) => ({
      'WWW-Authenticate': `Bearer realm="${realm}",service="${this.service}"` +
        (required.length ? `,scope="${required.map(formatScope).join(' ')}"` : '') + (error ? `,error="${error}"` : ''),
    });
    const header = req.headers.authorization;
    if (!header?.toLowerCase().startsWith('bearer ')) {
      throw new RegistryError('UNAUTHORIZED', 'authentication required; get a token from the realm').withHeaders(challenge());
    }
    let token;
    try {
      token = await this.verifier.verify(header.slice(7).trim());
    } catch (err) {
      const message = err instanceof TokenError ? err.message : 'token is not valid';
      throw new RegistryError('UNAUTHORIZED', message).withHeaders(challenge('invalid_token'));
    }
    const held = (type: string, name: string) => new Set(token.access.filter((a) => a.type === type && a.name === name).flatMap((a) => a.actions));
    for (const scope of required) {
      const actions = held(scope.type, scope.name);
      const missing = scope.actions.filter((a) => !actions.has(a) && !actions.has('*'));
      if (missing.length > 0) {
        throw new RegistryError('UNAUTHORIZED', `token does not grant ${missing.join(', ')} on ${scope.name}`, scopeDetail(scope))
          .withHeaders(challenge('insufficient_scope'));
      }
    }
    const identity = { user: token.subject };
    const catalog = held('registry', 'catalog');
    return {
      identity,
      can: (repository, action) => held('repository', repository).has(action) || held('repository', repository).has('*'),
      // the token server decided who may list; the local policy, when there is one, narrows the list
      canList: (repository) => (catalog.has('*') || catalog.has('pull')) &&
        (!this.policy.hasRules || this.policy.allowed(identity, repository).has('pull')),
      unrestricted: false,
      // a token names repositories one by one: registry-wide rights come only from local rules for `**`
      canEverywhere: (action) => this.policy.hasRules && this.policy.allowedEverywhere(identity).has(action),
    };
  }
}
