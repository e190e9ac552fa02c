/**
 * Breaking a stale socket lock without ever breaking a live one.
 *
 * The danger: contenders A and B both judge lock file S stale; B removes it,
 * C creates a fresh lock file; then A, still acting on its old judgement,
 * removes C's file and a fourth process acquires while C holds. Python
 * socketlock has exactly this bug (check, then a plain unlink).
 *
 * The rules that close it:
 *
 * 1. A lock file is only ever created by link()ing a complete temp file into
 *    place, which fails if any lock file exists (no check-then-write), and
 *    every acquisition writes a fresh 128-bit id into its file — so equal
 *    bytes mean the same acquisition.
 * 2. A breaker removes a lock file only while holding the *breaker lock* of
 *    the name, and only after re-reading the file under that lock and
 *    finding it byte-for-byte what it judged stale. Otherwise it removes
 *    nothing and starts over.
 * 3. A holder answers the handshake from before its file exists until after
 *    its release has removed the file (checking first that the file is still
 *    its own). Nobody else removes lock files; acquirers only create them.
 * 4. The breaker lock is a port lock (an abstract unix socket on Linux, 2 of
 *    3 loopback TCP ports elsewhere): the OS frees it when its holder dies,
 *    so it can never be stale itself and needs no breaking.
 *
 * Why it is safe: say breaker A re-read S under the breaker lock and then
 * removed a different file. Between A's re-read and its removal, S was
 * removed and another file created. Not by a breaker — A holds the breaker
 * lock. Not by S's holder — S was judged stale because nobody answered the
 * handshake for S's id, and a holder answers for as long as its file exists
 * (rule 3), so it is dead. Acquirers never remove. So S was still in place
 * and A removed exactly S. A breaker paused anywhere before taking the
 * breaker lock (the interleaving above) finds C's file at its re-read; C's
 * id differs from S's, so it removes nothing. Hence every removal removes a
 * dead holder's file, and the exclusive create leaves one holder at a time.
 *
 * A holder that stays silent past `handshakeTimeout` (its event loop busy
 * with synchronous work; the kernel still accepts connections for it) is
 * not judged dead while its pid lives: silence proves nothing, so only a
 * refused port, a wrong answer or a dead pid does (dead: gone, or on Linux
 * reused: its start ticks differ from those the lock file records).
 * `maxAge` breaks live holders on purpose (unsafe for them; off by default),
 * so rule 3's "a live holder's file is never removed" does not hold for
 * them; instead a holder old enough to be broken so releases under the
 * breaker lock, and its release, like a break, re-reads under it.
 * Python socketlock peers (compat mode) unlink without any of this.
 *
 * @module
 */

import { errorCode, type Runtime } from "../runtime/mod.ts";
import { LockPermissionError } from "../errors.ts";
import { holdPortKey } from "../port/port_target.ts";
import {
  lastToken,
  type LockPaths,
  lockPaths,
  parseLockFile,
  readIfExists,
  removeIfExists,
  retireLockFile,
} from "./lock_file.ts";

/** What a break attempt did. */
export type BreakOutcome =
  /** The judged file was removed. */
  | "broken"
  /** The file is gone or differs from the judged one: nothing was removed. */
  | "changed"
  /** Another process is breaking this lock right now: nothing was removed. */
  | "contended";

/**
 * The breaker lock's port-lock key for lock `name`, short enough for a unix
 * socket address whatever the name's length. With the lock directory's
 * secret it is known only to the processes that share that directory, so
 * nobody else can bind it and stall every break. Locks of one name in
 * directories sharing a secret share it, which only makes their (rare,
 * brief) breaks take turns.
 *
 * Without a secret (compat mode) it is derived from the lock file's path
 * alone — the one thing every user of that file agrees on. Every process
 * that may remove the file must take the same breaker lock: a per-user key
 * let root's breaker and a user's (both can remove a file in the sticky
 * temp dir), or two users' in a shared group-writable dir, break the same
 * stale file at once, and the later one removed the newcomer's live file.
 * The cost: any local user can compute it and bind it, and then compat locks
 * of that file are neither broken nor released (a release leaves its file
 * to be broken): a denial of service, which the shared temp dir already
 * allows by planting a file, never a second holder. Pass the directory's
 * real path (compat settings resolve it), so that every spelling of one
 * directory names one breaker lock.
 *
 * @example The breaker keys of lock "nightly", native and compat
 * ```ts
 * import { breakerKey } from "./break_stale_lock.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const secret = crypto.getRandomValues(new Uint8Array(32));
 * console.log(await breakerKey(runtime, "nightly", secret)); // "socketlock.break.<40 hex digits>"
 * console.log(await breakerKey(runtime, "nightly", null, "/tmp")); // the same for every user
 * ```
 *
 * @param runtime The runtime adapter.
 * @param name The lock's name.
 * @param secret The lock directory's secret, or null (compat mode).
 * @param dir Without a secret: the lock directory (default: the temp dir,
 *   compat mode's default).
 * @returns The port-lock key.
 */
