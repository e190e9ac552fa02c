/**
 * The folder kind's fencing token: a counter file in the lock folder,
 * advanced only by the holder, so no two holders ever race on it.
 *
 * @module
 */

import { writeNewFile } from "../_write_new_file.ts";
import { errorCode, type Runtime } from "../runtime/mod.ts";
import { joinPath } from "../dirs.ts";
import { LockError, LockPermissionError } from "../errors.ts";

/** The counter's file name: not `*.json`, so lockfolder peers ignore it. */
export const TOKEN_FILE = "token";

/** The counter's width: zero-padded digits, enough for every safe integer. */
const WIDTH = 16;
const COUNTER = /^\d{1,16}$/;

/**
 * Advances the folder's counter and returns the new token. Call only while
 * holding the lock: only the holder writes, and the next holder reads after
 * this one's release, so nobody reads mid-write.
 *
 * The counter is rewritten in place, always 16 digits, so each write covers
 * every byte of the last one: a single 16-byte write that a crash cannot
 * tear, with no new inode and no rename over the file (which makes ext4
 * flush, ~0.3 ms). A file that is not such a counter (missing, garbage,
 * longer) is replaced whole through a temp name and a rename instead.
 *
 * @example Advance a fresh folder's counter
 * ```ts
 * import { nextFencingToken } from "./fencing_token.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const folder = await Deno.makeTempDir();
 * console.log(await nextFencingToken(runtime, folder)); // 1
 * console.log(await nextFencingToken(runtime, folder)); // 2
 * ```
 *
 * @param runtime The runtime adapter.
 * @param folder The lock folder, held by the caller.
 * @returns The new token, a safe integer above every earlier one.
 * @throws {LockPermissionError} If `token` is a directory or a symlink (never followed).
 * @throws {LockError} If the counter is at or above `Number.MAX_SAFE_INTEGER`.
 */
export async function nextFencingToken(runtime: Runtime, folder: string): Promise<number> {
  const path = joinPath(folder, TOKEN_FILE);
  // Set by the callback (typed so, not narrowed to the initial null).
  let text = null as string | null;
  let next = null as number | null;
  try {
    // Opened without following a symlink (ELOOP), and a directory cannot be
    // opened for writing (EISDIR): refuseNonFile tells them apart, off the fast path.
    await runtime.updateFile(path, (current) => {
      text = current;
      if (!COUNTER.test(current)) return null;
      next = nextAfter(current);
      return next === null ? null : String(next).padStart(WIDTH, "0");
    });
    if (next !== null) return next;
  } catch (error) {
    // A counter read but not writable in place (a FIFO planted there, kept
    // full of digits: ESPIPE, which Deno reports without a code) is replaced
    // whole below, going on from what was read.
    if (errorCode(error) !== "ENOENT" && text === null) await refuseNonFile(runtime, path, error);
  }
  next = nextAfter(text) ?? exhausted(path, text!);
  await replaceCounter(runtime, folder, path, String(next).padStart(WIDTH, "0"));
  return next;
}

/** How many times the counter's temp file is written, if swept before its rename. */
const TEMP_TRIES = 3;

// Replaces the counter with `digits` through a temp file and a rename. A
// waiter sweeps a temp 5 s old as a crash's debris (bid.ts), so a holder
// stalled that long between the two finds it gone: it still holds the lock
// and no token was given out, so it writes the same value again.
async function replaceCounter(
  runtime: Runtime,
  folder: string,
  path: string,
  digits: string,
): Promise<void> {
  for (let tries = 1;; tries++) {
    const temp = joinPath(folder, `.${TOKEN_FILE}.${crypto.randomUUID()}.tmp`);
    await writeNewFile(runtime, temp, digits, 0o600);
    try {
      return await runtime.rename(temp, path);
    } catch (error) {
      if (errorCode(error) !== "ENOENT") throw error;
      if (tries >= TEMP_TRIES) {
        throw new LockError(
          `The fencing token counter's temp file in ${folder} was removed before it could be ` +
            `renamed into place, ${TEMP_TRIES} times: this process stalled for over 5 s each ` +
            `time, and waiters swept the file as a crash's leftover. Try again.`,
          { cause: error },
        );
      }
    }
  }
}

// One above the counter `text` holds; 1 if it holds none; null if it holds
// one too large to go on from (the next would not be a safe integer).
function nextAfter(text: string | null): number | null {
  const parsed = text === null ? NaN : Number.parseInt(text, 10);
  if (parsed >= Number.MAX_SAFE_INTEGER) return null;
  return (Number.isSafeInteger(parsed) && parsed > 0 ? parsed : 0) + 1;
}

// Starting again at 1 would hand out tokens below ones already handed out,
// which a fenced resource would take for a stale holder's (or let one in).
function exhausted(path: string, text: string): never {
  throw new LockError(
    `The fencing token counter ${path} holds ${text.trim().slice(0, 24)}, at or above ` +
      `${Number.MAX_SAFE_INTEGER} (the largest exact integer), so no larger token can be ` +
      `given. To start again from 1, first make every resource that checks these tokens ` +
      `accept lower ones, then remove ${path} while nobody holds the lock.`,
  );
}

// Throws: a LockPermissionError if `path` is a directory or a symlink,
// else `error`. A symlink is refused rather than replaced, as the socket kind's
// checkLockFile does: it is not followed, so replacing it would restart the
// count from 1 while its target may hold the real counter, and someone made
// it on purpose (only the folder's owner can).
async function refuseNonFile(runtime: Runtime, path: string, error: unknown): Promise<never> {
  const stat = await runtime.lstat(path).catch(() => null);
  if (stat?.isSymlink || stat?.isDirectory) {
    const fix = stat.isSymlink
      ? "Replace the link with a copy of the file it points to (to go on counting from there)"
      : "Remove it (the next token will then be 1)";
    throw new LockPermissionError(
      `The fencing token counter ${path} is ${
        stat.isSymlink ? "a symlink" : "a directory"
      }, not a file; refusing to use it. ${fix}, or lock another folder.`,
      { cause: error },
    );
  }
  throw error;
}
