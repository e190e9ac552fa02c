/**
 * Types shared by every lock kind: what a holder looks like, what a held lock
 * offers, and the options every `lock()` call takes.
 *
 * @module
 */

/** The lock mechanisms behind the one API (more kinds join as they land). */
export type LockKind = "socket" | "folder" | "port" | "redis" | "server";

/**
 * What is known about the holder of a lock.
 *
 * Every kind fills `kind`, `name`, `pid`, `host` and `acquiredAt`; kinds add
 * their own fields (the socket kind its `port`, the folder kind its `bid`).
 */
export interface LockInfo {
  /** The mechanism holding the lock. */
  kind: LockKind;
  /** The lock's name. */
  name: string;
  /** The holder's process id (0 when the kind cannot tell). */
  pid: number;
  /** The holder's host name ("" when the kind cannot tell). */
  host: string;
  /** When the lock was taken, in epoch milliseconds (0 when unknown). */
  acquiredAt: number;
  /** The fencing token of this acquisition, when known. */
  token?: number;
  /** Kind-specific details (ports, bid files, lease expiry, ...). */
  [detail: string]: unknown;
}

/** Capped exponential backoff with jitter, used while waiting for a lock. */
export interface RetryOptions {
  /** First delay between attempts, in ms. Default 1. */
  minDelay?: number;
  /** Largest delay between attempts before jitter, in ms (with jitter j, up to maxDelay·(1 + j)). Default 100. */
  maxDelay?: number;
  /** Growth factor of the delay after each failed attempt. Default 2. */
  factor?: number;
  /** Fraction of each delay that is randomised (0..1). Default 0.5. */
  jitter?: number;
}

/** Options every kind understands. */
export interface LockOptions {
  /** Which mechanism to use. Default `"socket"`. */
  kind?: LockKind;
  /**
   * Directory holding local locks. Default: `$XDG_RUNTIME_DIR/socketlock`,
   * else `<temp dir>/socketlock-<uid>`, created 0700.
   */
  dir?: string;
  /** How long `lock()` waits, in ms. Default: forever. `0` means try once. */
  timeout?: number;
  /** Cancels a wait at once with `LockAbortedError`. */
  signal?: AbortSignal;
  /** Backoff between attempts while waiting. */
  retry?: RetryOptions;
  /**
   * Socket kind: the HMAC key holders prove they know (any string). Default:
   * a random per-user key kept 0600 in the lock directory. With
   * `compat: "socketlock"` it is Python socketlock's `signature_seed`.
   */
  signatureSeed?: string;
  /**
   * Socket kind: `"socketlock"` uses Python socketlock's file name
   * (`<dir>/.<name>.lock`, `dir` defaulting to the temp dir), JSON and public
   * `SOCKETLOCK_CHECK` handshake, so Python and TypeScript processes exclude
   * each other. Its handshake can be forged by anyone; leave it off otherwise.
   */
  compat?: "socketlock";
  /**
   * Socket kind: a lock older than this (ms, at least 1000) may be broken
   * even though its holder still answers — unsafe for that holder, so off by
   * default. This is Python socketlock's `timeout`.
   */
  maxAge?: number;
  /**
   * Socket kind: how long a contender waits for the recorded holder to
   * connect and answer, in ms. Default 1000. A holder that does not answer
   * within it is broken only if its pid is gone (or reused): a busy one
   * keeps its lock, and contenders wait for it.
   */
  handshakeTimeout?: number;
  /**
   * Redis kind: your Redis client — an `ioredis` client, a connected `redis`
   * (node-redis) client, Bun's `RedisClient`, or a `RedisAdapter` — or an
   * array of clients on independent masters for Redlock. Setting it selects
   * `kind: "redis"`. The lock's key is `socketlock:<name>`.
   */
  redis?: unknown;
  /**
   * Server kind: the lock server's address, `"host:port"` (a server started
   * with `socketlock serve`). Setting it selects `kind: "server"`.
   */
  server?: string;
  /**
   * Server kind: the shared secret in the server's `--token-file`; the client
   * proves it knows it with an HMAC challenge (it never crosses the wire).
   */
  token?: string;
  /**
   * Lease kinds (redis, server): how soon a crashed holder's lock frees itself, in
   * ms. While held, the lock is renewed every `ttl / 3` in the background;
   * `held.signal` aborts if no renewal is confirmed in time. Default 30 000
   * for redis; the server's default (10 000) for server.
   */
  ttl?: number;
}

/**
 * A lock that is held. Release it with `release()`, or let `await using`
 * release it at scope exit.
 */
export interface HeldLock extends AsyncDisposable {
  /** The lock's name. */
  readonly name: string;
  /** The mechanism holding it. */
  readonly kind: LockKind;
  /**
   * The fencing token: larger for every later acquisition of the same name,
   * so a resource can reject writes from a holder that lost its lock — as
   * long as the kind's record of the last token survives, or else the host's
   * clock does not step back (the README says which, per kind).
   */
  readonly token: number;
  /** Who holds it: this process, with kind-specific details. */
  readonly info: LockInfo;
  /** Aborted (with a `LockLostError`) if the lock is lost while held. */
  readonly signal: AbortSignal;
  /**
   * Releases the lock. Calling it again once it succeeded does nothing; if
   * it failed (Redis or the lock server unreachable, a file error), calling
   * it again tries again. Other callers in this process go on either way.
   */
  release(): Promise<void>;
}
