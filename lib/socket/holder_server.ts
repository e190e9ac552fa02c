/**
 * The holder's side of the handshake: a listener on 127.0.0.1 that proves,
 * for each lock this process holds, that its holder is alive.
 *
 * One listener per process serves every lock held with the keyed handshake
 * (the request names the lock id), so taking a lock costs no listen() of its
 * own; it lingers briefly after the last release for the next acquisition.
 * A compat lock gets a listener of its own, because Python's probe does not
 * say which lock it asks about.
 *
 * Contenders that verified a holder keep their connection open; the holder
 * closes those connections when it releases (the OS does when it dies), which
 * is how waiters wake without polling. Every connection reads at most
 * {@link MAX_LINE} bytes before answering and nothing after, and one that has
 * not finished its request within {@link IDLE_MS} is closed, so a peer
 * sending 1 MB or half a handshake costs nothing and blocks nobody.
 *
 * @module
 */

import type { Connection, Listener, Runtime, Timer } from "../runtime/mod.ts";
import {
  hmacAnswer,
  type HmacKey,
  NO,
  OK_PREFIX,
  parseRequest,
  probeAnswer,
  WAITING,
} from "./handshake.ts";

/** How long a connection may take to send its request, in ms. */
export const IDLE_MS = 10_000;
/** How long the shared listener stays open after the last release, in ms. */
export const LINGER_MS = 2_000;
/**
 * How many `SOCKETLOCK_WAIT1` connections a compat lock keeps open; more are
 * refused (those waiters poll), so nobody can use up the holder's file
 * descriptors. Keyed waiters need the lock id, which only the user can read.
 */
export const MAX_WAITERS = 256;
/**
 * How many connections may be open at once without having finished their
 * request; more are closed at once, so peers sending half a request (each
 * kept up to {@link IDLE_MS}) cannot use up the holder's file descriptors,
 * which its own release needs. A contender closed so finds the holder
 * silent, and a silent holder whose pid lives is busy, never broken.
 */
export const MAX_UNANSWERED = 128;

/** One held lock, as its holder answers for it. */
export interface HolderEntry {
  /** The lock's name. */
  name: string;
  /** The acquisition's id (from the lock file). */
  id: string;
  /** The HMAC key; null if this lock answers only Python's probe. */
  key: HmacKey | null;
  /** Python socketlock's `signature_seed` for the `SOCKETLOCK_CHECK` answer (default `"socketlock_" + name`). */
  seed?: string;
}

/** A lock being answered for. */
export interface HolderRegistration {
  /** The port contenders connect to. */
  readonly port: number;
  /** Stops answering for the lock and closes its waiters' connections. */
  stop(): Promise<void>;
}

interface Served {
  entry: HolderEntry;
  /** Made for the first waiter: most locks are released before any comes. */
  waiters: Set<Connection> | null;
}

interface Server {
  listener: Listener;
  served: Map<string, Served>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function answer(server: Server, conn: Connection, text: string): void {
  const request = parseRequest(text);
  if (request.type === "incomplete") return;
  conn.onData(() => {}); // one request per connection; ignore the rest unread
  const only = server.served.size === 1 ? [...server.served.values()][0] : undefined;
  switch (request.type) {
    case "check":
      // Python reads one answer and closes; a shared listener holding several
      // locks cannot tell which one is asked about, so it does not answer.
      if (only) conn.write(encoder.encode(probeAnswer(only.entry.name, only.entry.seed)));
      conn.close();
      return;
    case "wait":
      // Compat locks only: anyone may ask (their files are public), and our
      // keyed locks' waiters keep the connection of their handshake.
      if (!only || only.entry.key || (only.waiters?.size ?? 0) >= MAX_WAITERS) return conn.close();
      conn.write(encoder.encode(WAITING));
      return keep(only, conn);
    case "hmac": {
      const served = server.served.get(request.id);
      if (!served?.entry.key) {
        conn.write(encoder.encode(NO));
        return conn.close();
      }
      const { entry } = served;
      const mac = hmacAnswer(entry.key!, entry.name, entry.id, request.challenge);
      conn.write(encoder.encode(`${OK_PREFIX}${mac}\n`));
      return keep(served, conn);
    }
    default:
      conn.close();
  }
}

function keep(served: Served, conn: Connection): void {
  const waiters = served.waiters ??= new Set();
  waiters.add(conn);
  conn.onClose(() => waiters.delete(conn));
}

async function openServer(runtime: Runtime): Promise<Server> {
  const served = new Map<string, Served>();
  let unanswered = 0;
  const server: Server = { listener: undefined!, served };
  server.listener = await runtime.listen(
    { transport: "tcp", hostname: "127.0.0.1", port: 0 },
    (conn) => {
      conn.unref();
      if (unanswered >= MAX_UNANSWERED) return conn.close();
      unanswered++;
      let text = "";
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        unanswered--;
        idle.clear();
      };
      const idle: Timer = runtime.setTimer(() => conn.close(), IDLE_MS);
      idle.unref();
      conn.onClose(finish);
      conn.onData((chunk) => {
        if (done) return;
        text += decoder.decode(chunk);
        if (parseRequest(text).type === "incomplete") return;
        finish();
        answer(server, conn, text);
      });
    },
  );
  server.listener.unref();
  return server;
}

