/**
 * `LockClient`: a client of the lock server (`socketlock serve`), with
 * distlockd's familiar surface — `acquire`, `release`, `lock`, `health` —
 * plus server-side FIFO waiting, leases renewed in the background, and
 * fencing tokens.
 *
 * @module
 */

import { type Runtime, runtime as defaultRuntime } from "../runtime/mod.ts";
import type { HeldLock, LockInfo, RetryOptions } from "../types.ts";
import { acquire as acquireLock } from "../_acquire.ts";
import { GAVE_UP, raceUntil } from "../_race_until.ts";
import {
  LockAbortedError,
  LockBusyError,
  LockError,
  LockLostError,
  LockTimeoutError,
} from "../errors.ts";
import { validateLockName } from "../names.ts";
import { type AcquireAnswer, type AcquireCall, ClientCore } from "./_client_core.ts";
import { DEFAULT_PORT } from "./server_address.ts";
import { jsonReply } from "./_client_ops.ts";
import { checkClientToken, checkServerTtl, serverTarget } from "./server_target.ts";
import { checkTimeout } from "../_backoff.ts";
import { asyncDispose } from "../_async_dispose.ts";
import type { ServerStats } from "./serve.ts";

const checkedNames = new Set<string>();

/** validateLockName, remembered: hot loops acquire the same few names. */
function checkName(name: string): void {
  if (checkedNames.has(name)) return;
  validateLockName(name);
  if (checkedNames.size >= 1_024) checkedNames.clear();
  checkedNames.add(name);
}

/**
 * How long after its timeout a wait stops waiting for the server's own
 * TIMEOUT, which names the latest holder and has withdrawn the wait already:
 * only a server that stalls (or a very slow link) lets this run out.
 */
const TIMEOUT_GRACE_MS = 100;

/** How a wait ended: the server's answer, or the caller gave up on it. */
type Outcome = AcquireAnswer | { status: "aborted" | "expired" };

/**
 * Whichever comes first decides: the answer, the abort, or the end of
 * `timeout` ms (a stalled server never answers). A grant that loses the
 * race is released by the caller.
 */
function untilGivenUp(
  call: AcquireCall,
  runtime: Runtime,
  signal: AbortSignal | undefined,
  timeout: number,
): Promise<Outcome> {
  const due = timeout > 0 && timeout < Infinity
    ? runtime.monotonic() + timeout + TIMEOUT_GRACE_MS
    : Infinity;
  return raceUntil(runtime, call.final, due, signal).then((outcome) =>
    outcome !== GAVE_UP ? outcome : { status: signal?.aborted ? "aborted" : "expired" }
  );
}

/** Options of {@link LockClient}. */
export interface LockClientOptions {
  /** The server's host. Default `127.0.0.1`. */
  host?: string;
  /** The server's port. Default 8888. */
  port?: number;
  /** The shared secret of the server's `--token-file`, if it has one. */
  token?: string;
  /** ms to (re)connect, retries with backoff included, before a call fails. Default 5000. */
  connectTimeout?: number;
}

/** Options of {@link LockClient.acquire} and {@link LockClient.lock}. */
export interface ServerLockOptions {
  /** How long to wait in the server's FIFO queue, in ms. Default: forever. `0`: try once. */
  timeout?: number;
  /** Lease length in ms. Default: the server's (10,000). */
  ttl?: number;
  /** Cancels the wait at once with `LockAbortedError`. */
  signal?: AbortSignal;
}

/** A lease granted by the server (without background renewal). */
export interface ServerLease {
  /** The lock's name. */
  readonly name: string;
  /** The fencing token of this grant. */
  readonly token: number;
  /** The lease length in ms; renew before it runs out. */
  readonly ttl: number;
  /** This process as holder. */
  readonly info: LockInfo;
}

/**
 * A connection to a lock server. All calls share one TCP connection, opened
 * on first use and reopened with backoff if it drops; an idle client never
 * keeps the process alive.
 *
 * @example Take a lock that renews itself while the job runs
 * ```ts
 * import { LockClient } from "jsr:@x/socketlock/server";
 * const client = new LockClient({ host: "127.0.0.1", port: 8888 });
 * await using held = await client.lock("nightly-report", { timeout: 5_000 });
 * held.signal.addEventListener("abort", () => console.error("lock lost!"));
 * console.log("token", held.token);
 * ```
 */
export class LockClient implements AsyncDisposable {
  /** The server's host. */
  readonly host: string;
  /** The server's port. */
  readonly port: number;
  readonly #core: ClientCore;
  readonly #runtime: Runtime;

