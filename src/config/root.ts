// The data directory (storage.filesystem.rootdirectory), checked before anything uses it: made
// when missing, and every problem told with the directory and the fix rather than a bare errno.
import { constants, statSync } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';

export class DataDirectoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirectoryError';
  }
}

/** The directories of registry:2's layout that Berth writes into, when they exist. */
const LAYOUT = ['docker', 'docker/registry', 'docker/registry/v2', 'docker/registry/v2/blobs', 'docker/registry/v2/repositories'];

const SETTING = 'storage.filesystem.rootdirectory (--root, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY)';

/**
 * Makes `dir` if it is missing, then checks that this process may read and write it and the
 * layout below it. The directory is made one level at a time: Node's recursive mkdir never
 * returns where a filesystem answers ENOENT under a parent that exists (/proc, /sys).
 */
export async function prepareDataDirectory(dir: string): Promise<void> {
  const root = resolve(dir);
  let current: string = sep;
  for (const part of root.split(sep).filter(Boolean)) {
    const next = join(current, part);
    const info = await stat(next).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw explain(err, next, root);
    });
    if (!info) {
      await mkdir(next).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw explain(err, next, root);
      });
    } else if (!info.isDirectory()) {
      throw new DataDirectoryError(`data directory ${root}: ${next} is a file, not a directory; set ${SETTING} to a directory`);
    }
    current = next;
  }
  for (const path of [root, ...LAYOUT.map((sub) => join(root, sub))]) {
    await access(path, constants.R_OK | constants.W_OK | constants.X_OK).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT' || path === root) throw explain(err, path, root);
    });
  }
}

function explain(err: NodeJS.ErrnoException, path: string, root: string): DataDirectoryError {
  switch (err.code) {
    case 'EACCES': case 'EPERM':
      return new DataDirectoryError(permissionMessage(path, root, err.code));
    case 'ENOENT': // mkdir under a parent that exists: a filesystem that makes no directories
      return new DataDirectoryError(`cannot make the data directory ${root}: ${dirname(path)} does not take new directories ` +
        `(a virtual filesystem such as /proc or /sys?); set ${SETTING} to a directory on a disk or volume`);
    case 'EROFS':
      return new DataDirectoryError(`data directory ${root}: ${path} is on a read-only filesystem; mount it read-write, ` +
        `or set ${SETTING} to a writable directory`);
    case 'ENOTDIR':
      return new DataDirectoryError(`data directory ${root}: a part of ${path} is a file, not a directory; set ${SETTING} to a directory`);
    default:
      return new DataDirectoryError(`data directory ${root}: ${err.message}`);
  }
}

function permissionMessage(path: string, root: string, code: string): string {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  const me = uid === undefined ? 'this process' : `this process (uid ${uid}, gid ${gid})`;
  const owner = ownerOf(path);
  const owned = owner ? `, which belongs to uid ${owner.uid}, gid ${owner.gid}` : '';
  const chown = uid === undefined ? 'give this user the directory' : `run chown -R ${uid}:${gid} ${root}`;
  const asOwner = !owner ? '' : owner.uid === 0
    ? ', or run Berth as root (the container image\'s default: leave out --user)'
    : `, or run Berth as its owner (in a container: docker run --user ${owner.uid}:${owner.gid})`;
  return `data directory ${root}: ${me} may not read and write ${path}${owned} (${code}); ${chown} ` +
    `(for a container volume, on the host directory mounted there)${asOwner}`;
}

/** The owner of `path`, or of its nearest ancestor that can be looked at (only for an error message). */
function ownerOf(path: string): { uid: number; gid: number } | undefined {
  for (let p = path; ; p = dirname(p)) {
    try {
      const info = statSync(p, { throwIfNoEntry: false });
      if (info) return { uid: info.uid, gid: info.gid };
    } catch { /* look further up */ }
    if (p === dirname(p)) return undefined;
  }
}