function stopServing(server: Server, id: string): void {
  const served = server.served.get(id);
  server.served.delete(id);
  for (const conn of served?.waiters ?? []) conn.close();
}

interface Pool {
  ready: Promise<Server>;
  refs: number;
  /** When refs last dropped to 0 (monotonic ms). */
  idleSince: number;
  linger: Timer | null;
}

const pools = new WeakMap<Runtime, Pool>();

// References are counted synchronously, before any await, so the lingering
// close can never close a listener a new holder is about to record.
function retain(runtime: Runtime): Pool {
  let pool = pools.get(runtime);
  if (!pool) {
    const fresh: Pool = { ready: openServer(runtime), refs: 0, idleSince: 0, linger: null };
    fresh.ready.catch(() => {
      if (pools.get(runtime) === fresh) pools.delete(runtime);
    });
    pools.set(runtime, pool = fresh);
  }
  // A lingering timer stays set: it looks at refs when it fires. A loop of
  // lock and release then sets one timer per LINGER_MS, not one per release
  // (a timer costs Deno about 8 µs, a tenth of a whole cycle).
  pool.refs++;
  return pool;
}

function unretain(runtime: Runtime, pool: Pool): void {
  if (--pool.refs > 0) return;
  pool.idleSince = runtime.monotonic();
  if (!pool.linger) lingerFor(runtime, pool, LINGER_MS);
}

// Closes the listener once it has been unused for LINGER_MS.
function lingerFor(runtime: Runtime, pool: Pool, ms: number): void {
  pool.linger = runtime.setTimer(() => {
    pool.linger = null;
    // In use again: its next unretain sets the timer anew.
    if (pool.refs > 0 || pools.get(runtime) !== pool) return;
    const idle = runtime.monotonic() - pool.idleSince;
    if (idle < LINGER_MS) return lingerFor(runtime, pool, LINGER_MS - idle);
    pools.delete(runtime);
    pool.ready.then((server) => server.listener.close(), () => {});
  }, ms);
  pool.linger.unref();
}

/**
 * Opens the shared listener ahead of need and keeps it open until the
 * returned function is called: a waiter calls this so that its acquisition,
 * when the holder lets go, does not wait for a listen() first.
 *
 * @example Keep the listener ready while waiting
 * ```ts
 * import { warmHolderServer } from "./holder_server.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const done = warmHolderServer(runtime);
 * done();
 * ```
 *
 * @param runtime The runtime adapter.
 * @returns Lets the listener go (it lingers {@link LINGER_MS} as after a release). Idempotent.
 */
export function warmHolderServer(runtime: Runtime): () => void {
  const pool = retain(runtime);
  pool.ready.catch(() => {}); // a failure surfaces at the acquisition, if any
  let done = false;
  return () => {
    if (done) return;
    done = true;
    unretain(runtime, pool);
  };
}

/**
 * Starts answering for a held lock. Call before the lock file exists, so
 * the lock is answered for from its first moment; stop after the file is
 * gone.
 *
 * @example Answer for a lock
 * ```ts
 * import { serveHolder } from "./holder_server.ts";
 * import { randomHex } from "./handshake.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const served = await serveHolder(runtime, { name: "nightly", id: randomHex(16), key: null }, true);
 * console.log(served.port > 0);
 * await served.stop();
 * ```
 *
 * @param runtime The runtime adapter.
 * @param entry The lock.
 * @param dedicated A listener of its own (compat locks), else the shared one.
 * @returns The port to record and a way to stop.
 */
export async function serveHolder(
  runtime: Runtime,
  entry: HolderEntry,
  dedicated: boolean,
): Promise<HolderRegistration> {
  const served: Served = { entry, waiters: null };
  if (dedicated) {
    const server = await openServer(runtime);
    server.served.set(entry.id, served);
    return {
      port: server.listener.port,
      async stop() {
        stopServing(server, entry.id);
        await server.listener.close();
      },
    };
  }
  const pool = retain(runtime);
  let server: Server;
  try {
    server = await pool.ready;
  } catch (error) {
    unretain(runtime, pool);
    throw error;
  }
  server.served.set(entry.id, served);
  let stopped = false;
  return {
    port: server.listener.port,
    stop() {
      if (!stopped) {
        stopped = true;
        stopServing(server, entry.id);
        unretain(runtime, pool);
      }
      return Promise.resolve();
    },
  };
}
