/**
 * The folder kind's fencing token: a counter file in the lock folder,
 * advanced only by the holder, so no two holders ever race on it.
 *
 * The counter can be lost: the lock folder removed and made again (a
 * logout cleaning `$XDG_RUNTIME_DIR`, tmpfiles cleaning /tmp, a user's
 * `rm`), `token` deleted or garbled. Counting again from 1 would then hand
 * out tokens below ones already handed out, and a fenced resource would
 * refuse every new holder (or, keeping only the latest, let a stale one in).
 * So a missing or unreadable counter goes on from at least the wall clock in
 * microseconds, as the socket kind's and the lock server's tokens do: above
 * every token a counter that started from an earlier clock reading could
 * have reached (one acquisition takes far longer than a microsecond), unless
 * the clock was stepped back past it. And each process remembers the largest
 * token it gave in each folder, so it never gives one at or below it, clock
 * or no clock.
 *
 * A brand-new folder's first token comes from the clock too: a folder made
 * for the first time and one made again after its removal look the same
 * (another process may have removed it and made it again), and tokens are
 * only promised to grow, not to start at 1.
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

// The largest token each runtime (process, or scripted one in tests) gave in
// each folder, by the folder's path as given: most recently used last.
const issuedHere = new WeakMap<Runtime, Map<string, number>>();
// A process that locks many folders keeps the floors of this many: a folder
// forgotten still goes on from its counter, or from the clock without one.
const MAX_FLOORS = 4096;

function floorIn(runtime: Runtime, folder: string): number {
  return issuedHere.get(runtime)?.get(folder) ?? 0;
}

function issued(runtime: Runtime, folder: string, token: number): number {
  let floors = issuedHere.get(runtime);
  if (!floors) issuedHere.set(runtime, floors = new Map());
  floors.delete(folder);
  if (floors.size >= MAX_FLOORS) floors.delete(floors.keys().next().value!);
  floors.set(folder, token);
  return token;
}

/**
 * Advances the folder's counter and returns the new token. Call only while
 * holding the lock: only the holder writes, and the next holder reads after
 * this one's release, so nobody reads mid-write.
 *
 * The new token is one above the counter, and above every token this
 * process gave in `folder` before; a counter that is missing or not a
 * counter (a folder new or made again, garbage) goes on from at least the
 * wall clock in microseconds instead (see the module doc).
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
 * const first = await nextFencingToken(runtime, folder); // the clock in µs
 * console.log(first >= Date.now() * 1000 - 1000); // true
 * console.log(await nextFencingToken(runtime, folder) === first + 1); // true
 * ```
 *
 * @param runtime The runtime adapter.
 * @param folder The lock folder, held by the caller.
 * @returns The new token, a safe integer above every earlier one.
 * @throws {LockPermissionError} If `token` is a directory or a symlink (never followed).
 * @throws {LockError} If the next token would be above `Number.MAX_SAFE_INTEGER`.
 */
export async function nextFencingToken(runtime: Runtime, folder: string): Promise<number> {
  const path = joinPath(folder, TOKEN_FILE);
  const floor = floorIn(runtime, folder);
  // Set by the callback (typed so, not narrowed to the initial null).
  let text = null as string | null;
  let next = null as number | null;
  try {
    // Opened without following a symlink (ELOOP), and a directory cannot be
    // opened for writing (EISDIR): refuseNonFile tells them apart, off the fast path.
    await runtime.updateFile(path, (current) => {
      text = current;
      if (!COUNTER.test(current)) return null;
      next = nextAfter(runtime, current, floor);
      return next === null ? null : String(next).padStart(WIDTH, "0");
    });
    if (next !== null) return issued(runtime, folder, next);
  } catch (error) {
    // A counter read but not writable in place (a FIFO planted there, kept
    // full of digits: ESPIPE, which Deno reports without a code) is replaced
    // whole below, going on from what was read.
    if (errorCode(error) !== "ENOENT" && text === null) await refuseNonFile(runtime, path, error);
  }
  next = nextAfter(runtime, text, floor) ?? exhausted(path, text, floor);
  await replaceCounter(runtime, folder, path, String(next).padStart(WIDTH, "0"));
  return issued(runtime, folder, next);
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

// The next token: above the counter `text` holds and above `floor` (the
// largest this process gave here), and at least the clock in µs if `text`
// is no counter (null: missing). Null if that would not be a safe integer.
function nextAfter(runtime: Runtime, text: string | null, floor: number): number | null {
  const parsed = text === null ? NaN : Number.parseInt(text, 10);
  if (parsed >= Number.MAX_SAFE_INTEGER) return null;
  const counted = Number.isSafeInteger(parsed) && parsed > 0 ? parsed : 0;
  const clock = text !== null && COUNTER.test(text) ? 0 : Math.floor(runtime.now() * 1000);
  const next = Math.max(counted + 1, floor + 1, clock);
  return next <= Number.MAX_SAFE_INTEGER ? next : null;
}

// Going on lower would hand out tokens below ones already handed out, which
// a fenced resource would take for a stale holder's (or let one in).
function exhausted(path: string, text: string | null, floor: number): never {
  const counter = text === null ? NaN : Number.parseInt(text, 10);
  const what = counter >= Number.MAX_SAFE_INTEGER
    ? `${path} holds ${text!.trim().slice(0, 24)}`
    : `${path}: this process already gave ${floor} in its folder`;
  throw new LockError(
    `The fencing token counter ${what}, at or above ${Number.MAX_SAFE_INTEGER} (the largest ` +
      `exact integer), so no larger token can be given. To start again lower (from the clock ` +
      `in microseconds), first make every resource that checks these tokens accept lower ` +
      `ones, then remove ${path} while nobody holds the lock, and restart the processes that ` +
      `used it (each remembers the largest token it gave there).`,
  );
}

// Throws: a LockPermissionError if `path` is a directory or a symlink,
// else `error`. A symlink is refused rather than replaced, as the socket kind's
// checkLockFile does: it is not followed, so replacing it would restart the
// count from the clock while its target may hold the real counter, and someone made
// it on purpose (only the folder's owner can).
async function refuseNonFile(runtime: Runtime, path: string, error: unknown): Promise<never> {
  const stat = await runtime.lstat(path).catch(() => null);
  if (stat?.isSymlink || stat?.isDirectory) {
    const fix = stat.isSymlink
      ? "Replace the link with a copy of the file it points to (to go on counting from there)"
      : "Remove it (the count then goes on from the clock)";
    throw new LockPermissionError(
      `The fencing token counter ${path} is ${
        stat.isSymlink ? "a symlink" : "a directory"
      }, not a file; refusing to use it. ${fix}, or lock another folder.`,
      { cause: error },
    );
  }
  throw error;
}
