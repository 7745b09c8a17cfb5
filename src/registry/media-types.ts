// Manifest formats: what each media type is, how to recognise it and what it references.
import { RegistryError } from './errors.js';
import { parseDigest, type Digest } from './names.js';

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
} as const;

const IMAGE_TYPES = new Set<string>([MEDIA.ociManifest, MEDIA.dockerManifest]);
const INDEX_TYPES = new Set<string>([MEDIA.ociIndex, MEDIA.dockerList]);
export const MANIFEST_TYPES = new Set<string>([...IMAGE_TYPES, ...INDEX_TYPES, MEDIA.dockerSchema1, MEDIA.dockerSchema1Signed]);

/** Layers that live outside the registry (Windows base layers): their blobs are not required. */
const FOREIGN_LAYERS = new Set([
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: unknown;
  urls?: string[];
}

export interface ParsedManifest {
  mediaType: string;
  /** Blobs the manifest needs in its repository (config and layers). */
  blobs: Digest[];
  /** Manifests the manifest needs in its repository (index children). */
  manifests: Digest[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/**
 * Descriptors a manifest may list: layers of an image, children of an index. Docker and ECR stop
 * at 127 layers (overlay's depth); 1,000 leaves room for artifacts while keeping the checks a
 * push triggers (one storage lookup per reference) and the error answers small.
 */
export const MAX_DESCRIPTORS = 1000;

function invalid(message: string): RegistryError {
  return new RegistryError('MANIFEST_INVALID', `manifest invalid: ${message}`);
}

function tooMany(count: number, field: string): RegistryError {
  return invalid(`${field} lists ${count.toLocaleString('en')} descriptors; at most ${MAX_DESCRIPTORS.toLocaleString('en')} are accepted`);
}

function baseType(contentType: string | undefined): string | undefined {
  return contentType?.split(';')[0]?.trim().toLowerCase() || undefined;
}

function checkDescriptor(value: unknown, where: string): Descriptor {
  const d = value as Descriptor;
  if (typeof d !== 'object' || d === null) throw invalid(`${where} is not a descriptor object`);
  if (typeof d.mediaType !== 'string' || d.mediaType === '') throw invalid(`${where}.mediaType is missing`);
  if (typeof d.digest !== 'string') throw invalid(`${where}.digest is missing`);
  try {
    parseDigest(d.digest);
  } catch {
    throw invalid(`${where}.digest ${JSON.stringify(d.digest.slice(0, 100))} is not a valid digest`);
  }
  if (!Number.isSafeInteger(d.size) || d.size < 0) throw invalid(`${where}.size must be a non-negative integer`);
  return d;
}

/**
 * Parses pushed manifest bytes. The media type comes from the document's own `mediaType`,
 * else from Content-Type, else from its shape; a document whose type disagrees with the
 * Content-Type it was sent with is rejected rather than guessed at.
 */
export function parseManifest(content: Buffer, contentType: string | undefined): ParsedManifest {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(content.toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw invalid(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid('not a JSON object');
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  const sent = baseType(contentType);
  if (doc.schemaVersion === 1) {
    throw invalid('Docker schema1 manifests are deprecated and not accepted; push a schema2 or OCI manifest');
  }
  if (doc.schemaVersion !== 2) throw invalid('schemaVersion must be 2');
  const shapeType = Array.isArray(doc.manifests) ? MEDIA.ociIndex : MEDIA.ociManifest;
  const mediaType = declared ?? (sent && MANIFEST_TYPES.has(sent) ? sent : shapeType);
  if (declared && sent && MANIFEST_TYPES.has(sent) && sent !== declared) {
    throw invalid(`Content-Type ${sent} does not match the manifest's mediaType ${declared}`);
  }
  const parsed: ParsedManifest = { mediaType, blobs: [], manifests: [] };
  if (IMAGE_TYPES.has(mediaType)) {
    const config = checkDescriptor(doc.config, 'config');
    if (!Array.isArray(doc.layers)) throw invalid('layers must be an array');
    if (doc.layers.length > MAX_DESCRIPTORS) throw tooMany(doc.layers.length, 'layers');
    parsed.blobs.push(parseDigest(config.digest));
    doc.layers.forEach((layer, i) => {
      const d = checkDescriptor(layer, `layers[${i}]`);
      if (!FOREIGN_LAYERS.has(d.mediaType)) parsed.blobs.push(parseDigest(d.digest));
    });
    parsed.artifactType = typeof doc.artifactType === 'string' ? doc.artifactType : config.mediaType;
  } else if (INDEX_TYPES.has(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw invalid('manifests must be an array');
    if (doc.manifests.length > MAX_DESCRIPTORS) throw tooMany(doc.manifests.length, 'manifests');
    doc.manifests.forEach((child, i) => {
      parsed.manifests.push(parseDigest(checkDescriptor(child, `manifests[${i}]`).digest));
    });
    if (typeof doc.artifactType === 'string') parsed.artifactType = doc.artifactType;
  } else {
    throw invalid(`unsupported manifest media type ${JSON.stringify(mediaType)}`);
  }
  if (doc.subject !== undefined) parsed.subject = checkDescriptor(doc.subject, 'subject');
  if (doc.annotations && typeof doc.annotations === 'object') {
    parsed.annotations = doc.annotations as Record<string, string>;
  }
  return parsed;
}

/** Media type of stored manifest bytes (which were validated when pushed). */
/**
 * The mediaType a stored manifest declares, which is then the one it was pushed with (a push
 * whose Content-Type differs is refused); undefined when it declares none or is not JSON.
 */
export function declaredMediaType(content: Buffer): string | undefined {
  // the field is near the top of every document a client writes: look before parsing it all
  if (!content.includes('"mediaType"')) return undefined;
  try {
    const doc = JSON.parse(content.toString('utf8')) as Record<string, unknown>;
    return typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  } catch {
    return undefined;
  }
}

export function storedMediaType(content: Buffer): string {
  try {
    const doc = JSON.parse(content.toString('utf8')) as Record<string, unknown>;
    if (typeof doc.mediaType === 'string') return doc.mediaType;
    if (doc.schemaVersion === 1) return doc.signatures ? MEDIA.dockerSchema1Signed : MEDIA.dockerSchema1;
    return Array.isArray(doc.manifests) ? MEDIA.ociIndex : MEDIA.ociManifest;
  } catch {
    return MEDIA.ociManifest;
  }
}
