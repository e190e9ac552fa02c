/**
 * The socket kind's options, checked and resolved once per lock: directory,
 * compat mode, key source, timeouts.
 *
 * @module
 */

import type { Runtime } from "../runtime/mod.ts";
import type { LockOptions } from "../types.ts";
import { defaultLockDir, ensureLockDir, makeRealDir } from "../dirs.ts";
import { InvalidLockNameError, LockError } from "../errors.ts";

/** The default bound on connecting to a holder and hearing its answer, in ms (socketlock's 1 s). */
export const DEFAULT_HANDSHAKE_TIMEOUT = 1000;

/** Everything a socket lock needs to know, resolved. */
export interface SocketSettings {
  /** The lock's name. */
  name: string;
  /** The lock directory (exists; checked). */
  dir: string;
  /** Python socketlock's file name, format and probe. */
  compat: boolean;
  /** The HMAC key text (compat: socketlock's signature seed); undefined: the per-user key file. */
  signatureSeed?: string;
  /** Break locks older than this, in ms, even if their holder answers. */
  maxAge?: number;
  /** Bound on each handshake, in ms. */
  handshakeTimeout: number;
}

/**
 * The least `maxAge`, ms: below it, holders that are merely slow for a
 * moment (a GC pause, a busy machine) would have their locks broken.
 */
export const MIN_MAX_AGE_MS = 1_000;

function checkMs(what: string, value: number | undefined, min: number): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !(value >= min) || value === Infinity) {
    throw new LockError(
      `Option ${what} must be a finite number of milliseconds >= ${min}, got ${
        String(value)
      }. Pass e.g. { ${what}: 1000 }.`,
    );
  }
}

// Python socketlock's default directory is the shared temp dir (mode 1777),
// which the strict per-user checks would refuse; compat mode only makes sure
// it is a real directory. Lock files in it are still created 0600. Its real
// path is used: the lock file's path names the breaker lock (no key file is
// shared there), so every spelling of the directory (a symlinked parent,
// "/tmp/", "/tmp/./") must come to the same one.
async function ensureCompatDir(runtime: Runtime, dir: string): Promise<string> {
  await makeRealDir(runtime, dir);
  return await runtime.realPath(dir);
}

/**
 * Checks the socket kind's options and prepares the lock directory.
 *
 * @example Resolve the defaults
 * ```ts
 * import { resolveSocketSettings } from "./socket_settings.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const settings = await resolveSocketSettings(runtime, "nightly", {});
 * console.log(settings.handshakeTimeout); // 1000
 * ```
 *
 * @param runtime The runtime adapter.
 * @param name The lock's name (already validated).
 * @param options The caller's options.
 * @returns The resolved settings.
 * @throws {LockError} If an option has a wrong value.
 * @throws {InvalidLockNameError} If the name starts with "." outside compat mode (its file
 *   would be a compat lock's).
 * @throws {LockPermissionError} If the lock directory is unsafe.
 */
export async function resolveSocketSettings(
  runtime: Runtime,
  name: string,
  options: LockOptions,
): Promise<SocketSettings> {
  if (options.compat !== undefined && options.compat !== "socketlock") {
    throw new LockError(
      `Option compat must be "socketlock" (Python socketlock's format) or absent, got ${
        JSON.stringify(options.compat)
      }.`,
    );
  }
  checkMs("handshakeTimeout", options.handshakeTimeout, 1);
  checkMs("maxAge", options.maxAge, MIN_MAX_AGE_MS);
  if (options.signatureSeed !== undefined && typeof options.signatureSeed !== "string") {
    throw new LockError(`Option signatureSeed must be a string.`);
  }
  const compat = options.compat === "socketlock";
  // Compat lock "x" lives in ".x.lock": a native ".x" in the same directory
  // would share its file, each judging the other's holder by the wrong
  // handshake and breaking under another breaker lock.
  if (!compat && name.startsWith(".")) {
    throw new InvalidLockNameError(
      name,
      `a socket lock's file would be ${name}.lock, which is compat lock ` +
        `"${name.slice(1)}"'s file`,
      `Drop the leading ".", or pass compat: "socketlock" for Python socketlock's lock ` +
        `"${name.slice(1)}".`,
    );
  }
  const dir = compat
    ? await ensureCompatDir(runtime, options.dir ?? runtime.tempDir())
    : await ensureLockDir(runtime, options.dir ?? defaultLockDir(runtime));
  // Optional keys set one by one, not spread in: every lock() call resolves
  // its settings, and a spread costs a temporary object and a copy.
  const settings: SocketSettings = {
    name,
    dir,
    compat,
    handshakeTimeout: options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT,
  };
  // Like socketlock, an empty seed means "no seed".
  if (options.signatureSeed) settings.signatureSeed = options.signatureSeed;
  if (options.maxAge !== undefined) settings.maxAge = options.maxAge;
  return settings;
}
