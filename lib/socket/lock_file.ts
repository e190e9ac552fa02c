/**
 * The socket kind's lock file: where it lives, what it holds, and how it is
 * created so that no reader ever sees it half-written.
 *
 * Our format is one JSON object: `kind`, `name`, `pid`, `host`, `port`,
 * `acquiredAt` (epoch ms), `id` (random, one per acquisition), `token`,
 * `keyId` (a fingerprint of the key the holder answers with) and, where the
 * holder could read it (Linux), `startTicks` (its start time in clock ticks
 * since boot).
 * In compat mode it is Python socketlock's `indent=2` JSON with its keys
 * `port`, `pid`, `timestamp` (epoch seconds) and `name` first, followed by
 * our `host`, `id`, `token` and `startTicks`, which Python ignores.
 *
 * @module
 */

import { writeNewFile } from "../_write_new_file.ts";
import { removeOldTemp } from "../_old_temps.ts";
import { plausibleToken } from "../_fencing_tokens.ts";
import { errorCode, type Runtime } from "../runtime/mod.ts";
import { joinPath, lstatIfExists, ownedByAnother } from "../dirs.ts";

/** What a lock file records about its holder. */
export interface LockRecord {
  /** The holder's pid. */
  pid: number;
  /** The holder's port on 127.0.0.1. */
  port: number;
  /** When the lock was taken, epoch ms. */
  acquiredAt: number;
  /** The holder's host ("" in files written by Python socketlock). */
  host: string;
  /**
   * The holder's pid and network namespaces (`Runtime.namespaceId()`), if
   * recorded: from other namespaces its pid and port cannot be checked.
   */
  ns?: string;
  /** The lock's name as recorded. */
  name: string;
  /** The acquisition's id, 32 hex digits ("" in files written by Python socketlock). */
  id: string;
  /** The fencing token, if recorded. */
  token?: number;
  /** Which key the holder answers with (a public fingerprint of it), if recorded. */
  keyId?: string;
  /** The holding isolate (main thread or worker), if recorded. */
  isolate?: string;
  /**
   * The holder process's start in clock ticks since boot (`ProcessStart.ticks`),
   * if it could read it: a live pid with other ticks is another process.
   */
  startTicks?: number;
}

/** The files of one socket lock. */
export interface LockPaths {
  /** The lock directory. */
  dir: string;
  /** The lock file. */
  file: string;
  /** Where released and broken lock files go, keeping the last token for the next holder. */
  last: string;
  /** Whether the file uses Python socketlock's name and format. */
  compat: boolean;
}

/**
 * The paths of lock `name` in `dir`: `<name>.lock`, or socketlock's
 * `.<name>.lock` in compat mode. There, in the shared temp dir, `.last` is
 * per user (`<file>.last.<uid>`): another user's could be neither replaced
 * nor removed (the sticky bit), and would pin every token to its own.
 *
 * @example Where Python socketlock's lock "nightly" lives
 * ```ts
 * import { lockPaths } from "./lock_file.ts";
 * console.log(lockPaths("/tmp", "nightly", true, 1000).file); // "/tmp/.nightly.lock"
 * ```
 *
 * @param dir The lock directory.
 * @param name The lock's name.
 * @param compat Python socketlock's naming.
 * @param uid This user's id (compat mode), or null where there is none.
 * @returns The paths.
 */
export function lockPaths(
  dir: string,
  name: string,
  compat: boolean,
  uid: number | null = null,
): LockPaths {
  const file = joinPath(dir, compat ? `.${name}.lock` : `${name}.lock`);
  return {
    dir,
    file,
    last: compat && uid !== null ? `${file}.last.${uid}` : `${file}.last`,
    compat,
  };
}

// Python's json.dumps escapes every non-ASCII character; doing the same keeps
// compat files byte-identical to what Python would write.
function asciiJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Renders a lock file.
 *
 * @example Render our format
 * ```ts
 * import { formatLockFile } from "./lock_file.ts";
 * const record = { pid: 12, port: 4000, acquiredAt: Date.now(), host: "h", name: "x", id: "0".repeat(32), token: 1 };
 * console.log(formatLockFile(record, false));
 * ```
 *
 * @param record The holder's record.
 * @param compat Python socketlock's format.
 * @returns The file's text.
 */
