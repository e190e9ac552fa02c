/**
 * Where a Redis lock lives: its key, its fencing counter, its release
 * channel — and how the JSON value stored under the key reads back as
 * {@link LockInfo}.
 *
 * For a lock key `K` (default `socketlock:<name>`):
 *
 * | what | Redis | content |
 * |---|---|---|
 * | the lock | string `K`, expiring `ttl` ms after the last renewal (a hand-off: its claim time, until the first renewal) | JSON, written once: `{"owner","pid","host","isolate","ttl","lease","acquiredAt","token"}` (owner first; a hand-off adds `"claim"` before `"acquiredAt"` until the first renewal) |
 * | fencing counter | string `K:token`, no TTL | the last token: `max(INCR, server TIME in µs)` per acquisition |
 * | wait queue | sorted set `K:queue`, dropped 60 s after its last use | waiting owners, scored by arrival (server µs) |
 * | waiters' places | hash `K:waiters`, same lifetime | owner → `<live until, server ms> <ttl> <claim ms> <client id> <value head>` |
 * | release channel | pub/sub channel `K:released` | `granted <owner> <token> <acquiredAt>` when a release hands the lock to a waiter, else `released` |
 *
 * @module
 */

import { InvalidLockNameError, LockError } from "../errors.ts";
import type { LockInfo } from "../types.ts";

/** The Redis names one lock uses. */
export interface RedisKeys {
  /** The lock's key. */
  readonly lock: string;
  /** The fencing counter's key: never expires, so tokens keep growing. */
  readonly token: string;
  /** The wait queue: a sorted set of waiting owners, by arrival. */
  readonly queue: string;
  /** The waiters' places: a hash from owner to how long its place lasts and what to store. */
  readonly places: string;
  /** The pub/sub channel a release is announced on. */
  readonly channel: string;
}

/** The longest key accepted, in UTF-8 bytes: keys are names, not payloads. */
export const MAX_KEY_BYTES = 1024;

/**
 * The default key of the lock `name`: `socketlock:<name>`.
 *
 * @example Find a lock's key
 * ```ts
 * import { defaultRedisKey } from "jsr:@x/socketlock/redis";
 * console.log(defaultRedisKey("nightly")); // "socketlock:nightly"
 * ```
 *
 * @param name The lock's name.
 * @returns Its key.
 */
export function defaultRedisKey(name: string): string {
  return `socketlock:${name}`;
}

/** The suffixes of a lock's other keys (see {@link redisKeys}), and what each is. */
const DERIVED: [string, string][] = [
  [":token", "fencing counter"],
  [":queue", "wait queue"],
  [":waiters", "waiters' places"],
  [":released", "release channel"],
];

/** The other lock whose key `key` derives from, and which of its keys it is, or null. */
function derivedFrom(key: string): { base: string; what: string; suffix: string } | null {
  for (const [suffix, what] of DERIVED) {
    if (key.endsWith(suffix)) return { base: key.slice(0, -suffix.length), what, suffix };
  }
  return null;
}

/**
 * The key of lock `name`: `key` if given (checked), else its default key.
 * A key ending in `:token`, `:queue`, `:waiters` or `:released` is refused:
 * it is also one of another lock's keys (lock `n`'s counter is the key of
 * lock `n:token`), and the two would block each other for good.
 *
 * @example The key of a lock, by default or given
 * ```ts
 * import { lockKeyFor } from "./key_layout.ts";
 * console.log(lockKeyFor("nightly", undefined)); // "socketlock:nightly"
 * console.log(lockKeyFor("nightly", "LOCK:nightly")); // "LOCK:nightly"
 * ```
 *
 * @param name The lock's name (already validated).
 * @param key The caller's `key` option, if any.
 * @returns The lock's key.
 * @throws {InvalidLockNameError} If the default key of `name` is another lock's key.
 * @throws {LockError} If `key` cannot be used.
 */
export function lockKeyFor(name: string, key: unknown): string {
  if (key !== undefined) return validateRedisKey(key);
  const derived = defaultRedisKey(name);
  const other = derivedFrom(derived);
  if (other) {
    throw new InvalidLockNameError(
      name,
      `its Redis key "${derived}" is also the ${other.what} of lock "${
        name.slice(0, -other.suffix.length)
      }"`,
      `Use a name that does not end in "${other.suffix}", or pass { key }.`,
    );
  }
  return derived;
}