  /**
   * Creates a client; nothing connects until the first call.
   *
   * @param options Where the server is, and its token.
   * @throws {LockError} If `token` is given and is not a non-empty string.
   */
  constructor(options: LockClientOptions = {}) {
    checkClientToken(options.token);
    this.host = options.host ?? "127.0.0.1";
    this.port = options.port ?? DEFAULT_PORT;
    this.#runtime = defaultRuntime;
    this.#core = new ClientCore({
      hostname: this.host,
      port: this.port,
      token: options.token,
      connectTimeout: options.connectTimeout ?? 5_000,
      runtime: this.#runtime,
    });
  }

  /**
   * Acquires `name`, waiting in the server's FIFO queue up to `timeout` ms.
   * The lease is not renewed: release or {@link LockClient.renew} it within
   * `ttl`, or use {@link LockClient.lock}.
   *
   * @example Acquire, work, release
   * ```ts
   * import { LockClient } from "jsr:@x/socketlock/server";
   * const client = new LockClient({ port: 8888 });
   * const lease = await client.acquire("jobs", { timeout: 1_000, ttl: 30_000 });
   * try { console.log(lease.token); } finally { await client.release("jobs"); }
   * ```
   *
   * @param name The lock's name.
   * @param options Wait, lease length, abort signal.
   * @returns The lease.
   * @throws {LockBusyError} If `timeout` is 0 and the lock is held.
   * @throws {LockTimeoutError} If the wait ran out.
   * @throws {LockAbortedError} If `signal` aborted the wait.
   * @throws {LockError} If `ttl` is not a number of ms from 30 to 2^31 - 1,
   *   `timeout` not a number of ms >= 0, or the server cannot be reached or
   *   refuses.
   */
  async acquire(name: string, options: ServerLockOptions = {}): Promise<ServerLease> {
    checkName(name);
    checkServerTtl(options.ttl);
    checkTimeout(options.timeout);
    const { signal, timeout } = options;
    if (signal?.aborted) throw new LockAbortedError(name, signal.reason);
    const core = this.#core;
    const call = core.acquire(name, timeout ?? Infinity, options.ttl);
    // The race costs a promise and maybe a timer: only for waits that need it.
    const outcome = signal || (timeout ?? 0) > 0
      ? await untilGivenUp(call, this.#runtime, signal, timeout ?? Infinity)
      : await call.final;
    switch (outcome.status) {
      case "granted":
        return outcome.lease;
      case "busy":
        throw new LockBusyError(name, outcome.holder);
      case "timeout":
        throw new LockTimeoutError(name, timeout ?? 0, outcome.holder);
      case "expired":
        call.abandon();
        // Never answered because the server cannot be reached: say that, not "held".
        throw (call.holder ? null : core.unreachable()) ??
          new LockTimeoutError(name, timeout ?? 0, call.holder);
      default: // aborted, or cancelled
        if (outcome.status === "aborted") call.abandon();
        throw new LockAbortedError(name, signal?.reason);
    }
  }

  /**
   * Releases `name` if this client holds it. If {@link LockClient.lock}
   * took it, that lock's `held.signal` aborts with a `LockLostError`.
   *
   * @example Release, and learn whether the lease was still ours
   * ```ts
   * import { LockClient } from "jsr:@x/socketlock/server";
   * const client = new LockClient({ port: 8888 });
   * await client.acquire("jobs", { ttl: 5_000 });
   * console.log(await client.release("jobs")); // true
   * console.log(await client.release("jobs")); // false: not held any more
   * ```
   *
   * @param name The lock's name.
   * @returns true if it was held and is now released; false if this client
   *   did not hold it (any more: its lease may have expired).
   */
  release(name: string): Promise<boolean> {
    const lease = this.#core.grantOf(name);
    if (!lease) return Promise.resolve(false);
    // Taken by lock(): its holder must not go on believing it holds it.
    lease.keeper?.revoke("it was released by LockClient.release()");
    return this.#core.release(lease);
  }

  /**
   * Extends the lease on `name` to `ttl` ms from now.
   *
   * @example Extend a lease during a long step
   * ```ts
   * import { LockClient } from "jsr:@x/socketlock/server";
   * const client = new LockClient({ port: 8888 });
   * await client.acquire("import", { ttl: 10_000 });
   * await client.renew("import", 60_000);
   * await client.release("import");
   * ```
   *
   * @param name The lock's name.
   * @param ttl The new lease length in ms (default: the current one).
   * @returns The renewed lease.
   * @throws {LockLostError} If this client no longer holds `name`.
   * @throws {LockError} If `ttl` is not a number of ms from 30 to 2^31 - 1
   *   (the lease is left as it was), or the server refused for another reason.
   */
  async renew(name: string, ttl?: number): Promise<ServerLease> {
    checkServerTtl(ttl);
    const lease = this.#core.grantOf(name);
    if (!lease || !(await this.#core.renew(lease, ttl))) {
      throw new LockLostError(
        name,
        "this client does not hold it (released, or its lease expired)",
      );
    }
    lease.keeper?.rescheduled();
    return lease;
  }

  /**
   * Takes `name` and keeps it: the lease is renewed every ttl/3 in the
   * background (without keeping the process alive), and `held.signal` aborts
   * with a `LockLostError` no later than the lease's end if a renewal fails.
   * Calls in one process queue FIFO before reaching the server.
   *
   * @example Stop work the moment the lock is lost
   * ```ts
   * import { LockClient } from "jsr:@x/socketlock/server";
   * const client = new LockClient({ port: 8888 });
   * await using held = await client.lock("leader", { ttl: 3_000 });
   * while (!held.signal.aborted) {
   *   await new Promise((resolve) => setTimeout(resolve, 1_000)); // lead
   *   break;
   * }
   * ```
   *
   * @param name The lock's name.
   * @param options Wait, lease length, abort signal, backoff.
   * @returns The held lock; release it, or let `await using` do it.
   * @throws {LockBusyError} If `timeout` is 0 and the lock is held.
   * @throws {LockTimeoutError} If the wait ran out.
   * @throws {LockAbortedError} If `signal` aborted the wait.
   * @throws {LockError} If `ttl` is not a number of ms from 30 to 2^31 - 1.
   */
  async lock(
    name: string,
    options: ServerLockOptions & { retry?: RetryOptions } = {},
  ): Promise<HeldLock> {
    checkName(name);
    checkServerTtl(options.ttl);
    const result = await acquireLock({
      name,
      kind: "server",
      target: serverTarget(this.#core, name, options),
      runtime: this.#runtime,
      wait: options.timeout !== 0,
      timeout: options.timeout,
      signal: options.signal,
      retry: options.retry,
    });
    if (!result.held) throw new LockBusyError(name, result.holder);
    return result.held;
  }

  /**
   * Who holds `name` on the server.
   *
   * @example Show who holds a lock
   * ```ts
   * import { LockClient } from "jsr:@x/socketlock/server";
   * const holder = await new LockClient({ port: 8888 }).status("nightly");
   * console.log(holder ? `pid ${holder.pid} on ${holder.host}` : "free");
   * ```
   *
   * @returns The holder (pid and host as the holder's client reported them), or null.
   */
  async status(name: string): Promise<LockInfo | null> {
    checkName(name);
    return await serverTarget(this.#core, name, {}).inspect();
  }

  /**
   * The server's figures: locks held, waits queued, connections, requests/s.
   *
   * @example Watch the server's load
   * ```ts
   * import { LockClient } from "jsr:@x/socketlock/server";
   * const { held, waiting, opsPerSecond } = await new LockClient({ port: 8888 }).stats();
   * console.log(held, waiting, opsPerSecond);
   * ```
   *
   * @throws {LockError} If the server cannot be reached.
   */
  async stats(): Promise<ServerStats> {
    const reply = await this.#core.request("STATS");
    if (reply.kind !== "OK") throw new LockError(`The lock server refused STATS: ${reply.rest}`);
    return jsonReply(this.#core.server, "STATS", reply.rest) as unknown as ServerStats;
  }

  /**
   * Checks that the server answers.
   *
   * @example Probe the server
   * ```ts
   * import { LockClient } from "jsr:@x/socketlock/server";
   * console.log(await new LockClient({ port: 8888 }).health());
   * ```
   *
   * @returns true if it answered HEALTH; false if it cannot be reached, or
   *   it requires a token this client lacks or has wrong (a client always
   *   proves the token before its first request).
   */
  async health(): Promise<boolean> {
    try {
      return (await this.#core.request("HEALTH")).kind === "OK";
    } catch {
      return false;
    }
  }

  /**
   * Closes the connection. Locks held through it are released by the server
   * and their `held.signal`s abort.
   */
  close(): Promise<void> {
    this.#core.close();
    return Promise.resolve();
  }

  /** Closes the client (for `await using`). */
  [asyncDispose](): Promise<void> {
    return this.close();
  }
}
