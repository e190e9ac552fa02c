/**
 * `serve()`: the lock server. One TCP port speaks two protocols, told apart
 * by the first byte a client sends: distlockd's binary frames start with a
 * command byte below 0x20, our line protocol with a printable tag.
 *
 * @module
 */

import {
  type Connection,
  isLoopback,
  type Runtime,
  runtime as defaultRuntime,
} from "../runtime/mod.ts";
import { LockError } from "../errors.ts";
import { LockTable } from "./lock_table.ts";
import { FencingTokens } from "../_fencing_tokens.ts";
import { importAuthKey } from "./auth.ts";
import {
  DEFAULT_LIMITS,
  DEFAULT_MAX_TTL,
  DEFAULT_TTL,
  type ServerContext,
  type ServerLimits,
  statsOf,
} from "./_server_context.ts";
import { LineSession } from "./_line_session.ts";
import { DistlockdSession } from "./_distlockd_session.ts";

export type { ServerLimits } from "./_server_context.ts";

/** Options of {@link serve}. */
export interface ServeOptions extends ServerLimits {
  /** Address to listen on. Default `127.0.0.1` (loopback only). */
  host?: string;
  /** TCP port. Default 8888; 0 picks a free port (see `address.port`). */
  port?: number;
  /** Shared secret: clients must prove they know it (HMAC challenge). */
  token?: string;
  /** Allows a non-loopback `host` without a `token`. Anyone who can connect can then take and release locks. */
  insecure?: boolean;
  /** Default lease length in whole ms, when a client gives none. Default 10,000 (as distlockd). */
  ttl?: number;
  /** Longest lease granted, in whole ms; longer requests get this. Default 3,600,000. */
  maxTtl?: number;
  /**
   * For this many whole ms after it starts listening, the server grants
   * nothing: a try is answered busy (with no holder), a wait is queued and
   * granted, first come first served, once the grace ends (or times out).
   * The server keeps no state, so after a restart it cannot know which leases
   * its previous run granted; a holder that could not hear of the restart (a
   * partition, a crashed host: no FIN) still counts its lease. Set it to the
   * longest ttl clients use to keep exclusion across restarts. Default 0.
   */
  restartGrace?: number;
  /**
   * Where log lines go (default: none). The CLI passes its logger; any
   * object with this `log` method will do.
   */
  logger?: {
    log(
      level: "error" | "warn" | "info" | "debug",
      message: string,
      fields?: Record<string, unknown>,
    ): void;
  };
  /** Log each connection, grant, release and expiry (at `debug`). */
  verbose?: boolean;
}

/** What `STATS` reports. */
export interface ServerStats {
  /** Names held now. */
  held: number;
  /** Waits queued now. */
  waiting: number;
  /** Connections open now. */
  connections: number;
  /** Requests per second, over the last sampled second. */
  opsPerSecond: number;
  /** Requests handled since start. */
  operations: number;
  /** Names with a holder or a waiter. */
  names: number;
  /** Ms since start. */
  uptime: number;
  /** Ms left of the restart grace, during which nothing is granted; 0 once it is over. */
  graceLeft: number;
}

/** A running lock server. */
export interface LockServer extends AsyncDisposable {
  /** Where it listens (the real port when started with port 0). */
  readonly address: { hostname: string; port: number };
  /** Current figures. */
  stats(): ServerStats;
  /**
   * Stops accepting, tells line-protocol clients `* BYE`, closes every
   * connection (their locks go with them) and stops the timers. Idempotent.
   */
  close(): Promise<void>;
}

type Session = LineSession | DistlockdSession;

/**
 * An option {@link serve} cannot work with (out of range, or a non-loopback
 * host without a token). A {@link LockError}; its own class only so the CLI
 * can tell a usage error (exit 64) from a server that cannot start.
 */
export class ServeOptionError extends LockError {}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new ServeOptionError(`serve(): ${name} must be a positive number, got ${value}.`);
  }
  return value;
}

/**
 * A count, size or time: a whole number, at least `min` (1.5 connections
 * means nothing; most limits must be at least 1, a grace may be 0).
 */
function wholeNumber(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new ServeOptionError(
      `serve(): ${name} must be a whole number from ${min} to ${Number.MAX_SAFE_INTEGER}, got ${value}.`,
    );
  }
  return value;
}

/**
 * Starts a lock server.
 *
 * @example Serve on a free loopback port and take a lock through it
 * ```ts
 * import { LockClient, serve } from "jsr:@x/socketlock/server";
 * await using server = await serve({ port: 0 });
 * const client = new LockClient({ port: server.address.port });
 * await using held = await client.lock("nightly");
 * console.log(held.token);
 * await client.close();
 * ```
 *
 * @param options Address, token, lease defaults, limits, logging.
 * @returns The running server.
 * @throws {LockError} If a non-loopback host is given without `token` or
 *   `insecure`, or an option is out of range.
 * @throws {Error} With `code` `EADDRINUSE` if the port is taken.
 */
