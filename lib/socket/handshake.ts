/**
 * The words exchanged between a contender and a holder on the holder's
 * port, and the cryptography behind them.
 *
 * Keyed handshake (ours, the default). The contender sends
 * `SOCKETLOCK_HMAC1 <lock id> <challenge>\n` (a fresh 128-bit challenge);
 * the holder of that lock id answers `SOCKETLOCK_OK <hmac>\n`, the hex
 * HMAC-SHA256 under the per-user key of `socketlock-hmac1\n<name>\n<id>\n<challenge>`,
 * and keeps the connection open so the contender learns of the release the
 * moment it closes. Only a process holding the key can answer, and the
 * answer is bound to one name and one acquisition (the id in the lock file).
 *
 * Python socketlock's handshake (kept for interop): the checker sends the 16
 * bytes `SOCKETLOCK_CHECK`, the holder answers `SOCKETLOCK_ACTIVE:` and the
 * first 16 hex digits of `sha256(seed)` (seed: `signature_seed` or
 * `"socketlock_" + name`), then closes. That answer is a public constant for
 * the default seed, so anyone can forge it; we only rely on it in compat mode.
 *
 * `SOCKETLOCK_WAIT1\n` (ours) asks a compat holder of ours to keep the
 * connection open until its release; it acknowledges with `SOCKETLOCK_WAITING\n`.
 *
 * All three requests start with a distinct 16-byte word, so a holder can tell
 * them apart from the first 16 bytes, and no line is longer than
 * {@link MAX_LINE} bytes: a peer sending more, or too little, is cut off.
 *
 * @module
 */

/** Python socketlock's probe: exactly these 16 bytes, no newline. */
export const CHECK = "SOCKETLOCK_CHECK";
/** The prefix of Python socketlock's answer. */
export const ACTIVE_PREFIX = "SOCKETLOCK_ACTIVE:";
/** Our keyed request's first word (16 bytes, like {@link CHECK}). */
export const HMAC_HELLO = "SOCKETLOCK_HMAC1";
/** Our request to be told of a compat holder's release. */
export const WAIT = "SOCKETLOCK_WAIT1";
/** A holder's answer to a keyed request, before the hex HMAC. */
export const OK_PREFIX = "SOCKETLOCK_OK ";
/** A holder's answer when it holds no lock with the asked id. */
export const NO = "SOCKETLOCK_NO\n";
/** A compat holder's acknowledgement of {@link WAIT}. */
export const WAITING = "SOCKETLOCK_WAITING\n";
/** The longest request or answer line, in bytes; anything longer is refused. */
export const MAX_LINE = 128;

import { type HmacKey, hmacKey, hmacSha256, sha256 } from "./_hmac_sha256.ts";

export type { HmacKey } from "./_hmac_sha256.ts";

const encoder = new TextEncoder();
const WORD = 16;

/**
 * Random bytes as lowercase hex.
 *
 * @example A fresh 128-bit challenge
 * ```ts
 * import { randomHex } from "./handshake.ts";
 * console.log(randomHex(16).length); // 32
 * ```
 *
 * @param bytes How many random bytes.
 * @returns Twice as many hex digits.
 */
export function randomHex(bytes: number): string {
  if (bytes > POOL_SIZE) return toHex(crypto.getRandomValues(new Uint8Array(bytes)));
  if (poolAt + bytes > POOL_SIZE) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  const hex = toHex(pool.subarray(poolAt, poolAt + bytes));
  poolAt += bytes;
  return hex;
}

// Random bytes are drawn from the system's CSPRNG a kilobyte at a time and
// each byte is used once: one call per 64 ids instead of one per id (Node's
// getRandomValues costs ~5 µs a call, a tenth of an acquisition).
const POOL_SIZE = 1024;
const pool = new Uint8Array(POOL_SIZE);
let poolAt = POOL_SIZE;

// Every acquisition and handshake formats ids, challenges and MACs: a table
// and string concatenation cost a tenth of Array.from + padStart + join.
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (let i = 0; i < bytes.length; i++) hex += HEX[bytes[i]];
  return hex;
}

/** A parsed request, or what is missing. */
export type Request =
  | { type: "check" }
  | { type: "wait" }
  | { type: "hmac"; id: string; challenge: string }
  | { type: "incomplete" }
  | { type: "invalid" };

const HEX32 = /^[0-9a-f]{32}$/;

/**
 * Parses what a contender sent so far (ASCII text).
 *
 * @example Tell a Python probe from our keyed request
 * ```ts
 * import { parseRequest } from "./handshake.ts";
 * console.log(parseRequest("SOCKETLOCK_CHECK").type); // "check"
 * console.log(parseRequest("SOCKETLOCK_HMAC1 ").type); // "incomplete"
 * ```
 *
 * @param text Everything received on the connection.
 * @returns The request, `incomplete` if more is needed, or `invalid`.
 */
