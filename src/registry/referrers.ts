// Referrers: manifests whose `subject` names a digest, kept as link files under `_referrers`
// when they are pushed, so listing them never scans the repository. Stored documents are read
// leniently: one that cannot be read is reported and left out, never failing the list.
import type { Descriptor } from './media-types.js';
import type { ManifestService } from './manifests.js';
import type { MetadataStore } from './metadata.js';
import type { Digest } from './names.js';

/** Where problems with stored content are reported (log and metric, wired by the composition root). */
export type UnreadableReporter = (name: string, digest: Digest, reason: string) => void;

export class ReferrersService {
  constructor(private readonly store: MetadataStore, private readonly manifests: ManifestService,
              private readonly unreadable: UnreadableReporter = () => undefined) {}

  async list(name: string, subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    const descriptors: Descriptor[] = [];
    for (const digest of await this.store.referrers(name, subject)) {
      let manifest;
      try {
        manifest = await this.manifests.get(name, digest.toString());
      } catch {
        continue; // deleted since it was indexed
      }
      const descriptor: Descriptor = { mediaType: manifest.mediaType, digest: digest.toString(), size: manifest.content.length };
      try {
        const doc = JSON.parse(manifest.content.toString('utf8')) as Record<string, unknown>;
        const config = doc.config as { mediaType?: unknown } | undefined;
        const type = typeof doc.artifactType === 'string' ? doc.artifactType
          : !Array.isArray(doc.manifests) && typeof config?.mediaType === 'string' ? config.mediaType : undefined;
        if (type) descriptor.artifactType = type;
        if (doc.annotations && typeof doc.annotations === 'object' && !Array.isArray(doc.annotations)) {
          descriptor.annotations = doc.annotations as Record<string, string>;
        }
      } catch (err) {
        this.unreadable(name, digest, (err as Error).message);
        continue;
      }
      if (artifactType && descriptor.artifactType !== artifactType) continue;
      descriptors.push(descriptor);
    }
    return descriptors;
  }
}
