/**
 * Where a port lock lives, computed exactly as Python's k3portlock does so
 * both exclude each other: on Linux the abstract unix socket
 * `"\0/portlock/" + key`; elsewhere three TCP ports on 127.0.0.1 starting at
 * `int(sha1(key).hexdigest(), 16) % 20000 + 40000`.
 *
 * @module
 */

import { InvalidLockNameError } from "../errors.ts";

/** The abstract-socket prefix k3portlock binds under (a NUL, then `/portlock/`). */
export const ABSTRACT_PREFIX = "\0/portlock/";

/** How many TCP ports a lock spans off Linux; holding a majority holds the lock. */
export const PORT_COUNT = 3;

/** The first port of k3portlock's range. */
export const PORT_BASE = 40000;

/** The size of k3portlock's port range. */
export const PORT_SPAN = 20000;

/**
 * The longest key, in UTF-8 bytes. A unix socket address has 108 bytes and
 * `"\0/portlock/"` takes 11, so k3portlock (and Node and Deno) bind keys of
 * up to 97 bytes on Linux; Bun keeps one byte for a terminating NUL, so 96
 * is what every runtime binds. Longer keys are refused on every OS, so a
 * program behaves the same everywhere.
 */
export const MAX_PORT_KEY_BYTES = 96;

const encoder = new TextEncoder();
const keyBytes = new Uint8Array(MAX_PORT_KEY_BYTES + 1);

/**
 * Checks that `key` fits in k3portlock's abstract socket name.
 *
 * @example Reject a key that cannot be bound on Linux
 * ```ts
 * import { validatePortKey } from "./port_name.ts";
 * validatePortKey("nightly");
 * try { validatePortKey("k".repeat(98)); } catch (e) { console.log((e as Error).name); }
 * ```
 *
 * @param key The lock key.
 * @returns The key, unchanged.
 * @throws {InvalidLockNameError} If the key is longer than 96 UTF-8 bytes.
 */
export function validatePortKey(key: string): string {
  if (typeof key !== "string") {
    throw new InvalidLockNameError(
      String(key),
      "it is not a string",
      `Use any text of at most ${MAX_PORT_KEY_BYTES} UTF-8 bytes, e.g. "nightly-report".`,
    );
  }
  // encodeInto a buffer one byte too long for any key: every socket release
  // checks its breaker lock's key, and encode() would allocate each time.
  const { read, written } = encoder.encodeInto(key, keyBytes);
  if (read < key.length || written > MAX_PORT_KEY_BYTES) {
    const bytes = encoder.encode(key).length;
    throw new InvalidLockNameError(
      key,
      `the port kind binds the unix socket "\\0/portlock/<name>" as k3portlock does, ` +
        `and a ${bytes}-byte name does not fit`,
      `Use at most ${MAX_PORT_KEY_BYTES} bytes with the port kind, or another kind.`,
    );
  }
  return key;
}

/**
 * The Linux abstract socket name of `key`, byte for byte k3portlock's.
 *
 * @example The name Python's `Portlock("nightly")` binds
 * ```ts
 * import { abstractName } from "./port_name.ts";
 * console.log(JSON.stringify(abstractName("nightly"))); // "\u0000/portlock/nightly"
 * ```
 *
 * @param key The lock key.
 * @returns The socket path, starting with NUL.
 */
export function abstractName(key: string): string {
  return ABSTRACT_PREFIX + key;
}

/**
 * The first of the three TCP ports of `key`: k3portlock's
 * `int(sha1(key.encode("utf8")).hexdigest(), 16) % 20000 + 40000`.
 *
 * @example The port Python's `Portlock("mylock")` starts at
 * ```ts
 * import { basePort } from "./port_name.ts";
 * console.log(await basePort("mylock")); // 44655
 * ```
 *
 * @param key The lock key.
 * @returns A port in 40000..59999; the lock also uses the next two.
 */
export async function basePort(key: string): Promise<number> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-1", encoder.encode(key)),
  );
  // The digest read as one big-endian number, reduced as it is read: no BigInt needed.
  let rest = 0;
  for (const byte of digest) rest = (rest * 256 + byte) % PORT_SPAN;
  return PORT_BASE + rest;
}
