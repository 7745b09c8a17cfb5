// The storage driver contract: a small, path-based interface in the spirit of distribution's
// storagedriver. Paths are absolute within the driver ("/docker/registry/v2/..."), use "/"
// separators and are built only by src/registry/paths.ts, never from raw user input.
import type { Readable, Writable } from 'node:stream';

export interface FileInfo {
  size: number;
  modTime: Date;
  isDir: boolean;
  /** With modTime and size, changes when the file is replaced (the inode, on a filesystem). */
  version?: string;
}

/** A small file read whole, with the time it was last written. */
export interface SmallFile {
  content: Buffer;
  modTime: Date;
}

/** A sink for appended bytes; resolves `done` once everything written is durable in the file. */
export interface FileWriter {
  stream: Writable;
}

export interface StorageDriver {
  readonly name: string;
  /** `stat` is a local system call whose answer (version, size, modTime) shows any change. */
  readonly localStat?: boolean;
  /**
   * `stat` on the calling thread, for drivers whose stat is a local system call: checking a file
   * read moments ago costs microseconds, less than handing the call to another thread and back.
   * Undefined when the path does not exist.
   */
  statNow?(path: string): FileInfo | undefined;
  /** Whether the path exists, on the calling thread (with `statNow`): cheaper than a stat. */
  existsNow?(path: string): boolean;
  /** A small file's content with the stat of the very file read (so version and content agree). */
  getContentWithInfo?(path: string): Promise<{ content: Buffer; info: FileInfo }>;
  /** Whole content of a small file (links, manifests). Throws PathNotFoundError. */
  getContent(path: string): Promise<Buffer>;
  /**
   * Replaces a small file atomically: readers see the old or the new content, never a mix.
   * Unless `durable` is false, the content is on disk before the call resolves. `inPlace` allows a
   * driver to write a new file straight under its name (no temporary name and rename), where a
   * reader may find it empty or short for a moment: only for files whose readers allow for that.
   */
  putContent(path: string, content: Buffer | string, options?: PutOptions): Promise<void>;
  /** Streams [offset, end] (inclusive end) of a file. Throws PathNotFoundError. */
  reader(path: string, offset?: number, end?: number): Promise<Readable>;
  /** Sends [offset, end] of a file to `dest`, honouring its backpressure. Throws PathNotFoundError. */
  copyTo(path: string, dest: Writable, offset?: number, end?: number): Promise<void>;
  /**
   * Opens a file for writing; append=false truncates or creates it, append=true creates it when
   * missing. With `durable`, the stream finishes only once everything written is on disk.
   */
  writer(path: string, append: boolean, options?: { durable?: boolean }): Promise<Writable>;
  stat(path: string): Promise<FileInfo>;
  /** Names of the direct children of a directory. Throws PathNotFoundError. */
  list(path: string): Promise<string[]>;
  /** Moves a file atomically, replacing the destination; its content is on disk before it gets the new name. */
  move(source: string, dest: string): Promise<void>;
  /** Sets a file's modification time to now (content last used); a missing path is not an error. */
  touch(path: string): Promise<void>;
  /** Removes a file or a directory tree; a missing path is not an error. */
  delete(path: string): Promise<void>;
  /** Whether the driver can answer a read (readiness). */
  ping(): Promise<void>;
  /**
   * Folders below `path` (relative to it, sorted) holding an entry named `marker`, not entering
   * entries that start with `_` or `.`: for drivers with a faster way than listing folder by folder.
   * With `reuse`, the driver may answer from what it saw last time for the parts of the tree it
   * can prove unchanged (a cache exact under its storage's rules), not from a copy that may be stale.
   */
  findFolders?(path: string, marker: string, options?: { reuse?: boolean }): Promise<string[]>;
  /**
   * Many listings in one call (names as `list` gives them; undefined where a path is missing or
   * not a folder), for drivers that make many calls cheaper together than one at a time.
   */
  listMany?(paths: string[]): Promise<(string[] | undefined)[]>;
  /** Many small files' contents with their modification times in one call; undefined where missing. */
  readMany?(paths: string[]): Promise<(SmallFile | undefined)[]>;
  /** A URL clients may download the file from directly (presigned), for drivers that have one. */
  downloadUrl?(path: string): Promise<string>;
}

export interface PutOptions {
  durable?: boolean;
  inPlace?: boolean;
}

export class PathNotFoundError extends Error {
  constructor(readonly path: string) {
    super(`path not found: ${path}`);
    this.name = 'PathNotFoundError';
  }
}

export function isNotFound(err: unknown): err is PathNotFoundError {
  return err instanceof PathNotFoundError;
}

/** Rejects anything that is not a clean absolute driver path: a guard against traversal. */
const DOT_PART = /\/\.\.?(?:\/|$)/;

export function checkPath(path: string): void {
  if (!path.startsWith('/') || path.includes('//') || path.includes('\0') || DOT_PART.test(path)) {
    throw new Error(`invalid storage path: ${JSON.stringify(path)}`);
  }
}
