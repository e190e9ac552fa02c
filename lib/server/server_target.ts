/**
 * The server kind as a lock target, for `lock(name, { server })`. A try asks
 * the server once; if the name is held, the server queues us (FIFO) and the
 * wait is handed to the generic loop as its wake-up: no polling, and the
 * grant arrives the moment the holder lets go.
 *
 * @module
 */

import type { Runtime } from "../runtime/mod.ts";
import type { Attempt, Grant, KindDriver, LockTarget } from "../_kind.ts";
import type { LockInfo } from "../types.ts";
import { LockError, LockProtocolError } from "../errors.ts";
import { validateLockName } from "../names.ts";
import { checkNumberOption } from "../_backoff.ts";
import { type AcquireAnswer, ClientCore, type ClientLease } from "./_client_core.ts";
import type { LeaseKeeper } from "./_lease_keeper.ts";
import { holderFrom, jsonReply } from "./_client_ops.ts";
import { encodeName } from "./protocol.ts";
import { parseServerAddress } from "./server_address.ts";

/** What a server target takes from the lock options. */
export interface ServerTargetOptions {
  /** ms to wait in all (undefined: forever). */
  timeout?: number;
  /** Lease length in ms (default: the server's). */
  ttl?: number;
}

// A class, whose getter every grant shares: a getter written in an object
// literal gives each grant a hidden class of its own (see ../_lazy_wake.ts).
class ServerGrant implements Grant {
  readonly token: number;
  readonly info: LockInfo;
  #core: ClientCore;
  #lease: ClientLease;
  #keeper: LeaseKeeper;

  constructor(core: ClientCore, lease: ClientLease) {
    this.token = lease.token;
    this.info = lease.info;
    this.#core = core;
    this.#lease = lease;
    this.#keeper = core.keep(lease);
  }

  get lost(): AbortSignal {
    return this.#keeper.signal;
  }

  lostAlready(): boolean {
    return !this.#lease.active;
  }

  async release(): Promise<void> {
    await this.#core.release(this.#lease);
  }
}

function granted(core: ClientCore, lease: ClientLease): Attempt {
  return { acquired: true, grant: new ServerGrant(core, lease) };
}

/**
 * A server-kind target on `core`.
 *
 * @param core The connection to use.
 * @param name The lock's name.
 * @param options Timeout (from when the target is opened) and lease length.
 * @returns The target.
 */
export function serverTarget(
  core: ClientCore,
  name: string,
  options: ServerTargetOptions,
): LockTarget {
  const runtime = core.runtime;
  const opened = runtime.monotonic();
  type Call = ReturnType<ClientCore["acquire"]>;
  let call: Call | null = null;
  let settled: { answer?: AcquireAnswer; error?: unknown } | null = null;
  let holder: LockInfo | null = null;
  let cancelPending = false;
  const deadline = options.timeout === undefined ? Infinity : opened + options.timeout;
  // The pauses waiting for the queued call to settle. A promise per pause,
  // dropped when the pause ends: the loop's reactions do not pile up on the
  // call's one pending promise for as long as the wait lasts (hours).
  const wakers = new Set<() => void>();
  const wakeAll = () => {
    for (const wake of wakers) wake();
    wakers.clear();
  };

  // Drops a server-side wait nobody waits for any more (a grant that got
  // in first is released).
  function abandon(dropped: Call): void {
    if (call === dropped) call = null;
    dropped.abandon();
  }

  function waiting(current: Call): Attempt {
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => wakers.add(wake = resolve));
    return {
      acquired: false,
      holder,
      wake: woken,
      // The server answers the queued call itself (granted, TIMEOUT,
      // CANCELLED, or the connection drops): no polling.
      wakesItself: true,
      // The generic loop calls cancelWake after every pause and then, in the
      // same synchronous run, tries again. Only a cancel not followed by a
      // try (a timeout, an abort, tryLock) withdraws the wait on the server.
      cancelWake: () => {
        wakers.delete(wake);
        cancelPending = true;
        queueMicrotask(() => {
          if (cancelPending && call === current) abandon(current);
        });
      },
    };
  }

  return {
    key: `server:${core.server}:${name}`,
    async tryAcquire(willWait = true): Promise<Attempt> {
      cancelPending = false;
      if (call) {
        if (!settled) return waiting(call);
        call = null;
        const { answer, error } = settled;
        settled = null;
        if (error) throw error;
        if (answer!.status === "granted") return granted(core, answer!.lease);
        return { acquired: false, holder: answer!.holder ?? holder };
      }
      // A caller that will not wait (tryLock, timeout 0) must not queue:
      // wait 0 is answered BUSY or OK, never QUEUED.
      const left = willWait ? Math.max(0, deadline - runtime.monotonic()) : 0;
      const current = core.acquire(name, left, options.ttl);
      // A stalled server's first answer is raced by the generic loop, which
      // undoes this try if it gives up first.
      const first = await current.first;
      if (first.status === "granted") return granted(core, first.lease);
      holder = first.holder;
      if (first.status !== "queued") return { acquired: false, holder };
      call = current;
      settled = null;
      current.final.then(
        (answer) => {
          if (call === current) settled = { answer };
          wakeAll();
        },
        (error) => {
          if (call === current) settled = { error };
          wakeAll();
        },
      );
      return waiting(current);
    },
    unanswered: () => core.unreachable(),
    async inspect(): Promise<LockInfo | null> {
      const reply = await core.request(`STATUS ${encodeName(name)}`);
      if (reply.kind !== "OK") {
        throw new LockError(`The lock server at ${core.server} refused STATUS: ${reply.rest}`);
      }
      const { holder } = jsonReply(core.server, "STATUS", reply.rest);
      if (holder !== null && (typeof holder !== "object" || Array.isArray(holder))) {
        throw new LockProtocolError(
          `The lock server at ${core.server} answered STATUS with a holder that is not an ` +
            `object or null: ${reply.rest.slice(0, 80)}`,
        );
      }
      return holderFrom(name, core.server, holder);
    },
  };
}