export function breakerKey(
  runtime: Runtime,
  name: string,
  secret: Uint8Array | null,
  dir?: string,
): Promise<string> {
  if (!secret) {
    const file = lockPaths(dir ?? runtime.tempDir(), name, true).file;
    return madeOnce(fileKeys, file, () => `file:${file}`);
  }
  let byName = secretKeys.get(secret);
  if (!byName) secretKeys.set(secret, byName = new Map());
  return madeOnce(byName, name, () => `key:${hexOf(secret)}:${name}`);
}

// The keys made: per directory secret (one array for the life of the
// process: loadSecret caches it) and name, or per compat lock file. Found
// by the secret and the name, not by the text hashed: every release asks,
// and spelling that text (the secret in hex) cost more than the lookup.
const secretKeys = new WeakMap<Uint8Array, Map<string, Promise<string>>>();
const fileKeys = new Map<string, Promise<string>>();

function madeOnce(
  keys: Map<string, Promise<string>>,
  source: string,
  hashed: () => string,
): Promise<string> {
  let key = keys.get(source);
  if (!key) {
    key = crypto.subtle.digest("SHA-1", new TextEncoder().encode(hashed())).then((digest) =>
      "socketlock.break." +
      Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("")
    );
    keys.set(source, key);
  }
  return key;
}

function hexOf(secret: Uint8Array): string {
  return Array.from(secret, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** How long a release waits for a breaker to finish before leaving its file to be broken, ms. */
const RELEASE_WAIT_MS = 200;

/**
 * Takes the breaker lock `key` for a release: breakers hold it only for a
 * re-read and a rename, so it is retried for a moment; if it stays taken
 * (null), the releaser must not touch its file: the breaker may be about to
 * remove whatever file is in place.
 *
 * @param runtime The runtime adapter.
 * @param key The breaker lock's key ({@link breakerKey}).
 * @returns Its unlock, or null.
 */
export async function holdBreakerLock(
  runtime: Runtime,
  key: string,
): Promise<(() => Promise<void>) | null> {
  const until = runtime.monotonic() + RELEASE_WAIT_MS;
  for (;;) {
    const unlock = await holdPortKey(runtime, key);
    if (unlock || runtime.monotonic() >= until) return unlock;
    await new Promise<void>((resolve) => runtime.setTimer(resolve, 1 + Math.random() * 4));
  }
}

// A stale file we may not remove: in compat mode's shared temp dir,
// another user's (whoever can write there can plant one at our path).
function unremovable(file: string, error: unknown): unknown {
  const code = errorCode(error);
  if (code !== "EPERM" && code !== "EACCES") return error;
  return new LockPermissionError(
    `Lock file ${file} is stale but cannot be removed (${code}): it is another user's, or ` +
      `its directory is not writable. Have its owner remove it, or pass a { dir } of your own.`,
    { cause: error },
  );
}

/**
 * Removes the lock file if, under the breaker lock, it still holds exactly
 * `judged` — the text a verification found stale.
 *
 * @example Break a lock file whose holder is gone
 * ```ts
 * import { breakerKey, breakStaleLock } from "./break_stale_lock.ts";
 * import { lockPaths } from "./lock_file.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const dir = await Deno.makeTempDir();
 * const paths = lockPaths(dir, "x", false);
 * await Deno.writeTextFile(paths.file, "garbage");
 * const breaker = await breakerKey(runtime, "x", null);
 * console.log(await breakStaleLock(runtime, paths, breaker, "garbage")); // "broken"
 * ```
 *
 * @param runtime The runtime adapter.
 * @param paths The lock's paths.
 * @param breaker The breaker lock's key ({@link breakerKey}).
 * @param judged The exact file text judged stale.
 * @returns What was done.
 */
export async function breakStaleLock(
  runtime: Runtime,
  paths: LockPaths,
  breaker: string,
  judged: string,
): Promise<BreakOutcome> {
  const unlock = await holdPortKey(runtime, breaker);
  if (!unlock) return "contended";
  try {
    const current = await readIfExists(runtime, paths.file);
    if (current !== judged) return "changed";
    // A record with a token goes to `.last`, so the next holder's token is
    // larger even though this holder never released; garbage is removed, and
    // so is a record whose holder died before it could outgrow `.last`'s
    // token (the clock behind it): `.last` never goes down.
    const token = parseLockFile(judged)?.token;
    try {
      if (token !== undefined && token > (await lastToken(runtime, paths))) {
        await retireLockFile(runtime, paths);
      } else {
        await removeIfExists(runtime, paths.file);
      }
    } catch (error) {
      throw unremovable(paths.file, error);
    }
    return "broken";
  } finally {
    await unlock();
  }
}
