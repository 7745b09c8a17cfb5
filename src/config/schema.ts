// The configuration schema: registry:2's config.yml keys, each with its type and default.
// Every key registry:2 knows is here, in one of three ways (docs/configuration.md has the table):
//  - acted on: typed, with its default;
//  - ignored: accepted with a warning, because ignoring it changes nothing a client can observe;
//  - refused: stops startup, naming the key and what to use instead, because ignoring it would
//    weaken security or change what clients get (some keys only for the values that would).
// Keys nobody knows stop startup with the path and the keys allowed there.
import { MAX_PAGE } from '../http/pagination.js';
import { S3_FIELDS } from './s3.js';
import { DATABASE_FIELDS } from './database.js';

/** Why a key stops startup: `when` (absent: whenever it is set) sees the value and the whole tree. */
export interface Refusal {
  why: string;
  instead: string;
  when?: (value: unknown, root: Record<string, unknown>) => boolean;
}

export type Spec =
  | { kind: 'object'; fields: Record<string, Spec> }
  | { kind: 'string'; default?: string; oneOf?: readonly string[] }
  | { kind: 'bool'; default?: boolean }
  | { kind: 'int'; default?: number; min?: number }
  | { kind: 'duration'; default?: string }
  | { kind: 'map' }
  | { kind: 'list'; item: Spec }
  | { kind: 'ignored'; why: string; refuse?: Refusal };

const obj = (fields: Record<string, Spec>): Spec => ({ kind: 'object', fields });
const str = (defaultValue?: string, oneOf?: readonly string[]): Spec => ({ kind: 'string', default: defaultValue, oneOf });
const bool = (defaultValue?: boolean): Spec => ({ kind: 'bool', default: defaultValue });
const int = (defaultValue?: number, min?: number): Spec => ({ kind: 'int', default: defaultValue, min });
const duration = (defaultValue?: string): Spec => ({ kind: 'duration', default: defaultValue });
const map: Spec = { kind: 'map' };
/** Accepted and not acted on, with a warning: ignoring it changes nothing a client can observe. */
const ignored = (why: string): Spec => ({ kind: 'ignored', why });
/** Stops startup whenever it is set (by default an empty value is ignored). */
const refused = (why: string, instead: string, when: NonNullable<Refusal['when']> = isSet): Spec =>
  ({ kind: 'ignored', why: 'it is empty', refuse: { why, instead, when } });
/** Stops startup for the values `when` picks; other values are ignored with a warning saying `harmless`. */
const refusedWhen = (when: NonNullable<Refusal['when']>, why: string, instead: string, harmless: string): Spec =>
  ({ kind: 'ignored', why: harmless, refuse: { why, instead, when } });

export function isSet(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.values(value).some(isSet);
  return true;
}
const isTrue = (value: unknown): boolean => value === true || value === 'true';
const field = (value: unknown, key: string): unknown =>
  typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;

/** registry:2's token signing algorithms, all accepted by default; Berth accepts those that fit the key. */
export const TOKEN_ALGORITHMS = ['EdDSA', 'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512',
  'PS256', 'PS384', 'PS512'] as const;
const listsEveryAlgorithm = (value: unknown): boolean => {
  const listed = Array.isArray(value) ? value.map(String) : typeof value === 'string' ? value.split(',').map((v) => v.trim()) : [];
  return TOKEN_ALGORITHMS.every((alg) => listed.includes(alg));
};
/** Whether any middleware entry (registry, repository or storage) is not disabled. */
const activeMiddleware = (value: unknown): boolean => typeof value === 'object' && value !== null &&
  Object.values(value).some((entries) => (Array.isArray(entries) ? entries : [entries])
    .some((entry) => isSet(entry) && !isTrue(field(entry, 'disabled'))));

/** Berth's own keys of an upstream: tag freshness, credentials from the environment, and limits toward it. */
function upstreamFields(): Record<string, Spec> {
  return {
    tagttl: duration(), timeout: duration(), maxconcurrent: int(undefined, 1), maxrps: int(undefined, 1),
  };
}

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;

