/**
 * Where local locks live, and the checks that make a lock directory safe to
 * use: created 0700, owned by this user, no symlinks, not writable by others.
 *
 * @module
 */

import { errorCode, type FileStat, type Runtime } from "./runtime/mod.ts";
import { LockError, LockPermissionError } from "./errors.ts";

/**
 * The default lock directory: `$XDG_RUNTIME_DIR/socketlock`, else
 * `<temp dir>/socketlock-<uid>`.
 *
 * @example Show where locks live
 * ```ts
 * import { defaultLockDir } from "./dirs.ts";
 * import { runtime } from "./runtime/mod.ts";
 * console.log(defaultLockDir(runtime));
 * ```
 *
 * @param runtime The runtime adapter.
 * @returns An absolute directory path.
 */
export function defaultLockDir(runtime: Runtime): string {
  const xdg = runtime.env("XDG_RUNTIME_DIR");
  if (xdg) return joinPath(xdg, "socketlock");
  const uid = runtime.uid();
  return joinPath(runtime.tempDir(), `socketlock-${uid ?? "user"}`);
}

/**
 * Whether `stat` belongs to another user than this process's, as far as the
 * platform tells owners (where it does not, nobody counts as another).
 *
 * @example Our own temp dir is ours
 * ```ts
 * import { ownedByAnother } from "./dirs.ts";
 * import { runtime } from "./runtime/mod.ts";
 * console.log(ownedByAnother(runtime, await runtime.lstat(await Deno.makeTempDir()))); // false
 * ```
 *
 * @param runtime The runtime adapter.
 * @param stat What `runtime.lstat` found.
 * @returns True if its owner is known and is not this user.
 */
export function ownedByAnother(runtime: Runtime, stat: FileStat): boolean {
  const uid = runtime.uid();
  return uid !== null && stat.uid !== null && stat.uid !== uid;
}

/**
 * What `lstat` says of `path`, or null if nothing is there; any other error
 * is thrown.
 *
 * @example Look at a path that may be absent
 * ```ts
 * import { lstatIfExists } from "./dirs.ts";
 * import { runtime } from "./runtime/mod.ts";
 * console.log(await lstatIfExists(runtime, "/nonexistent/x.lock")); // null
 * ```
 *
 * @param runtime The runtime adapter.
 * @param path The path.
 * @returns Its stat, or null.
 */
export async function lstatIfExists(runtime: Runtime, path: string): Promise<FileStat | null> {
  try {
    return await runtime.lstat(path);
  } catch (error) {
    if (errorCode(error) === "ENOENT") return null;
    throw error;
  }
}

/** Joins path segments with "/" (all our paths are POSIX-style). */
export function joinPath(...parts: string[]): string {
  const path = parts.join("/");
  // Most joins have no doubled slash, and a regex replace costs more than the search.
  return path.includes("//") ? path.replace(/\/{2,}/g, "/") : path;
}

const checked = new Set<string>();

// Why mkdir failed, for the errors a user can fix by choosing another path.
const CANNOT_CREATE: Record<string, string> = {
  ENOTDIR: "a part of its path is a file, not a directory",
  EACCES: "permission denied on a parent directory",
  EPERM: "not permitted",
  EROFS: "the file system is read-only",
  ENOENT: "a part of its path does not exist and cannot be made (a dangling symlink, or a " +
    "file system such as /proc)",
};

// Why a write in an existing directory failed, for the errors a user can
// fix by choosing another directory.
const CANNOT_WRITE: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "not permitted",
  EROFS: "the file system is read-only",
  ENOTDIR: "a part of its path is not a directory",
};

/**
 * `error` as a {@link LockPermissionError} if choosing another directory
 * would fix it (no write permission, a read-only file system), else as is.
 *
 * @example Say why a write in a lock directory failed
 * ```ts
 * import { cannotWriteIn } from "./dirs.ts";
 * const error = Object.assign(new Error("EROFS: read-only file system"), { code: "EROFS" });
 * console.log((cannotWriteIn("lock directory", "/mnt/ro/locks", error) as Error).message);
 * ```
 *
 * @param what What the directory is, for the message ("lock directory").
 * @param dir The directory.
 * @param error What the write threw.
 * @returns The error to throw.
 */
export function cannotWriteIn(what: string, dir: string, error: unknown): unknown {
  const reason = CANNOT_WRITE[errorCode(error) ?? ""];
  if (!reason) return error;
  return new LockPermissionError(
    `Cannot use ${what} ${dir}: ${reason}. Pass one you can write, or fix this one ` +
      `(yours, mode 700, on a writable file system).`,
    { cause: error },
  );
}

/**
 * Forgets that `dir` was checked: it was found gone (removed while in use,
 * say by a logout cleaning `$XDG_RUNTIME_DIR`), so the next
 * {@link ensureLockDir} creates and checks it again.
 *
 * @param dir The directory.
 */
export function forgetLockDir(dir: string): void {
  checked.delete(dir);
}

