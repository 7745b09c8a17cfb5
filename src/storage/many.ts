// Many listings or small reads at once: with the driver's own batch calls where it has them
// (listMany, readMany), else one call at a time with a few in flight.
import { isNotFound, type SmallFile, type StorageDriver } from './driver.js';

/** Calls in flight at once when a driver has no batch call of its own. */
const IN_FLIGHT = 16;

async function eachBounded<R>(count: number, fn: (i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, count) }, worker));
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
  return eachBounded(folders.length, (i) => orMissing(driver.list(folders[i]!)));
}

/** Each small file's content and modification time, undefined where it is missing. */
export function readMany(driver: StorageDriver, files: string[]): Promise<(SmallFile | undefined)[]> {
  if (files.length === 0) return Promise.resolve([]);
  if (driver.readMany) return driver.readMany(files);
  return eachBounded(files.length, (i) => orMissing((async () => {
    if (driver.getContentWithInfo) {
      const { content, info } = await driver.getContentWithInfo(files[i]!);
      return { content, modTime: info.modTime };
    }
    const content = await driver.getContent(files[i]!);
    return { content, modTime: (await driver.stat(files[i]!)).modTime };
  })()));
}
