/**
 * The port kind as a lock target: the lock is held by binding k3portlock's
 * address for the name (Linux: one abstract unix socket; elsewhere 2 of 3
 * TCP ports on 127.0.0.1). The OS unbinds it when the holder dies, so there
 * is nothing stale to clean up and no file at all.
 *
 * Our holders also listen on what they bind and greet whoever connects, so a
 * waiter can keep a connection open and retry the moment it closes instead
 * of polling. Python's k3portlock binds without listening; its holders are
 * waited for with backoff.
 *
 * @module
 */

import {
  type Connection,
  errorCode,
  type Listener,
  type Runtime,
  type SocketAddress,
} from "../runtime/mod.ts";
import type { Attempt, KindDriver, LockTarget } from "../_kind.ts";
import type { LockInfo } from "../types.ts";
import { abstractName, basePort, PORT_COUNT, validatePortKey } from "./port_name.ts";
import { FencingTokens, plausibleToken } from "../_fencing_tokens.ts";
import { preciseWallClock } from "../_precise_wall_clock.ts";
import { lazyWakeAttempt } from "../_lazy_wake.ts";

/** How the lock is bound: k3portlock uses an abstract socket on Linux only. */
export type PortMode = "abstract" | "tcp";

/** Closes listeners; resolves once their addresses are free. */
function closeAll(listeners: Listener[]): Promise<void> {
  // One listener (Linux): no Promise.all to wait through.
  if (listeners.length === 1) return listeners[0].close();
  return Promise.all(listeners.map((listener) => listener.close())).then(() => {});
}

/**
 * The mode k3portlock uses on this OS.
 *
 * @example Where port locks live here
 * ```ts
 * import { portModeFor } from "./port_target.ts";
 * import { runtime } from "../runtime/mod.ts";
 * console.log(portModeFor(runtime)); // "abstract" on Linux
 * ```
 *
 * @param runtime The runtime adapter.
 * @returns `"abstract"` on Linux, else `"tcp"`.
 */
export function portModeFor(runtime: Runtime): PortMode {
  return runtime.platform === "linux" ? "abstract" : "tcp";
}

// Sent by our holders on every accepted connection: a waiter only trusts a
// connection's close as "released" after seeing it, so an unrelated service
// on a TCP port (closing at once) cannot make waiters spin.
const GREETING = "PORTLOCK_HELD ";
const GREETING_MAX = 64;
const WATCH_TIMEOUT_MS = 250;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// A kind without files: tokens are wall-clock microseconds, above any token
// this process issued or saw a holder use. Across processes they grow as
// long as clocks agree to within a hand-off (~100 µs).
const tokens = new FencingTokens(preciseWallClock);

// Without an await for an abstract name: every socket release binds one.
function addressesOf(key: string, mode: PortMode): SocketAddress[] | Promise<SocketAddress[]> {
  if (mode === "abstract") {
    return [{ transport: "unix", path: abstractName(key) } as SocketAddress];
  }
  return tcpAddressesOf(key);
}

async function tcpAddressesOf(key: string): Promise<SocketAddress[]> {
  const base = await basePort(key);
  return Array.from({ length: PORT_COUNT }, (_, i): SocketAddress => ({
    transport: "tcp",
    hostname: "127.0.0.1",
    port: base + i,
  }));
}

async function bindOne(
  runtime: Runtime,
  address: SocketAddress,
  onConnection: (conn: Connection) => void,
): Promise<Listener | null> {
  try {
    const listener = await runtime.listen(address, onConnection);
    listener.unref();
    return listener;
  } catch (error) {
    if (errorCode(error) === "EADDRINUSE") return null;
    throw error;
  }
}

/**
 * Binds a majority of `addresses` (all of one, 2 of 3); returns the
 * listeners, or null (after unbinding a minority) if another holder has them.
 */