/**
 * Creates `dir` (0700, with missing parents) and checks it is a real
 * directory, not a symlink; what either step finds wrong is a typed error
 * that says what to do.
 *
 * @example Make a lock directory's parents and all
 * ```ts
 * import { makeRealDir } from "./dirs.ts";
 * import { runtime } from "./runtime/mod.ts";
 * const stat = await makeRealDir(runtime, `${await Deno.makeTempDir()}/locks/app`);
 * console.log(stat.isDirectory); // true
 * ```
 *
 * @param runtime The runtime adapter.
 * @param dir The directory, as the caller's `dir` option gave it.
 * @returns What `lstat` says of it.
 * @throws {LockError} If `dir` is not a usable path string.
 * @throws {LockPermissionError} If it cannot be made, or is a symlink or a file.
 */
export async function makeRealDir(runtime: Runtime, dir: string): Promise<FileStat> {
  if (typeof dir !== "string" || dir === "" || dir.includes("\0")) {
    throw new LockError(`Option dir must be a directory's path, got ${JSON.stringify(dir)}.`);
  }
  try {
    await runtime.mkdir(dir, 0o700);
  } catch (error) {
    const code = errorCode(error);
    // A file is in the way: the checks below say so, as a LockPermissionError.
    if (code === "EEXIST") {
      // checked below
    } else if (code && CANNOT_CREATE[code]) {
      throw new LockPermissionError(
        `Cannot create lock directory ${dir}: ${CANNOT_CREATE[code]}. Pass a { dir } you can ` +
          `write, or create this one yourself (mode 700).`,
        { cause: error },
      );
    } else {
      throw error;
    }
  }
  // Deno's recursive mkdir makes nothing below a dangling symlink, and says nothing.
  const stat = await runtime.lstat(dir).catch((error) => {
    if (errorCode(error) !== "ENOENT") throw error;
    throw new LockPermissionError(
      `Cannot create lock directory ${dir}: ${CANNOT_CREATE.ENOENT}. Pass a { dir } you can ` +
        `write, or create this one yourself (mode 700).`,
      { cause: error },
    );
  });
  if (stat.isSymlink) {
    throw new LockPermissionError(
      `Lock directory ${dir} is a symlink; refusing to follow it. Remove the ` +
        `link, or pass the real path as { dir }.`,
    );
  }
  if (!stat.isDirectory) {
    throw new LockPermissionError(
      `Lock directory ${dir} exists but is not a directory. Remove it or pass another { dir }.`,
    );
  }
  return stat;
}

/**
 * Whether {@link ensureLockDir} has checked `dir` (and nobody has found it
 * gone since): then it returns at once.
 *
 * @example Skip the wait for a directory already checked
 * ```ts
 * import { ensureLockDir, isLockDirChecked } from "./dirs.ts";
 * import { runtime } from "./runtime/mod.ts";
 * const dir = `${await Deno.makeTempDir()}/locks`;
 * if (!isLockDirChecked(dir)) await ensureLockDir(runtime, dir);
 * console.log(isLockDirChecked(dir)); // true
 * ```
 *
 * @param dir The directory.
 * @returns True if checked.
 */
export function isLockDirChecked(dir: string): boolean {
  return checked.has(dir);
}

/**
 * Creates `dir` (0700) if missing and checks it is safe: a real directory,
 * not a symlink, owned by this user, not writable by group or others.
 * Checked once per process per directory.
 *
 * @param runtime The runtime adapter.
 * @param dir The directory.
 * @returns The directory.
 * @throws {LockPermissionError} When the directory is unsafe, saying how to fix it.
 */
export async function ensureLockDir(runtime: Runtime, dir: string): Promise<string> {
  if (checked.has(dir)) return dir;
  const stat = await makeRealDir(runtime, dir);
  if (ownedByAnother(runtime, stat)) {
    throw new LockPermissionError(
      `Lock directory ${dir} is owned by uid ${stat.uid}, not by you (uid ${runtime.uid()}). ` +
        `Another user could tamper with your locks; pass your own { dir }, or ` +
        `remove it if it is yours by mistake.`,
    );
  }
  if (stat.mode & 0o022) {
    throw new LockPermissionError(
      `Lock directory ${dir} is writable by others (mode ${
        stat.mode.toString(8)
      }). Fix it with "chmod 700 ${dir}".`,
    );
  }
  checked.add(dir);
  return dir;
}

/**
 * Refuses a lock file path that is a symlink (a planted link could make a
 * lock write through to another file).
 *
 * @returns true if the path exists as a regular file, false if absent.
 * @throws {LockPermissionError} If the path is a symlink or not a file.
 */
export async function checkLockFile(runtime: Runtime, path: string): Promise<boolean> {
  const stat = await lstatIfExists(runtime, path);
  if (!stat) return false;
  if (stat.isSymlink || !stat.isFile) {
    throw new LockPermissionError(
      `Lock file ${path} is ${
        stat.isSymlink ? "a symlink" : stat.isDirectory ? "a directory" : "not a regular file"
      }; ` +
        `refusing to use it. Remove it if you did not create it on purpose.`,
    );
  }
  return true;
}
