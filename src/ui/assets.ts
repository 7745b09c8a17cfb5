// The web UI's files, as `npm run build` wrote them into dist/ui/ (scripts/build-ui.mjs): each
// with its gzip and brotli forms, its media type and a strong ETag, listed in manifest.json.
// They are read once, on first use, and served from memory (they total well under 1 MiB).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Encoding = 'br' | 'gzip' | 'identity';

export interface UiAsset {
  type: string;
  /** The content's hash; the ETag of each encoding is derived from it. */
  etag: string;
  /** Whether the name holds the content's hash (then it may be cached for good). */
  immutable: boolean;
  bodies: Partial<Record<Encoding, Buffer>> & { identity: Buffer };
}

interface ManifestEntry {
  type: string;
  etag: string;
  immutable: boolean;
  encodings: Partial<Record<Encoding, number>>;
}

/** Where the build puts the assets, beside dist/src/. */
export const UI_DIST = fileURLToPath(new URL('../../ui/', import.meta.url));

const FILE_SUFFIX: Record<Encoding, string> = { identity: '', gzip: '.gz', br: '.br' };

export class UiAssetsMissing extends Error {}

export class UiAssets {
  private loading: Promise<Map<string, UiAsset>> | undefined;

  constructor(private readonly dir: string = UI_DIST) {}

  /** The asset called `name` (index.html, app.<hash>.js, ...), or undefined. */
  async get(name: string): Promise<UiAsset | undefined> {
    this.loading ??= this.load().catch((err) => {
      this.loading = undefined;
      throw err;
    });
    return (await this.loading).get(name);
  }

  private async load(): Promise<Map<string, UiAsset>> {
    let listed: Record<string, ManifestEntry>;
    try {
      listed = (JSON.parse(await readFile(join(this.dir, 'manifest.json'), 'utf8')) as { files: Record<string, ManifestEntry> }).files;
    } catch (err) {
      throw new UiAssetsMissing(`the web UI is not built (${(err as Error).message}): run npm run build`);
    }
    const assets = new Map<string, UiAsset>();
    for (const [name, entry] of Object.entries(listed)) {
      const bodies = { identity: await readFile(join(this.dir, name)) } as UiAsset['bodies'];
      for (const encoding of ['gzip', 'br'] as const) {
        if (entry.encodings[encoding] !== undefined) bodies[encoding] = await readFile(join(this.dir, name + FILE_SUFFIX[encoding]));
      }
      assets.set(name, { type: entry.type, etag: entry.etag, immutable: entry.immutable, bodies });
    }
    return assets;
  }
}