async function bindMajority(
  runtime: Runtime,
  addresses: SocketAddress[],
  onConnection: (conn: Connection) => void,
): Promise<Listener[] | null> {
  if (addresses.length === 1) {
    const only = await bindOne(runtime, addresses[0], onConnection);
    return only ? [only] : null;
  }
  const results = await Promise.allSettled(
    addresses.map((address) => bindOne(runtime, address, onConnection)),
  );
  const bound = results.flatMap((r) => r.status === "fulfilled" && r.value ? [r.value] : []);
  const failure = results.find((r) => r.status === "rejected");
  if (failure || bound.length * 2 <= addresses.length) {
    await closeAll(bound);
    if (failure) throw (failure as PromiseRejectedResult).reason;
    return null;
  }
  return bound;
}

/** Waits for a holder's greeting on `conn`; its token, or null on anything else. */
function awaitGreeting(runtime: Runtime, conn: Connection): Promise<number | null> {
  return new Promise((resolve) => {
    let text = "";
    const timer = runtime.setTimer(() => resolve(null), WATCH_TIMEOUT_MS);
    conn.onClose(() => {
      timer.clear();
      resolve(null);
    });
    conn.onData((chunk) => {
      text += decoder.decode(chunk);
      const end = text.indexOf("\n");
      if (end < 0 && text.length < GREETING_MAX) return;
      timer.clear();
      const line = end < 0 ? "" : text.slice(0, end);
      const token = Number(line.slice(GREETING.length));
      resolve(line.startsWith(GREETING) && Number.isSafeInteger(token) ? token : null);
      conn.onData(() => {});
    });
  });
}

/**
 * Connects to the holder and resolves when it lets go. Never resolves if no
 * holder of ours answers (a Python holder, or a stranger on a TCP port):
 * the waiter's backoff covers those.
 */
function watchHolder(
  runtime: Runtime,
  addresses: SocketAddress[],
  onToken: (token: number) => void,
): { wake: Promise<void>; cancel: () => void } {
  let cancelled = false;
  let current: Connection | null = null;
  const wake = new Promise<void>((resolve) => {
    (async () => {
      for (const address of addresses) {
        let conn: Connection;
        try {
          conn = await runtime.connect(address, WATCH_TIMEOUT_MS);
        } catch {
          continue;
        }
        current = conn;
        if (cancelled) return conn.close();
        const token = await awaitGreeting(runtime, conn);
        if (token === null || cancelled) {
          conn.close();
          continue;
        }
        onToken(token);
        conn.onClose(resolve);
        return;
      }
    })().catch(() => {});
  });
  return {
    wake,
    cancel() {
      cancelled = true;
      current?.close();
    },
  };
}

/**
 * Binds the port lock `key` for a short critical section (no waiters, no
 * token): used by the socket kind as its OS-released breaker lock.
 *
 * @example A short critical section
 * ```ts
 * import { holdPortKey } from "./port_target.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const unlock = await holdPortKey(runtime, "my-section");
 * if (unlock) await unlock();
 * ```
 *
 * @param runtime The runtime adapter.
 * @param key The k3portlock key (at most 96 UTF-8 bytes).
 * @param mode Abstract socket or TCP ports.
 * @returns A release function, or null if another process holds the key.
 */
export async function holdPortKey(
  runtime: Runtime,
  key: string,
  mode: PortMode = portModeFor(runtime),
): Promise<(() => Promise<void>) | null> {
  const listeners = await bindMajority(
    runtime,
    await addressesOf(validatePortKey(key), mode),
    closeAtOnce,
  );
  if (!listeners) return null;
  return () => closeAll(listeners);
}

// A bare key lock greets nobody: whoever connects is let go at once.
function closeAtOnce(conn: Connection): void {
  conn.close();
}

/**
 * A port-kind target for `key`. Its fencing tokens are wall-clock
 * microseconds (there is no file to keep a counter in), raised above any
 * token this process issued or saw a holder announce.
 *
 * @example Try a port lock once, below the public API
 * ```ts
 * import { portTarget } from "./port_target.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const attempt = await portTarget(runtime, "x").tryAcquire();
 * if (attempt.acquired) await attempt.grant.release();
 * ```
 *
 * @param runtime The runtime adapter.
 * @param key The k3portlock key (at most 96 UTF-8 bytes).
 * @param mode Abstract socket or TCP ports; defaults to what k3portlock uses on this OS.
 * @returns The target.
 * @throws {InvalidLockNameError} If the key does not fit a unix socket address.
 */
