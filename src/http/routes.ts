// The API as data: every route, the methods it answers and what each method may change.
// The server matches paths against this table; nothing else knows the URL shapes.
import type { Handler } from './context.js';
import { deleteBlob, getBlob } from './handlers/blobs.js';
import { base, catalog, referrers, tagsList } from './handlers/discovery.js';
import { deleteManifest, getManifest, putManifest } from './handlers/manifests.js';
import { deleteRepository, gcStatus, getRepository, listRepositories, startGc, uploadsStatus } from './handlers/management.js';
import { retentionStatus, startRetention } from './handlers/retention.js';
import { me, status } from './handlers/status.js';
import { uiAsset, uiPage } from './handlers/ui.js';
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus } from './handlers/uploads.js';

import type { Effect } from '../registry/content.js';

/** `read` serves content; `write` is refused in read-only mode; `delete` also needs deletes enabled. */
export type { Effect };

export interface Method {
  handler: Handler;
  effect: Effect;
}

export interface Route {
  name: string;
  /** What the route needs: none (only an identity), the catalog, actions on the named repository, or nothing at all (public). */
  resource: 'none' | 'catalog' | 'repository' | 'public';
  /** Matched against the path below the prefix; group 1 is the repository name, group 2 the parameter. */
  pattern: RegExp;
  methods: Partial<Record<string, Method>>;
}

const NAME = '(.+?)';

/** The token-specification actions each effect needs (uploads need pull too, as in registry:2). */
export const ACTIONS_FOR: Record<Effect, string[]> = { read: ['pull'], write: ['pull', 'push'], delete: ['delete'] };
const read = (handler: Handler): Method => ({ handler, effect: 'read' });
const write = (handler: Handler): Method => ({ handler, effect: 'write' });
const remove = (handler: Handler): Method => ({ handler, effect: 'delete' });

export const ROUTES: Route[] = [
  { name: 'base', resource: 'none', pattern: /^\/v2\/?$/, methods: { GET: read(base), HEAD: read(base) } },
  { name: 'catalog', resource: 'catalog', pattern: /^\/v2\/_catalog$/, methods: { GET: read(catalog), HEAD: read(catalog) } },
  { name: 'tags', resource: 'repository', pattern: new RegExp(`^/v2/${NAME}/tags/list$`), methods: { GET: read(tagsList), HEAD: read(tagsList) } },
  {
    name: 'manifest',
    resource: 'repository',
    pattern: new RegExp(`^/v2/${NAME}/manifests/([^/]+)$`),
    methods: { GET: read(getManifest), HEAD: read(getManifest), PUT: write(putManifest), DELETE: remove(deleteManifest) },
  },
  { name: 'uploads', resource: 'repository', pattern: new RegExp(`^/v2/${NAME}/blobs/uploads/?$`), methods: { POST: write(startUpload) } },
  {
    name: 'upload',
    resource: 'repository',
    pattern: new RegExp(`^/v2/${NAME}/blobs/uploads/([^/]+)$`),
    methods: { GET: read(uploadStatus), PATCH: write(patchUpload), PUT: write(finishUpload), DELETE: write(cancelUpload) },
  },
  {
    name: 'blob',
    resource: 'repository',
    pattern: new RegExp(`^/v2/${NAME}/blobs/([^/]+)$`),
    methods: { GET: read(getBlob), HEAD: read(getBlob), DELETE: remove(deleteBlob) },
  },
  { name: 'referrers', resource: 'repository', pattern: new RegExp(`^/v2/${NAME}/referrers/([^/]+)$`), methods: { GET: read(referrers) } },
  // the management API (/api/v1/), authorised like /v2/
  { name: 'api-repositories', resource: 'catalog', pattern: /^\/api\/v1\/repositories\/?$/, methods: { GET: read(listRepositories) } },
  {
    name: 'api-repository',
    resource: 'repository',
    pattern: /^\/api\/v1\/repositories\/(.+?)\/?$/,
    methods: { GET: read(getRepository), DELETE: remove(deleteRepository) },
  },
  { name: 'api-gc', resource: 'catalog', pattern: /^\/api\/v1\/gc$/, methods: { GET: read(gcStatus), POST: write(startGc) } },
  { name: 'api-retention', resource: 'catalog', pattern: /^\/api\/v1\/retention$/, methods: { GET: read(retentionStatus), POST: write(startRetention) } },
  { name: 'api-uploads', resource: 'catalog', pattern: /^\/api\/v1\/uploads$/, methods: { GET: read(uploadsStatus) } },
  { name: 'api-status', resource: 'catalog', pattern: /^\/api\/v1\/status$/, methods: { GET: read(status) } },
  { name: 'api-me', resource: 'none', pattern: /^\/api\/v1\/me$/, methods: { GET: read(me) } },
  // the web UI: its page for browsers at /, and its files
  { name: 'ui', resource: 'public', pattern: /^\/$/, methods: { GET: read(uiPage), HEAD: read(uiPage) } },
  { name: 'ui-asset', resource: 'public', pattern: /^\/ui\/[\w.-]+$/, methods: { GET: read(uiAsset), HEAD: read(uiAsset) } },
];