export const SCHEMA: Spec = obj({
  version: str('0.1', ['0.1']),
  loglevel: str(undefined, LOG_LEVELS), // deprecated in registry:2: log.level, when that is not set
  log: obj({
    level: str('info', LOG_LEVELS),
    formatter: str(undefined, ['text', 'json', 'logstash']),
    fields: map,
    accesslog: obj({ disabled: bool(false) }),
    hooks: ignored('log hooks (mail on errors) are not supported: alert from your log collector'),
    reportcaller: ignored('log lines do not name the calling function'),
  }),
  storage: obj({
    filesystem: obj({ rootdirectory: str(), maxthreads: ignored('Berth does not bound filesystem calls with a thread pool') }),
    inmemory: map,
    s3: obj(S3_FIELDS),
    delete: obj({ enabled: bool(false) }),
    maintenance: obj({
      uploadpurging: obj({ enabled: bool(true), age: duration('168h'), interval: duration('24h'), dryrun: bool(false) }),
      readonly: obj({ enabled: bool(false) }),
      // Berth's own: garbage collection inside the serving registry
      gc: obj({ enabled: bool(false), interval: duration('24h'), grace: duration('1h'), deleteuntagged: bool(false), dryrun: bool(false) }),
    }),
    cache: ignored('Berth keeps its own in-memory caches; blobdescriptor inmemory or redis only changes speed'),
    // downloads from S3 go to presigned URLs unless disabled; the filesystem always serves bytes itself
    redirect: obj({ disable: bool(false) }),
    tag: ignored('tag lookup concurrency is managed by Berth'),
  }),
  http: obj({
    addr: str('0.0.0.0:5000'),
    net: str('tcp', ['tcp', 'unix']),
    prefix: str(''),
    host: str(''),
    secret: str(''),
    relativeurls: bool(false),
    draintimeout: duration('10s'),
    headers: map,
    http2: obj({
      disabled: refusedWhen((v, root) => isTrue(v) && isSet(field(field(root.http, 'tls'), 'certificate')),
        'Berth always offers HTTP/2 over TLS (clients choose h2 or http/1.1 through ALPN)',
        'remove it, or terminate TLS at a proxy that speaks only HTTP/1.1 to clients',
        'HTTP/2 is offered with TLS only, and clients choose it through ALPN'),
    }),
    h2c: obj({
      enabled: refusedWhen(isTrue, 'Berth does not speak cleartext HTTP/2 (h2c): a load balancer sending h2c would get errors',
        'remove it and have the load balancer speak HTTP/1.1 to Berth, or serve TLS (HTTP/2 through ALPN)',
        'h2c is off, as in Berth'),
    }),
    tls: obj({
      certificate: str(),
      key: str(),
      clientcas: { kind: 'list', item: { kind: 'string' } },
      clientauth: str('require-and-verify-client-cert', ['request-client-cert', 'require-any-client-cert',
        'verify-client-cert-if-given', 'require-and-verify-client-cert']),
      minimumtls: str('tls1.2', ['tls1.0', 'tls1.1', 'tls1.2', 'tls1.3']),
      ciphersuites: refused('Berth cannot restrict cipher suites: it would accept every suite of Node.js\'s default list, also those this list leaves out',
        'remove http.tls.ciphersuites (Node.js prefers TLS 1.3 and ECDHE with AES-GCM or ChaCha20), or set http.tls.minimumtls: tls1.3 to allow only TLS 1.3\'s AEAD suites'),
      letsencrypt: refused('Berth does not get certificates through ACME (Let\'s Encrypt): it would serve plain HTTP',
        'remove http.tls.letsencrypt and set http.tls.certificate and http.tls.key (e.g. the files certbot writes), or terminate TLS at a proxy'),
    }),
    // Berth's limits against slow and flooding clients (registry:2 has no such keys)
    timeouts: obj({ headers: duration('60s'), idle: duration('60s') }),
    // processes serving one listener (0: one per CPU core); see docs/operations.md
    workers: int(1, 0),
    limits: obj({ uploads: int(256, 1), passwordworkers: int(undefined, 1), passwordqueue: int(64, 1) }),
    debug: obj({
      addr: str(''),
      prometheus: obj({ enabled: bool(true), path: str('/metrics') }),
      tls: refused('the debug listener serves plain HTTP only: metrics and health would travel unencrypted',
        'remove http.debug.tls and keep http.debug.addr on a loopback or private address (e.g. 127.0.0.1:5001), or put a TLS proxy in front of it'),
    }),
  }),
  validation: obj({
    enabled: ignored('Berth checks every pushed manifest; the URLs of foreign layers are accepted as pushed'),
    disabled: ignored('Berth checks every pushed manifest; the URLs of foreign layers are accepted as pushed'),
    manifests: obj({
      urls: obj({
        allow: refused('Berth does not check the URLs of foreign layers: it would accept manifests whose foreign layers point anywhere',
          'remove validation.manifests.urls, and leave pushing to trusted users with access.rules'),
        deny: refused('Berth does not check the URLs of foreign layers: it would accept manifests whose foreign layers point anywhere',
          'remove validation.manifests.urls, and leave pushing to trusted users with access.rules'),
      }),
      indexes: obj({
        platforms: refusedWhen((v) => String(v).toLowerCase() !== 'all',
          'Berth accepts an image index only when every manifest it lists is in the repository: pushes of partial indexes would fail',
          'remove validation.manifests.indexes (or set platforms: all) and push every platform an index lists',
          'every manifest an index lists must be present, as with platforms: all'),
        platformlist: ignored('used only with platforms: list'),
      }),
    }),
  }),
  auth: obj({
    htpasswd: obj({ realm: str('basic-realm'), path: str() }),
    token: obj({
      realm: str(), service: str(), issuer: str(), rootcertbundle: str(), jwks: str(),
      autoredirect: refusedWhen(isTrue,
        'Berth does not derive a third-party token realm from the request\'s Host: clients would be sent to auth.token.realm',
        'set auth.token.realm to the URL clients reach the token server at, or enable tokenserver on this listener (its realm follows the request)',
        'the realm is auth.token.realm, as with autoredirect: false'),
      autoredirectpath: ignored('used only with autoredirect'),
      signingalgorithms: refusedWhen((v) => isSet(v) && !listsEveryAlgorithm(v),
        `Berth cannot restrict token signing algorithms: it accepts every one of ${TOKEN_ALGORITHMS.join(', ')} that fits the key, also those this list leaves out`,
        'remove auth.token.signingalgorithms, and trust only the keys you mean to in rootcertbundle or jwks',
        'it lists every algorithm registry:2 accepts (or none: its default list); Berth accepts those that fit the key'),
    }),
    silly: refused('Berth has no silly authenticator (it lets in any Authorization header): the registry would be open to everyone',
      'use auth.htpasswd (users from an htpasswd -B file), auth.token, or tokenserver', () => true),
    none: map, // registry:3's explicit "no authentication", Berth's default
  }),
  tokenserver: obj({
    enabled: bool(false),
    addr: str(''),
    path: str('/auth/token'),
    issuer: str('berth-token-server'),
    service: str(''),
    key: str(''),
    expiration: duration('5m'),
    htpasswd: str(''),
  }),
  access: obj({
    groups: map,
    rules: { kind: 'list', item: { kind: 'map' } },
  }),
  notifications: obj({
    events: obj({
      includereferences: refusedWhen(isTrue, 'Berth\'s events do not list a manifest\'s references: receivers would miss them',
        'remove notifications.events.includereferences; receivers can fetch the manifest by target.digest',
        'events carry no references, as with includereferences: false'),
    }),
    endpoints: { kind: 'list', item: obj({
      name: str(),
      disabled: bool(false),
      url: str(),
      headers: map,
      timeout: duration('1s'),
      threshold: int(10, 1),
      backoff: duration('1s'),
      ignoredmediatypes: { kind: 'list', item: { kind: 'string' } },
      maxevents: int(10_000, 1), // spool bound (Berth only): events kept for an endpoint that does not answer
      maxage: duration('24h'),
      ignore: obj({ mediatypes: { kind: 'list', item: { kind: 'string' } }, actions: { kind: 'list', item: { kind: 'string' } } }),
    }) },
  }),
  health: obj({
    storagedriver: obj({ enabled: bool(true), interval: duration('10s'), threshold: int(3, 1) }),
    file: refused('Berth\'s health checks (/debug/health, /readyz) cover storage only: it would report healthy while the file exists',
      'remove health.file and take the registry out of rotation at the load balancer or orchestrator'),
    http: refused('Berth\'s health checks (/debug/health, /readyz) cover storage only: it would report healthy while the URL fails',
      'remove health.http and have the load balancer or orchestrator check that URL'),
    tcp: refused('Berth\'s health checks (/debug/health, /readyz) cover storage only: it would report healthy while the address is down',
      'remove health.tcp and have the load balancer or orchestrator check that address'),
  }),
  middleware: refusedWhen(activeMiddleware,
    'Berth has no middleware: cloudfront and redirect would no longer send blob downloads elsewhere, and registry or repository middleware would not run',
    'remove the middleware section (or set disabled: true on each entry); Berth serves every blob itself, so put a CDN or proxy in front of it if you need one',
    'every middleware entry is disabled'),
  reporting: ignored('error reporting to Bugsnag or New Relic is not supported: errors are in the logs'),
  redis: ignored('Berth uses no Redis: its caches are in memory'),
  // registry:2's pull-through cache (remoteurl, username, password, ttl), plus Berth's upstreams by prefix
  proxy: obj({
    remoteurl: str(''),
    username: str(''),
    password: str(''),
    ttl: duration('168h'),
    exec: refused('Berth does not run credential helpers for the upstream',
      'remove proxy.exec and set proxy.username and proxy.password (or REGISTRY_PROXY_USERNAME and REGISTRY_PROXY_PASSWORD)'),
    ...upstreamFields(),
    upstreams: { kind: 'list', item: obj({ prefix: str(''), remoteurl: str(''), username: str(''), password: str(''),
      usernameenv: str(''), passwordenv: str(''), ttl: duration(), ...upstreamFields() }) },
  }),
  compatibility: obj({
    schema1: obj({
      enabled: refusedWhen(isTrue, 'Berth refuses schema1 manifest pushes (and never converts manifests to schema1)',
        'remove compatibility.schema1.enabled and push schema2 or OCI manifests (docker 1.10 and later, podman, buildah and skopeo do)',
        'schema1 pushes are refused, as with enabled: false'),
      signingkeyfile: ignored('Berth never signs or converts manifests to schema1'),
    }),
  }),
  // GitLab container registry's metadata database (PostgreSQL); see database.ts
  database: obj(DATABASE_FIELDS),
  // Berth's own: the web UI served at / to browsers
  ui: obj({ enabled: bool(true) }),
  catalog: obj({
    maxentries: refused(`Berth does not cap catalog pages at a configured size: it answers up to ${MAX_PAGE} entries per request (n), and every entry without n`,
      'remove catalog.maxentries; the catalog lists only what the caller may pull (access.rules)'),
  }),
  tags: obj({
    maxtags: refused(`Berth does not cap tag list pages at a configured size: it answers up to ${MAX_PAGE} tags per request (n), and every tag without n`,
      'remove tags.maxtags'),
  }),
  // Berth's own: retention, tag immutability and quotas (rules are checked by src/policy/config.ts)
  policies: obj({ interval: str('1h'), dryrun: bool(false), rules: { kind: 'list', item: map } }),
  policy: obj({
    repository: obj({
      classes: refused('Berth does not restrict pushes by manifest class (image, plugin): it would accept manifests this list forbids',
        'remove policy.repository.classes and decide who may push where with access.rules'),
    }),
  }),
});
