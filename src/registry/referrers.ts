// Referrers: manifests whose `subject` names a digest, kept as link files under `_referrers`
// when they are pushed, so listing them never scans the repository.
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { readLink } from './blobs.js';
import { parseManifest, storedMediaType, type Descriptor } from './media-types.js';
import type { ManifestService } from './manifests.js';
import type { Digest } from './names.js';
import { paths } from './paths.js';

export class ReferrersService {
  constructor(private readonly driver: StorageDriver, private readonly manifests: ManifestService) {}

  async list(name: string, subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    const dir = paths.referrersDir(name, subject);
    let entries: string[] = [];
    try {
      for (const algorithm of await this.driver.list(dir)) {
        for (const hex of await this.driver.list(`${dir}/${algorithm}`)) entries.push(`${dir}/${algorithm}/${hex}/link`);
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    entries = entries.sort();
    const descriptors: Descriptor[] = [];
    for (const link of entries) {
      const digest = await readLink(this.driver, link);
      if (!digest) continue;
      let manifest;
      try {
        manifest = await this.manifests.get(name, digest.toString());
      } catch {
        continue; // deleted since it was indexed
      }
      const parsed = parseManifest(manifest.content, storedMediaType(manifest.content));
      const descriptor: Descriptor = {
        mediaType: manifest.mediaType,
        digest: digest.toString(),
        size: manifest.content.length,
      };
      if (parsed.artifactType) descriptor.artifactType = parsed.artifactType;
      if (parsed.annotations) descriptor.annotations = parsed.annotations;
      if (artifactType && descriptor.artifactType !== artifactType) continue;
      descriptors.push(descriptor);
    }
    return descriptors;
  }
}