export function formatLockFile(record: LockRecord, compat: boolean): string {
  if (compat) {
    return asciiJson({
      port: record.port,
      pid: record.pid,
      timestamp: record.acquiredAt / 1000,
      name: record.name,
      host: record.host,
      ns: record.ns,
      id: record.id,
      token: record.token,
      isolate: record.isolate,
      startTicks: record.startTicks,
    }, 2);
  }
  return JSON.stringify({
    kind: "socket",
    name: record.name,
    pid: record.pid,
    host: record.host,
    ns: record.ns,
    port: record.port,
    acquiredAt: record.acquiredAt,
    id: record.id,
    token: record.token,
    keyId: record.keyId,
    isolate: record.isolate,
    startTicks: record.startTicks,
  });
}

/**
 * Parses a lock file in either format.
 *
 * @example Garbage is not a lock
 * ```ts
 * import { parseLockFile } from "./lock_file.ts";
 * console.log(parseLockFile("")); // null
 * console.log(parseLockFile('{"port": 4000, "pid": 12, "timestamp": 1.5, "name": "x"}')?.acquiredAt); // 1500
 * ```
 *
 * @param text The file's text.
 * @returns The record, or null if the text is not a lock file.
 */
export function parseLockFile(text: string): LockRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const v = value as Record<string, unknown>;
  const isInt = (x: unknown, min: number, max: number) =>
    Number.isSafeInteger(x) && (x as number) >= min && (x as number) <= max;
  if (!isInt(v.pid, 1, 2 ** 31) || !isInt(v.port, 1, 65535)) return null;
  const acquiredAt = typeof v.acquiredAt === "number"
    ? v.acquiredAt
    : typeof v.timestamp === "number"
    ? v.timestamp * 1000
    : NaN;
  if (!Number.isFinite(acquiredAt)) return null;
  if (v.id !== undefined && (typeof v.id !== "string" || !/^[0-9a-f]{32}$/.test(v.id))) {
    return null;
  }
  return {
    pid: v.pid as number,
    port: v.port as number,
    acquiredAt,
    host: typeof v.host === "string" ? v.host : "",
    ...(typeof v.ns === "string" ? { ns: v.ns } : {}),
    name: typeof v.name === "string" ? v.name : "",
    id: (v.id as string | undefined) ?? "",
    ...(Number.isSafeInteger(v.token) ? { token: v.token as number } : {}),
    ...(typeof v.keyId === "string" ? { keyId: v.keyId } : {}),
    ...(typeof v.isolate === "string" ? { isolate: v.isolate } : {}),
    ...(Number.isSafeInteger(v.startTicks) ? { startTicks: v.startTicks as number } : {}),
  };
}

// What readIfExists gives for a file over the runtime's read bound (64 KiB,
// far above any lock file): unread, it is garbage, broken like any file that
// does not parse, and this stands for it in a breaker's byte-for-byte
// re-read. Not JSON, so never a record, nor a prefix of one (a Python peer's
// file mid-write), whose removal a match would allow.
const OVERSIZE_TEXT = "\0over 64 KiB, unread\0";

/**
 * Reads a lock file's (or `.last`'s) text, or null if it does not exist. A
 * file over 64 KiB, which no lock file is near (another user can plant one
 * of any size in compat mode's shared temp dir), is not read: it reads as
 * text that is no lock file.
 *
 * @example Read a lock file that may be absent
 * ```ts
 * import { readIfExists } from "./lock_file.ts";
 * import { runtime } from "../runtime/mod.ts";
 * console.log(await readIfExists(runtime, "/nonexistent/x.lock")); // null
 * ```
 *
 * @param runtime The runtime adapter.
 * @param path The file.
 * @returns The text, or null.
 */
export async function readIfExists(runtime: Runtime, path: string): Promise<string | null> {
  try {
    return await runtime.readFile(path);
  } catch (error) {
    const code = errorCode(error);
    if (code === "ENOENT") return null;
    if (code === "EFBIG") return OVERSIZE_TEXT;
    throw error;
  }
}

/**
 * Removes a file; one already gone is not an error.
 *
 * @example Remove a temp file that may be gone
 * ```ts
 * import { removeIfExists } from "./lock_file.ts";
 * import { runtime } from "../runtime/mod.ts";
 * await removeIfExists(runtime, "/nonexistent/x.tmp");
 * ```
 *
 * @param runtime The runtime adapter.
 * @param path The file.
 */
export async function removeIfExists(runtime: Runtime, path: string): Promise<void> {
  try {
    await runtime.remove(path);
  } catch (error) {
    if (errorCode(error) !== "ENOENT") throw error;
  }
}

