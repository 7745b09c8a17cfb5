// The API as data: every route, the methods it answers and what each method may change.
// The server matches paths against this table; nothing else knows the URL shapes.
import type { Handler } from './context.js';
import { deleteBlob, getBlob } from './handlers/blobs.js';
import { base, catalog, referrers, tagsList } from './handlers/discovery.js';
import { deleteManifest, getManifest, putManifest } from './handlers/manifests.js';
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus } from './handlers/uploads.js';

/** `read` serves content; `write` is refused in read-only mode; `delete` also needs deletes enabled. */
export type Effect = 'read' | 'write' | 'delete';

export interface Method {
  handler: Handler;
  effect: Effect;
}

export interface Route {
  name: string;
  /** Matched against the path below the prefix; group 1 is the repository name, group 2 the parameter. */
  pattern: RegExp;
  methods: Partial<Record<string, Method>>;
}

const NAME = '(.+?)';
const read = (handler: Handler): Method => ({ handler, effect: 'read' });
const write = (handler: Handler): Method => ({ handler, effect: 'write' });
const remove = (handler: Handler): Method => ({ handler, effect: 'delete' });

export const ROUTES: Route[] = [
  { name: 'base', pattern: /^\/v2\/?$/, methods: { GET: read(base), HEAD: read(base) } },
  { name: 'catalog', pattern: /^\/v2\/_catalog$/, methods: { GET: read(catalog), HEAD: read(catalog) } },
  { name: 'tags', pattern: new RegExp(`^/v2/${NAME}/tags/list$`), methods: { GET: read(tagsList), HEAD: read(tagsList) } },
  {
    name: 'manifest',
    pattern: new RegExp(`^/v2/${NAME}/manifests/([^/]+)$`),
    methods: { GET: read(getManifest), HEAD: read(getManifest), PUT: write(putManifest), DELETE: remove(deleteManifest) },
  },
  { name: 'uploads', pattern: new RegExp(`^/v2/${NAME}/blobs/uploads/?$`), methods: { POST: write(startUpload) } },
  {
    name: 'upload',
    pattern: new RegExp(`^/v2/${NAME}/blobs/uploads/([^/]+)$`),
    methods: { GET: read(uploadStatus), PATCH: write(patchUpload), PUT: write(finishUpload), DELETE: write(cancelUpload) },
  },
  {
    name: 'blob',
    pattern: new RegExp(`^/v2/${NAME}/blobs/([^/]+)$`),
    methods: { GET: read(getBlob), HEAD: read(getBlob), DELETE: remove(deleteBlob) },
  },
  { name: 'referrers', pattern: new RegExp(`^/v2/${NAME}/referrers/([^/]+)$`), methods: { GET: read(referrers) } },
];
