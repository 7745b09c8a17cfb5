// The on-disk layout, byte for byte the one distribution (registry:2) uses, so that a data
// directory can move between Berth and the reference in both directions:
//
// <root>/docker/registry/v2/
// ├── blobs/<alg>/<hex[0:2]>/<hex>/data                      content, shared by all repositories
// └── repositories/<name>/
//     ├── _layers/<alg>/<hex>/link                          blob linked into the repository
//     ├── _manifests/revisions/<alg>/<hex>/link              manifest present in the repository
//     ├── _manifests/revisions/<alg>/<hex>/mediatype         the media type it was pushed with (Berth's)
//     ├── _manifests/tags/<tag>/current/link                 what the tag points at now
//     ├── _manifests/tags/<tag>/index/<alg>/<hex>/link       every digest the tag pointed at
//     ├── _uploads/<uuid>/{data,startedat}                   uploads in progress
//     └── _referrers/<alg>/<subject hex>/<alg>/<hex>/link    Berth's referrers index
//
// Every storage path is built here from already validated names, tags and digests.
import type { Digest } from './names.js';

const ROOT = '/docker/registry/v2';

export const paths = {
  blobsRoot: () => `${ROOT}/blobs`,
  blobData: (d: Digest) => `${ROOT}/blobs/${d.algorithm}/${d.hex.slice(0, 2)}/${d.hex}/data`,
  blobDir: (d: Digest) => `${ROOT}/blobs/${d.algorithm}/${d.hex.slice(0, 2)}/${d.hex}`,
  repositoriesRoot: () => `${ROOT}/repositories`,
  repository: (name: string) => `${ROOT}/repositories/${name}`,
  layerLink: (name: string, d: Digest) => `${ROOT}/repositories/${name}/_layers/${d.algorithm}/${d.hex}/link`,
  layersRoot: (name: string) => `${ROOT}/repositories/${name}/_layers`,
  manifestsRoot: (name: string) => `${ROOT}/repositories/${name}/_manifests`,
  revisionsRoot: (name: string) => `${ROOT}/repositories/${name}/_manifests/revisions`,
  revisionLink: (name: string, d: Digest) =>
    `${ROOT}/repositories/${name}/_manifests/revisions/${d.algorithm}/${d.hex}/link`,
  /** Berth's record of the media type a revision was pushed with (registry:2 reads only `link`). */
  revisionMediaType: (name: string, d: Digest) =>
    `${ROOT}/repositories/${name}/_manifests/revisions/${d.algorithm}/${d.hex}/mediatype`,
  revisionDir: (name: string, d: Digest) =>
    `${ROOT}/repositories/${name}/_manifests/revisions/${d.algorithm}/${d.hex}`,
  tagsRoot: (name: string) => `${ROOT}/repositories/${name}/_manifests/tags`,
  tagDir: (name: string, tag: string) => `${ROOT}/repositories/${name}/_manifests/tags/${tag}`,
  tagCurrentLink: (name: string, tag: string) => `${ROOT}/repositories/${name}/_manifests/tags/${tag}/current/link`,
  /** Berth's mark on a tag a pull-through cache wrote (only those expire); registry:2 ignores it. */
  tagCachedMark: (name: string, tag: string) => `${ROOT}/repositories/${name}/_manifests/tags/${tag}/cached`,
  tagIndexLink: (name: string, tag: string, d: Digest) =>
    `${ROOT}/repositories/${name}/_manifests/tags/${tag}/index/${d.algorithm}/${d.hex}/link`,
  uploadsRoot: (name: string) => `${ROOT}/repositories/${name}/_uploads`,
  uploadDir: (name: string, id: string) => `${ROOT}/repositories/${name}/_uploads/${id}`,
  uploadData: (name: string, id: string) => `${ROOT}/repositories/${name}/_uploads/${id}/data`,
  uploadStartedAt: (name: string, id: string) => `${ROOT}/repositories/${name}/_uploads/${id}/startedat`,
  referrersRoot: (name: string) => `${ROOT}/repositories/${name}/_referrers`,
  referrersDir: (name: string, subject: Digest) =>
    `${ROOT}/repositories/${name}/_referrers/${subject.algorithm}/${subject.hex}`,
  referrerLink: (name: string, subject: Digest, d: Digest) =>
    `${ROOT}/repositories/${name}/_referrers/${subject.algorithm}/${subject.hex}/${d.algorithm}/${d.hex}/link`,
};