export function parseRequest(text: string): Request {
  const word = text.slice(0, WORD);
  if (![CHECK, HMAC_HELLO, WAIT].some((w) => w.startsWith(word))) return { type: "invalid" };
  if (text.length < WORD) return { type: "incomplete" };
  if (word === CHECK) return { type: "check" };
  const end = text.indexOf("\n");
  if (end < 0) return text.length > MAX_LINE ? { type: "invalid" } : { type: "incomplete" };
  const line = text.slice(0, end);
  if (word === WAIT) return line === WAIT ? { type: "wait" } : { type: "invalid" };
  const [, id, challenge, extra] = line.split(" ");
  if (extra !== undefined || !HEX32.test(id ?? "") || !HEX32.test(challenge ?? "")) {
    return { type: "invalid" };
  }
  return { type: "hmac", id, challenge };
}

/**
 * The keyed request line for lock `id` with a fresh `challenge`.
 *
 * @example Build a request
 * ```ts
 * import { hmacRequest, randomHex } from "./handshake.ts";
 * console.log(hmacRequest(randomHex(16), randomHex(16)).length); // 83
 * ```
 *
 * @param id The lock id from the lock file (32 hex digits).
 * @param challenge 32 fresh random hex digits.
 * @returns The line to send.
 */
export function hmacRequest(id: string, challenge: string): string {
  return `${HMAC_HELLO} ${id} ${challenge}\n`;
}

/**
 * Prepares an HMAC-SHA256 key once for many signatures.
 *
 * @example Prepare a key
 * ```ts
 * import { importHmacKey } from "./handshake.ts";
 * const key = importHmacKey(crypto.getRandomValues(new Uint8Array(32)));
 * console.log(typeof key); // "object"
 * ```
 *
 * @param secret The raw key bytes.
 * @returns The prepared key.
 */
export function importHmacKey(secret: Uint8Array): HmacKey {
  return hmacKey(secret);
}

/**
 * The holder's proof for one challenge: hex HMAC-SHA256 over the lock's name,
 * its id and the challenge.
 *
 * @example Sign a challenge
 * ```ts
 * import { hmacAnswer, importHmacKey, randomHex } from "./handshake.ts";
 * const key = importHmacKey(new Uint8Array(32));
 * console.log(hmacAnswer(key, "nightly", randomHex(16), randomHex(16)).length); // 64
 * ```
 *
 * @param key The HMAC key.
 * @param name The lock's name.
 * @param id The acquisition's id.
 * @param challenge The contender's challenge.
 * @returns 64 hex digits.
 */
export function hmacAnswer(
  key: HmacKey,
  name: string,
  id: string,
  challenge: string,
): string {
  const message = encoder.encode(`socketlock-hmac1\n${name}\n${id}\n${challenge}`);
  return toHex(hmacSha256(key, message));
}

/**
 * A public fingerprint of an HMAC key, recorded in lock files so that a
 * contender with another key (another `signatureSeed`) knows it cannot
 * judge the holder by its answer, rather than taking it for an imposter.
 *
 * @example Fingerprint a key
 * ```ts
 * import { importHmacKey, keyFingerprint } from "./handshake.ts";
 * console.log(keyFingerprint(importHmacKey(new Uint8Array(32))).length); // 16
 * ```
 *
 * @param key The HMAC key.
 * @returns 16 hex digits.
 */
export function keyFingerprint(key: HmacKey): string {
  return toHex(hmacSha256(key, encoder.encode("socketlock-key-id"))).slice(0, 16);
}

/**
 * Python socketlock's answer to {@link CHECK} for `name`:
 * `SOCKETLOCK_ACTIVE:` + the first 16 hex digits of `sha256(seed)`.
 *
 * @example The answer Python's `AsyncSocketLock("nightly")` gives
 * ```ts
 * import { probeAnswer } from "./handshake.ts";
 * console.log(probeAnswer("nightly"));
 * ```
 *
 * @param name The lock's name.
 * @param seed socketlock's `signature_seed`; default `"socketlock_" + name`.
 * @returns The exact answer text.
 */
export function probeAnswer(name: string, seed?: string): string {
  return ACTIVE_PREFIX + toHex(sha256(encoder.encode(seed || `socketlock_${name}`))).slice(0, 16);
}

/**
 * Compares two strings in time independent of where they differ.
 *
 * @example Compare answers
 * ```ts
 * import { timingSafeEqual } from "./handshake.ts";
 * console.log(timingSafeEqual("abc", "abc"), timingSafeEqual("abc", "abd")); // true false
 * ```
 *
 * @param a One string.
 * @param b The other.
 * @returns true if equal.
 */
export function timingSafeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
