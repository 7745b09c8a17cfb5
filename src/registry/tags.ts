// Tags: a tag is a directory holding the digest it points at now (`current/link`) and every
// digest it ever pointed at (`index/`), exactly as distribution keeps them.
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { readLink } from './blobs.js';
import { RegistryError } from './errors.js';
import type { Digest } from './names.js';
import { paths } from './paths.js';

export class TagService {
  constructor(private readonly driver: StorageDriver) {}

  async get(name: string, tag: string): Promise<Digest | undefined> {
    return readLink(this.driver, paths.tagCurrentLink(name, tag));
  }

  async set(name: string, tag: string, digest: Digest): Promise<void> {
    // the index is history, kept for registry:2's layout; only `current` has to survive a power cut
    await Promise.all([
      this.driver.putContent(paths.tagIndexLink(name, tag, digest), digest.toString(), { durable: false }),
      this.driver.putContent(paths.tagCurrentLink(name, tag), digest.toString()),
    ]);
  }

  async remove(name: string, tag: string): Promise<void> {
    if (!(await this.get(name, tag))) {
      throw new RegistryError('MANIFEST_UNKNOWN', `tag unknown: ${tag}`, { tag });
    }
    await this.driver.delete(paths.tagDir(name, tag));
  }

  /** All tags of a repository, sorted; NAME_UNKNOWN when the repository holds no manifests
   *  (uploads or blobs alone do not make one, as with registry:2). */
  async list(name: string): Promise<string[]> {
    try {
      return (await this.driver.list(paths.tagsRoot(name))).sort();
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      await this.driver.stat(paths.manifestsRoot(name));
      return [];
    } catch (err) {
      if (isNotFound(err)) throw nameUnknown(name);
      throw err;
    }
  }

  async removeAllPointingAt(name: string, digest: Digest): Promise<void> {
    let tags: string[];
    try {
      tags = await this.driver.list(paths.tagsRoot(name));
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    await Promise.all(tags.map(async (tag) => {
      if ((await this.get(name, tag))?.toString() === digest.toString()) {
        await this.driver.delete(paths.tagDir(name, tag));
      }
    }));
  }
}

export function nameUnknown(name: string): RegistryError {
  return new RegistryError('NAME_UNKNOWN', `repository name not known to registry: ${name}`, { name });
}