export function serve(options: ServeOptions = {}): Promise<LockServer> {
  return serveOn(defaultRuntime, options);
}

/** How long a connection may take to authenticate on a server with a token, ms. */
const AUTH_DEADLINE_MS = 10_000;

/** {@link serve} on a given runtime adapter (tests may pass a scripted one). */
export async function serveOn(runtime: Runtime, options: ServeOptions = {}): Promise<LockServer> {
  const host = options.host ?? "127.0.0.1";
  if (!isLoopback(host) && options.token === undefined && !options.insecure) {
    throw new ServeOptionError(
      `Refusing to serve locks on ${host} without authentication: anyone who can reach it could ` +
        `take and release locks. Pass a shared secret (--token-file FILE / token) or, on a trusted ` +
        `network, --insecure.`,
    );
  }
  if (options.token !== undefined && options.token.length === 0) {
    throw new ServeOptionError(
      "The server token is empty; put a long random secret in the token file.",
    );
  }
  const limits: Required<ServerLimits> = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof ServerLimits)[]) {
    limits[key] = key === "idleTimeout"
      ? positive(key, options[key], DEFAULT_LIMITS[key])
      : wholeNumber(key, options[key], DEFAULT_LIMITS[key]);
  }
  // Leases go on the wire in whole ms (clients refuse `OK 7 1500.5`).
  const maxTtl = wholeNumber("maxTtl", options.maxTtl, DEFAULT_MAX_TTL);
  // Only a default lease longer than maxTtl is cut to it; one given is a mistake.
  if (options.ttl !== undefined && options.ttl > maxTtl) {
    throw new ServeOptionError(
      `serve(): ttl (${options.ttl} ms) is above maxTtl (${maxTtl} ms); lower ttl or raise maxTtl.`,
    );
  }
  const restartGrace = wholeNumber("restartGrace", options.restartGrace, 0, 0);
  const log = options.logger ?? { log() {} };
  const ctx: ServerContext = {
    runtime,
    table: new LockTable(
      {
        now: () => runtime.monotonic(),
        wallNow: () => runtime.now(),
        setTimer: (fn, ms) => runtime.setTimer(fn, ms),
      },
      new FencingTokens(() => runtime.now()),
    ),
    limits,
    ttl: Math.min(wholeNumber("ttl", options.ttl, DEFAULT_TTL), maxTtl),
    maxTtl,
    key: options.token === undefined ? null : await importAuthKey(options.token),
    log,
    verbose: options.verbose ?? false,
    counters: { operations: 0, opsPerSecond: 0, connections: 0 },
    startedAt: runtime.monotonic(),
    distlockdOwners: new Map(),
    distlockdLabels: 0,
    closing: false,
  };

  /** A connection's session (once its first byte told the protocol) and when it was told to go. */
  interface ConnectionState {
    session: Session | null;
    since: number;
    endedAt: number;
  }
  const connections = new Map<Connection, ConnectionState>();
  let nextId = 1;

  function accept(conn: Connection): void {
    if (ctx.closing) {
      conn.close();
      return;
    }
    if (connections.size >= limits.maxConnections) {
      conn.write(new TextEncoder().encode(
        `* ERR TOO_MANY_CONNECTIONS The server has ${connections.size} connections, the most allowed (--max-connections); try again later.\n`,
      ));
      conn.close();
      return;
    }
    const id = nextId++;
    const state: ConnectionState = { session: null, since: runtime.monotonic(), endedAt: 0 };
    connections.set(conn, state);
    ctx.counters.connections = connections.size;
    conn.onData((chunk) => {
      if (!state.session) {
        if (chunk.length === 0) return;
        const first = chunk[0];
        // distlockd's command bytes (and its invalid ones) are control bytes;
        // a line of ours starts with a printable tag (or a stray line end).
        const binary = first < 0x20 && first !== 0x0a && first !== 0x0d && first !== 0x09;
        state.session = binary ? new DistlockdSession(ctx, conn) : new LineSession(ctx, conn, id);
        if (ctx.verbose) {
          log.log("debug", "connection opened", {
            client: `conn-${id}`,
            protocol: binary ? "distlockd" : "line",
          });
        }
      }
      try {
        state.session.receive(chunk);
      } catch (error) {
        // A bug must cost one connection (whose locks are then released),
        // never the server and everyone's locks.
        log.log("error", "closing a connection after an internal error", {
          client: `conn-${id}`,
          error: String((error as Error)?.stack ?? error),
        });
        conn.close();
      }
    });
    conn.onClose(() => {
      if (!connections.delete(conn)) return;
      ctx.counters.connections = connections.size;
      state.session?.closed();
      // A line session logs its own close, with what it released.
      if (ctx.verbose && !(state.session instanceof LineSession)) {
        log.log("debug", "connection closed", {
          client: `conn-${id}`,
          protocol: state.session ? "distlockd" : "none (closed before a byte)",
        });
      }
    });
  }

  const authDeadline = Math.min(AUTH_DEADLINE_MS, limits.idleTimeout);
  // One timer for idle connections and the ops/s figure.
  const period = Math.max(25, Math.min(1_000, limits.idleTimeout / 4));
  let sampledAt = runtime.monotonic();
  let sampledOps = 0;
  let ticker = runtime.setTimer(tick, period);
  ticker.unref();
  function tick(): void {
    const now = runtime.monotonic();
    if (now - sampledAt >= 1_000) {
      ctx.counters.opsPerSecond = Math.round(
        (ctx.counters.operations - sampledOps) * 1_000 / (now - sampledAt),
      );
      sampledAt = now;
      sampledOps = ctx.counters.operations;
    }
    for (const [conn, state] of connections) {
      if (state.endedAt > 0) {
        // Told to go, but the goodbye cannot be flushed: the peer reads
        // nothing. Drop it rather than keep its slot and buffers forever.
        if (now - state.endedAt >= limits.idleTimeout) conn.abort();
        continue;
      }
      const session = state.session;
      // With a token, a connection has a fixed time to authenticate, however
      // busy: slots held by clients without it would lock out those with it.
      // That includes one that has sent nothing yet, and a distlockd one
      // (which never can).
      if (
        ctx.key && !(session instanceof LineSession && session.authenticated) &&
        now - state.since >= authDeadline
      ) {
        state.endedAt = now;
        if (session) session.end(`not authenticated within ${authDeadline} ms`);
        else conn.close();
        continue;
      }
      const last = session ? session.lastActivity : state.since;
      if (now - last < limits.idleTimeout || (session && !session.idle)) continue;
      state.endedAt = now;
      if (session) session.end(`idle for ${limits.idleTimeout} ms`);
      else conn.close();
    }
    if (ctx.closing) return;
    ticker = runtime.setTimer(tick, period);
    ticker.unref();
  }

  // Nothing is stored, so a server cannot tell a first start from a restart,
  // nor which leases its previous run granted. A holder that heard of that
  // run's end (its connection closed) has stopped; one that could not (cut
  // off by a partition, or the server's host died without a FIN) still counts
  // its lease, by its own clock, for up to its ttl. Granting nothing for the
  // grace, counted from when connections can first arrive, lets those leases
  // run out first. Held back before listening too: no grant can slip in.
  ctx.table.holdGrants(restartGrace);
  let listener: Awaited<ReturnType<Runtime["listen"]>>;
  try {
    listener = await runtime.listen({
      transport: "tcp",
      hostname: host,
      port: options.port ?? 8888,
    }, accept);
  } catch (error) {
    ctx.table.close(); // its grace timer
    ticker.clear();
    throw error;
  }
  ctx.table.holdGrants(restartGrace);
  const address = { hostname: host, port: listener.port };
  log.log("info", "lock server listening", {
    address: `${host}:${listener.port}`,
    auth: ctx.key ? "hmac" : "none",
    ttl: ctx.ttl,
    ...(restartGrace > 0 ? { restartGrace } : {}),
  });

  let closing: Promise<void> | null = null;
  async function close(): Promise<void> {
    ctx.closing = true;
    ticker.clear();
    await listener.close();
    // The table goes first: nothing is granted to a waiter while the
    // connections it belongs to are being closed.
    ctx.table.close();
    const closingConns = [...connections.keys()];
    const gone = closingConns.map((conn) =>
      new Promise<void>((resolve) => {
        const state = connections.get(conn)!;
        conn.onClose(() => {
          state.session?.closed();
          resolve();
        });
        if (state.session) state.session.end("server shutting down");
        else conn.close();
      })
    );
    connections.clear();
    ctx.counters.connections = 0;
    let timer: { clear(): void } | undefined;
    await Promise.race([
      Promise.all(gone),
      new Promise<void>((resolve) => timer = runtime.setTimer(resolve, 2_000)),
    ]);
    timer?.clear();
    // Peers that read nothing cannot be sent their goodbye: drop them.
    for (const conn of closingConns) conn.abort();
    log.log("info", "lock server stopped", { address: `${host}:${listener.port}` });
  }

  return {
    address,
    stats: () => statsOf(ctx),
    close: () => closing ??= close(),
    [Symbol.asyncDispose]: () => closing ??= close(),
  };
}
