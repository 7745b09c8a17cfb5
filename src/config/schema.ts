// The configuration schema: registry:2's config.yml keys, each with its type and default.
// Keys registry:2 knows but Berth does not act on are accepted (with a warning) so that an
// existing config file starts; keys nobody knows stop startup with the path and the fix.

export type Spec =
  | { kind: 'object'; fields: Record<string, Spec> }
  | { kind: 'string'; default?: string; oneOf?: readonly string[] }
  | { kind: 'bool'; default?: boolean }
  | { kind: 'int'; default?: number; min?: number }
  | { kind: 'duration'; default?: string }
  | { kind: 'map' }
  | { kind: 'list'; item: Spec }
  | { kind: 'ignored'; why: string };

const obj = (fields: Record<string, Spec>): Spec => ({ kind: 'object', fields });
const str = (defaultValue?: string, oneOf?: readonly string[]): Spec => ({ kind: 'string', default: defaultValue, oneOf });
const bool = (defaultValue?: boolean): Spec => ({ kind: 'bool', default: defaultValue });
const int = (defaultValue?: number, min?: number): Spec => ({ kind: 'int', default: defaultValue, min });
const duration = (defaultValue?: string): Spec => ({ kind: 'duration', default: defaultValue });
const map: Spec = { kind: 'map' };
const ignored = (why: string): Spec => ({ kind: 'ignored', why });

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;

export const SCHEMA: Spec = obj({
  version: str('0.1', ['0.1']),
  loglevel: ignored('deprecated in registry:2; use log.level'),
  log: obj({
    level: str('info', LOG_LEVELS),
    formatter: str(undefined, ['text', 'json', 'logstash']),
    fields: map,
    accesslog: obj({ disabled: bool(false) }),
    hooks: ignored('log hooks (mail alerts) are not supported'),
    reportcaller: bool(false),
  }),
  storage: obj({
    filesystem: obj({ rootdirectory: str(), maxthreads: int(100, 25) }),
    inmemory: map,
    delete: obj({ enabled: bool(false) }),
    maintenance: obj({
      uploadpurging: obj({ enabled: bool(true), age: duration('168h'), interval: duration('24h'), dryrun: bool(false) }),
      readonly: obj({ enabled: bool(false) }),
    }),
    cache: ignored('Berth keeps its own small in-memory caches'),
    redirect: ignored('the filesystem driver serves blobs directly'),
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
    http2: ignored('HTTP/2 is available with TLS'),
    h2c: ignored('cleartext HTTP/2 is not supported'),
    tls: obj({
      certificate: str(),
      key: str(),
      clientcas: { kind: 'list', item: { kind: 'string' } },
      clientauth: str('require-and-verify-client-cert', ['request-client-cert', 'require-any-client-cert',
        'verify-client-cert-if-given', 'require-and-verify-client-cert']),
      minimumtls: str('tls1.2', ['tls1.0', 'tls1.1', 'tls1.2', 'tls1.3']),
      ciphersuites: ignored('Node.js chooses secure cipher suites'),
      letsencrypt: ignored('ACME certificates are not supported; give certificate and key'),
    }),
    // Berth's limits against slow and flooding clients (registry:2 has no such keys)
    timeouts: obj({ headers: duration('60s'), idle: duration('60s') }),
    limits: obj({ uploads: int(256, 1), passwordworkers: int(undefined, 1), passwordqueue: int(64, 1) }),
    debug: obj({
      addr: str(''),
      prometheus: obj({ enabled: bool(true), path: str('/metrics') }),
      tls: ignored('the debug listener serves plain HTTP; keep it on a private address'),
    }),
  }),
  validation: ignored('manifests are always validated; foreign layer URLs are accepted as pushed'),
  auth: obj({
    htpasswd: obj({ realm: str('basic-realm'), path: str() }),
    token: obj({
      realm: str(), service: str(), issuer: str(), rootcertbundle: str(), jwks: str(),
      autoredirect: bool(false), autoredirectpath: str('/auth/token'),
      signingalgorithms: ignored('signing algorithms are taken from the keys'),
    }),
    silly: ignored('the silly authenticator is for development only and is not supported'),
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
    events: obj({ includereferences: bool(false) }),
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
    file: ignored('file health checks are not supported'),
    http: ignored('HTTP health checks are not supported'),
    tcp: ignored('TCP health checks are not supported'),
  }),
  middleware: ignored('middleware is not supported'),
  reporting: ignored('error reporting services are not supported'),
  redis: ignored('Berth needs no Redis cache'),
  proxy: ignored('pull-through caching is not supported yet'),
  compatibility: ignored('schema1 manifests are not accepted'),
});
