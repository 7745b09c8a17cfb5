// Tags: a tag is a directory holding the digest it points at now (`current/link`) and every
// digest it ever pointed at (`index/`), exactly as distribution keeps them. Tags are written by
// manifest puts; this service reads and removes them through the metadata store.
import { RegistryError } from './errors.js';
import type { MetadataStore } from './metadata.js';
import type { Digest } from './names.js';

export class TagService {
  constructor(private readonly store: MetadataStore) {}

  get(name: string, tag: string): Promise<Digest | undefined> {
    return this.store.tag(name, tag);
  }

  async remove(name: string, tag: string): Promise<void> {
    if (!(await this.store.deleteTag(name, tag))) {
      throw new RegistryError('MANIFEST_UNKNOWN', `tag unknown: ${tag}`, { tag });
    }
  }

  /** All tags of a repository, sorted; NAME_UNKNOWN when the repository holds no manifests. */
  list(name: string): Promise<string[]> {
    return this.store.tags(name);
  }
}