export function portTarget(
  runtime: Runtime,
  key: string,
  mode: PortMode = portModeFor(runtime),
): LockTarget {
  validatePortKey(key);
  let addresses: SocketAddress[] | null = null;
  let seenToken = 0;
  const resolve = async () => addresses ??= await addressesOf(key, mode);
  const info = (pid: number, acquiredAt: number, token?: number): LockInfo => ({
    kind: "port",
    name: key,
    pid,
    host: pid ? runtime.hostname() : "",
    acquiredAt,
    ...(token === undefined ? {} : { token }),
    mode,
  });

  return {
    key: `port:${key}`,
    async tryAcquire(): Promise<Attempt> {
      const targets = addresses ?? await resolve();
      const conns = new Set<Connection>();
      let held = 0; // the token, once held (0 while binding)
      // A waiter learns a floor for its own token from the greeting, so one
      // that connects before the token exists is greeted once it does.
      const greet = (conn: Connection) => conn.write(encoder.encode(`${GREETING}${held}\n`));
      const listeners = await bindMajority(runtime, targets, (conn) => {
        conn.unref();
        conn.onData(() => {}); // a waiter has nothing to say; never buffer it
        if (held) greet(conn);
        conns.add(conn);
        conn.onClose(() => conns.delete(conn));
      });
      if (!listeners) {
        for (const conn of conns) conn.close(); // accepted by a minority we gave back
        // Opened only when the caller waits: tryLock() pays no connect.
        let watch: ReturnType<typeof watchHolder> | null = null;
        return lazyWakeAttempt(
          null,
          () =>
            // Anyone can bind the name and greet: a token no holder of ours
            // could have (decades ahead, near 2^53) is not taken up as a floor.
            (watch = watchHolder(runtime, targets, (t) => {
              seenToken = Math.max(seenToken, plausibleToken(t, preciseWallClock() * 1000));
            })).wake,
          () => watch?.cancel(),
        );
      }
      let token: number;
      try {
        token = held = tokens.next(seenToken);
      } catch (error) {
        await closeAll(listeners);
        for (const conn of conns) conn.close();
        throw error;
      }
      for (const conn of conns) greet(conn);
      return {
        acquired: true,
        grant: {
          token,
          info: info(runtime.pid, runtime.now(), token),
          async release() {
            await closeAll(listeners);
            for (const conn of conns) conn.close();
          },
        },
      };
    },
    async inspect() {
      // A port lock has no holder record: binding for a moment is the only
      // way to tell (as k3portlock itself would).
      const targets = await resolve();
      const listeners = await bindMajority(runtime, targets, (conn) => conn.close());
      if (!listeners) return info(0, 0);
      await closeAll(listeners);
      return null;
    },
  };
}

/**
 * The port kind for `lock(name, { kind: "port" })`: k3portlock's binding of
 * `name`. `inspect()` can only say held or free: no holder details exist.
 *
 * @example Open a target through the driver
 * ```ts
 * import { portDriver } from "./port_target.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const target = await portDriver.open("x", {}, runtime);
 * console.log(await target.inspect()); // null when free
 * ```
 */
export const portDriver: KindDriver = {
  kind: "port",
  open(name, _options, runtime) {
    // A target only caches its addresses and the largest token seen, so one
    // per name serves every lock() call (the port kind's whole cost is a few
    // microseconds: rebuilding it each time showed).
    let byName = cachedTargets.get(runtime);
    if (!byName) cachedTargets.set(runtime, byName = new Map());
    let target = byName.get(name);
    if (!target) {
      if (byName.size >= MAX_CACHED_TARGETS) byName.clear();
      byName.set(name, target = portTarget(runtime, name));
    }
    return Promise.resolve(target);
  },
};

const MAX_CACHED_TARGETS = 1024;
const cachedTargets = new WeakMap<Runtime, Map<string, LockTarget>>();