const cores = new Map<string, ClientCore>();

/** The process-wide connection to one server (per token), opened on first use. */
export function sharedCore(
  runtime: Runtime,
  hostname: string,
  port: number,
  token: string | undefined,
): ClientCore {
  const key = `${hostname}\0${port}\0${token ?? ""}`;
  let core = cores.get(key);
  if (!core) {
    core = new ClientCore({ hostname, port, token, connectTimeout: 5_000, runtime });
    cores.set(key, core);
  }
  return core;
}

/** The shortest lease a client asks for, in ms: it renews every ttl/3, a round trip each. */
export const MIN_SERVER_TTL = 30;

/**
 * Checks a `ttl` option of the server kind before anything is sent: the
 * server would refuse 0 with a protocol usage line, and grant 1 ms, a lease
 * lost at once.
 *
 * @example Refuse a lease too short to renew
 * ```ts
 * import { checkServerTtl } from "./server_target.ts";
 * checkServerTtl(10_000); // fine
 * try {
 *   checkServerTtl(1);
 * } catch (error) {
 *   console.log((error as Error).message); // Option ttl must be a number from 30 to ...
 * }
 * ```
 *
 * @param ttl The option's value (undefined: the server's default).
 * @throws {LockError} If `ttl` is not a number of ms from 30 to 2^31 - 1.
 */
export function checkServerTtl(ttl: unknown): void {
  checkNumberOption(ttl, "ttl", MIN_SERVER_TTL, 2 ** 31 - 1);
}

/**
 * Checks a client's `token` option before any key is made of it: a string
 * of at least one character, as the server's own token must be (Web Crypto
 * refuses an empty key with an error of its own).
 *
 * @example Refuse an empty token
 * ```ts
 * import { checkClientToken } from "./server_target.ts";
 * checkClientToken("s3cret"); // fine
 * try {
 *   checkClientToken("");
 * } catch (error) {
 *   console.log((error as Error).message); // Option token must be ...
 * }
 * ```
 *
 * @param token The option's value (undefined: the server needs none).
 * @throws {LockError} If `token` is given and is not a non-empty string.
 */
export function checkClientToken(token: unknown): void {
  if (token !== undefined && !(typeof token === "string" && token.length > 0)) {
    throw new LockError(
      `Option token must be the server's shared secret, a non-empty string (omit it for a server ` +
        `without --token-file), got ${token === "" ? "an empty string" : typeof token}.`,
    );
  }
}

/** The server kind for `lock(name, { server: "host:port" })`. */
export const serverDriver: KindDriver = {
  kind: "server",
  open(name, options, runtime) {
    validateLockName(name);
    try {
      checkServerTtl(options.ttl);
      checkClientToken(options.token);
    } catch (error) {
      return Promise.reject(error);
    }
    if (!options.server) {
      return Promise.reject(
        new LockError(
          `The "server" kind needs the lock server's address: lock(name, { server: "host:port" }) ` +
            `(CLI: --server host:port). Start a server with "socketlock serve".`,
        ),
      );
    }
    const { hostname, port } = parseServerAddress(options.server);
    const core = sharedCore(runtime, hostname, port, options.token);
    return Promise.resolve(
      serverTarget(core, name, { timeout: options.timeout, ttl: options.ttl }),
    );
  },
};