/**
 * The names of the lock stored under `key`.
 *
 * @example See where a lock keeps its fencing counter
 * ```ts
 * import { redisKeys } from "jsr:@x/socketlock/redis";
 * console.log(redisKeys("LOCK:billing").token); // "LOCK:billing:token"
 * ```
 *
 * @param key The lock's key (see {@link validateRedisKey}).
 * @returns The lock key, its counter, its wait queue and its channel.
 */
export function redisKeys(key: string): RedisKeys {
  return {
    lock: key,
    token: `${key}:token`,
    queue: `${key}:queue`,
    places: `${key}:waiters`,
    channel: `${key}:released`,
  };
}

/**
 * Checks a caller-given key: a non-empty string of at most 1024 bytes, not
 * ending in a suffix of another lock's keys (`:token`, `:queue`, `:waiters`,
 * `:released`).
 *
 * @param key The key.
 * @returns The key.
 * @throws {LockError} If the key cannot be used.
 */
export function validateRedisKey(key: unknown): string {
  if (typeof key !== "string") {
    throw new LockError(
      `The Redis key must be a string, got ${typeof key}. Pass e.g. key: "LOCK:myapp".`,
    );
  }
  if (key.length === 0) {
    throw new LockError(`The Redis key is empty. Pass e.g. key: "LOCK:myapp", or omit it.`);
  }
  const bytes = new TextEncoder().encode(key).length;
  if (bytes > MAX_KEY_BYTES) {
    throw new LockError(
      `The Redis key is ${bytes} bytes long (at most ${MAX_KEY_BYTES}). Use a short key.`,
    );
  }
  const other = derivedFrom(key);
  if (other) {
    throw new LockError(
      `The Redis key "${key}" is also the ${other.what} of the lock under "${other.base}". ` +
        `Use a key that does not end in "${other.suffix}".`,
    );
  }
  return key;
}

const decoder = new TextDecoder();

/** A reply as a string (clients may hand back bytes). */
export function replyString(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return decoder.decode(value);
  return null;
}

/** A reply as a number, or NaN. */
export function replyNumber(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  const text = replyString(value);
  return text === null ? NaN : Number(text);
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

/**
 * Reads the value stored under a lock key as the holder's info. A value
 * socketlock did not write (another tool's lock on the same key) gives a
 * holder with pid 0 and `foreign: true`: it is respected, never touched.
 *
 * @param name The lock's name.
 * @param key The lock's key.
 * @param value The stored value.
 * @param pttl The key's remaining time to live, in ms.
 * @param now The server's time, epoch ms, if known (gives `renewedAt`).
 * @param waiters How many waiters are queued, if known.
 * @returns The holder's info.
 */
export function holderInfo(
  name: string,
  key: string,
  value: unknown,
  pttl: unknown,
  now?: unknown,
  waiters?: unknown,
): LockInfo {
  const text = replyString(value) ?? "";
  const expiresIn = replyNumber(pttl);
  let stored: Record<string, unknown> | null = null;
  try {
    const parsed = JSON.parse(text);
    if (typeof parsed === "object" && parsed && typeof parsed.owner === "string") stored = parsed;
  } catch {
    // Not JSON: another tool's value.
  }
  if (!stored) {
    return {
      kind: "redis",
      name,
      pid: 0,
      host: "",
      acquiredAt: 0,
      key,
      owner: null,
      foreign: true,
      expiresIn,
    };
  }
  const ttl = numberOr(stored.ttl, 0);
  // Every renewal resets the expiry to exactly ttl: it happened ttl - pttl
  // ago. A lock just handed over lives its claim time instead until its
  // first renewal: set claim - pttl ago, when it was handed over.
  const lived = numberOr(stored.claim, ttl);
  const serverNow = replyNumber(now);
  const renewedAt = Number.isFinite(serverNow) && expiresIn >= 0 && lived > 0
    ? serverNow - (lived - expiresIn)
    : undefined;
  return {
    kind: "redis",
    name,
    pid: numberOr(stored.pid, 0),
    host: typeof stored.host === "string" ? stored.host : "",
    ...(typeof stored.isolate === "string" ? { isolate: stored.isolate } : {}),
    acquiredAt: numberOr(stored.acquiredAt, 0),
    token: numberOr(stored.token, 0),
    key,
    owner: stored.owner,
    ttl,
    expiresIn,
    ...(renewedAt === undefined ? {} : { renewedAt }),
    ...(waiters === undefined ? {} : { waiters: replyNumber(waiters) }),
  };
}
