// Many listings or small reads at once: with the driver's own batch calls where it has them
// (listMany, readMany), else one call at a time with a few in flight (mapBounded, which the
// registry's walks use too).
import { isNotFound, type SmallFile, type StorageDriver } from './driver.js';

/** Calls in flight at once, by default (and when a driver has no batch call of its own). */
const IN_FLIGHT = 16;

/** Maps with at most `limit` calls in flight. */
export async function mapBounded<T, R>(items: T[], fn: (item: T) => Promise<R>, limit = IN_FLIGHT): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function orMissing<T>(work: Promise<T>): Promise<T | undefined> {
  return work.catch((err) => {
    if (isNotFound(err)) return undefined;
    throw err;
  });
}

/** Each folder's entries, undefined where it is missing. */
export function listMany(driver: StorageDriver, folders: string[]): Promise<(string[] | undefined)[]> {
  if (folders.length === 0) return Promise.resolve([]);
  if (driver.listMany) return driver.listMany(folders);
  return mapBounded(folders, (folder) => orMissing(driver.list(folder)));
}

/** Each small file's content and modification time, undefined where it is missing. */
export function readMany(driver: StorageDriver, files: string[]): Promise<(SmallFile | undefined)[]> {
  if (files.length === 0) return Promise.resolve([]);
  if (driver.readMany) return driver.readMany(files);
  return mapBounded(files, (file) => orMissing((async () => {
    if (driver.getContentWithInfo) {
      const { content, info } = await driver.getContentWithInfo(file);
      return { content, modTime: info.modTime };
    }
    const content = await driver.getContent(file);
    return { content, modTime: (await driver.stat(file)).modTime };
  })()));
}
