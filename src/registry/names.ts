// Repository names, tags and digests: the grammar of the OCI Distribution Spec, checked before
// any of them reaches a storage path.
import { RegistryError } from './errors.js';

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const SHA256_HEX = /^[a-f0-9]{64}$/;
const SHA512_HEX = /^[a-f0-9]{128}$/;
export const MAX_NAME_LENGTH = 255;

export function validateName(name: string): string {
  if (name.length > MAX_NAME_LENGTH || !NAME.test(name)) {
    throw new RegistryError('NAME_INVALID', `invalid repository name: ${JSON.stringify(name.slice(0, 300))}`,
      { name: name.slice(0, 300) });
  }
  return name;
}

export function isTag(ref: string): boolean {
  return TAG.test(ref);
}

export function validateTag(tag: string): string {
  if (!TAG.test(tag)) throw new RegistryError('TAG_INVALID', `invalid tag: ${JSON.stringify(tag.slice(0, 200))}`);
  return tag;
}

export type Algorithm = 'sha256' | 'sha512';

export class Digest {
  /** `algorithm:hex`, built once: digests name map keys, locks, paths and headers on every request. */
  readonly #text: string;
  constructor(readonly algorithm: Algorithm, readonly hex: string) {
    this.#text = `${algorithm}:${hex}`;
  }
  toString(): string {
    return this.#text;
  }
}

/** Parses a digest the registry can verify; anything else is a 400 DIGEST_INVALID. */
export function parseDigest(value: string): Digest {
  if (!DIGEST.test(value)) {
    throw new RegistryError('DIGEST_INVALID', `invalid digest: ${JSON.stringify(value.slice(0, 200))}`);
  }
  const [algorithm, hex] = value.split(':') as [string, string];
  if ((algorithm === 'sha256' && SHA256_HEX.test(hex)) || (algorithm === 'sha512' && SHA512_HEX.test(hex))) {
    return new Digest(algorithm, hex);
  }
  throw new RegistryError('DIGEST_INVALID', `unsupported or malformed digest: ${JSON.stringify(value.slice(0, 200))}`);
}

export function looksLikeDigest(ref: string): boolean {
  return ref.includes(':');
}