/**
 * Creates the lock file atomically and exclusively: the text goes to a
 * private temp name first, then `link()` puts it in place only if no lock
 * file exists — never a check-then-write, and a reader sees all or nothing.
 * A temp file swept before its link (see {@link sweepOldTemps}) creates
 * nothing either: the caller tries again.
 *
 * @example Create a lock file once
 * ```ts
 * import { createLockFile, lockPaths } from "./lock_file.ts";
 * import { randomHex } from "./handshake.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const paths = lockPaths(await Deno.makeTempDir(), "x", false);
 * const first = await createLockFile(runtime, paths, "{}", randomHex(16));
 * await first.cleanup;
 * const second = await createLockFile(runtime, paths, "{}", randomHex(16));
 * await second.cleanup;
 * console.log(first.created, second.created); // true false
 * ```
 *
 * @param runtime The runtime adapter.
 * @param paths The lock's paths.
 * @param text The file's text.
 * @param id The acquisition id (makes the temp name unique).
 * @returns Whether the lock file was created, and the removal of the temp
 *   file, left to finish alongside the caller's next step.
 * @throws The file system's error; `ENOENT` only if the lock directory is gone.
 */
export async function createLockFile(
  runtime: Runtime,
  paths: LockPaths,
  text: string,
  id: string,
): Promise<{ created: boolean; cleanup: Promise<void> }> {
  const temp = `${paths.file}.${id}.tmp`;
  await writeNewFile(runtime, temp, text, 0o600);
  let created = true;
  try {
    await runtime.link(temp, paths.file);
  } catch (error) {
    if (errorCode(error) !== "EEXIST" && !(await tempSwept(runtime, paths, error))) {
      await removeIfExists(runtime, temp);
      throw error;
    }
    created = false;
  }
  return { created, cleanup: removeIfExists(runtime, temp) };
}

/**
 * Replaces the lock file's text atomically; only its holder may call this.
 *
 * @example Record a larger token in a held lock's file
 * ```ts
 * import { lockPaths, rewriteLockFile } from "./lock_file.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const paths = lockPaths(await Deno.makeTempDir(), "x", false);
 * console.log(await rewriteLockFile(runtime, paths, "{}", "0".repeat(32))); // true
 * ```
 *
 * @param runtime The runtime adapter.
 * @param paths The lock's paths.
 * @param text The new text.
 * @param id The acquisition id.
 * @returns false if the temp file was swept before it replaced the lock
 *   file (see {@link sweepOldTemps}): the lock file is unchanged.
 * @throws The file system's error; `ENOENT` only if the lock directory is gone.
 */
export async function rewriteLockFile(
  runtime: Runtime,
  paths: LockPaths,
  text: string,
  id: string,
): Promise<boolean> {
  const temp = `${paths.file}.${id}.re.tmp`;
  await writeNewFile(runtime, temp, text, 0o600);
  try {
    await runtime.rename(temp, paths.file);
    return true;
  } catch (error) {
    if (await tempSwept(runtime, paths, error)) return false;
    await removeIfExists(runtime, temp).catch(() => {});
    throw error;
  }
}

// The temp names of createLockFile (`<file>.<id>.tmp`) and rewriteLockFile
// (`<file>.<id>.re.tmp`), for a lock file of any name: nothing else in a lock
// directory is named so (lock files end in `.lock`, the key file is
// `socketlock.key`, folder locks live in `<name>.folder/`).
const TEMP_FILE = /^.+\.lock\.[0-9a-f]{32}(?:\.re)?\.tmp$/;

// A creator stalled (stopped, starved) past TEMP_GRACE_MS between writing its
// temp file and link()ing or renaming it can find it swept as a crash's
// debris: ENOENT, while the directory is still there. Nothing was created;
// only a directory that is gone (ENOENT too) needs making again.
async function tempSwept(runtime: Runtime, paths: LockPaths, error: unknown): Promise<boolean> {
  if (errorCode(error) !== "ENOENT") return false;
  try {
    return (await runtime.lstat(paths.dir)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Removes the temp files that creators killed between writing and removing
 * them left in lock directory `dir`: regular files named as
 * {@link createLockFile} and {@link rewriteLockFile} name them, older than
 * `TEMP_GRACE_MS` (5 s). Symlinks, directories and every other name are left
 * alone; nothing is ever followed. Best effort: it never throws. Not for the
 * shared temp dir of compat mode, which holds other users' files.
 *
 * @example Sweep a lock directory
 * ```ts
 * import { sweepOldTemps } from "./lock_file.ts";
 * import { runtime } from "../runtime/mod.ts";
 * await sweepOldTemps(runtime, await Deno.makeTempDir());
 * ```
 *
 * @param runtime The runtime adapter.
 * @param dir The lock directory.
 */
export async function sweepOldTemps(runtime: Runtime, dir: string): Promise<void> {
  let names: string[];
  try {
    names = await runtime.readDir(dir);
  } catch {
    return; // Gone or unreadable: nothing to sweep here.
  }
  for (const name of names) {
    if (!TEMP_FILE.test(name)) continue;
    await removeOldTemp(runtime, joinPath(dir, name));
  }
}

/**
 * Takes the lock file out of place, keeping it as `.last` so the next
 * holder's token is larger. Where `.last` cannot be replaced (another user's
 * file or a directory in a shared temp dir, in compat mode) the lock file is
 * removed instead.
 * Only the holder, or a breaker under the breaker lock, may call this.
 *
 * @example Retire a lock file
 * ```ts
 * import { lastToken, lockPaths, retireLockFile } from "./lock_file.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const paths = lockPaths(await Deno.makeTempDir(), "x", false);
 * await Deno.writeTextFile(paths.file, '{"pid":1,"port":80,"acquiredAt":1,"token":7}');
 * await retireLockFile(runtime, paths);
 * console.log(await lastToken(runtime, paths)); // 7
 * ```
 *
 * @param runtime The runtime adapter.
 * @param paths The lock's paths.
 */
export async function retireLockFile(runtime: Runtime, paths: LockPaths): Promise<void> {
  try {
    // The old `.last` goes first: renaming a freshly written file over an
    // existing one makes ext4 flush its data (auto_da_alloc), ~0.3 ms or
    // more, where a rename to a free name costs microseconds. Nothing is
    // lost in between: only this file's holder (or its breaker) retires it,
    // acquirers read `.last` only after this file is gone, and if we stop
    // here the file itself, with the newer token, is retired by its breaker.
    await removeIfExists(runtime, paths.last);
    await runtime.rename(paths.file, paths.last);
  } catch (error) {
    const code = errorCode(error);
    if (code === "ENOENT") return;
    // EISDIR (ENOTEMPTY from Deno's remove): a directory planted at `.last`,
    // which root (or anyone, outside a sticky directory) may try to unlink.
    if (!["EPERM", "EACCES", "EISDIR", "ENOTEMPTY"].includes(code ?? "")) throw error;
    await removeIfExists(runtime, paths.file);
  }
}

/** A lock file this process wrote, and the token it records. */
export interface OwnLockFile {
  text: string;
  token: number;
}

/**
 * The token of the last released or broken lock, or 0. In compat mode a
 * `.last` that is not a regular file of this user is ignored (0): in the
 * shared temp dir another user can plant one at our per-user name before we
 * ever write it, which we could then neither replace nor remove, and whose
 * token would otherwise become every acquisition's `token + 1`. Tokens then
 * rest on the clock floor alone, as for a name never released. (A `.last`
 * of ours found by lstat cannot be swapped for another user's before the
 * read in a sticky dir; in a shared dir that is not sticky, other users can
 * remove live lock files anyway.)
 *
 * @example Read the last token of a fresh lock
 * ```ts
 * import { lastToken, lockPaths } from "./lock_file.ts";
 * import { runtime } from "../runtime/mod.ts";
 * console.log(await lastToken(runtime, lockPaths(await Deno.makeTempDir(), "x", false))); // 0
 * ```
 *
 * @param runtime The runtime adapter.
 * @param paths The lock's paths.
 * @param own A lock file this process wrote: found as `.last`, its token is
 *   taken as known rather than parsed again (a loop of lock and release
 *   reads back, at each acquisition, the file it retired at the release).
 * @returns The last token seen.
 */
export async function lastToken(
  runtime: Runtime,
  paths: LockPaths,
  own?: OwnLockFile,
): Promise<number> {
  if (paths.compat && !(await isOwnFile(runtime, paths.last))) return 0;
  const text = await readIfExists(runtime, paths.last);
  const token = text === null
    ? 0
    : text === own?.text
    ? own.token
    : parseLockFile(text)?.token ?? 0;
  // A token no holder of ours could have recorded (a damaged file) is no floor.
  return plausibleToken(token, runtime.now() * 1000);
}

// A regular file (not a symlink, FIFO or directory) owned by this user, as
// far as the platform tells owners; false if absent.
async function isOwnFile(runtime: Runtime, path: string): Promise<boolean> {
  const stat = await lstatIfExists(runtime, path);
  return stat !== null && stat.isFile && !stat.isSymlink && !ownedByAnother(runtime, stat);
}
