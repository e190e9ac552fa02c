// One small shape over our kinds and the peers, so the hand-off, contention
// and throughput cases (and the holder child) are written once: a Locker
// waits (`lock`) or tries (`tryLock`) for a name and hands back something to
// release.
//
// The server and Redis kinds are looked up at run time: they count as
// available once KINDS lists them, so these cases light up by themselves
// when the kinds land, and are skipped with a note until then.

import lockfile from "proper-lockfile";
import { Redis } from "ioredis";
import Redlock from "redlock";
import { Mutex } from "redis-semaphore";
import { lock, type LockOptions, tryLock } from "../mod.ts";
import { KINDS } from "../lib/_kinds.ts";
import { bareServerLocker } from "./_bare_server_client.ts";

/** Something held. */
export interface Held {
  release(): Promise<void>;
}

/** Takes named locks of one kind (or one peer). */
export interface Locker {
  /** Waits for `name` (with the kind's own way of waiting). */
  lock(name: string): Promise<Held>;
  /** Takes `name` if free right now, else null. */
  tryLock(name: string): Promise<Held | null>;
  /** Closes connections. */
  close(): Promise<void>;
}

/** The kinds and peers a Locker can be made for. */
export type LockerKind =
  | "socket"
  | "folder"
  | "port"
  | "server"
  | "server-api"
  | "server-bare"
  | "redis"
  | "redis-raw"
  | "proper-lockfile"
  | "redlock"
  | "redis-semaphore"
  | `${"redis" | "redlock" | "redis-semaphore"}:shared`;

/** Where the lockers find their resources. */
export interface LockerSetup {
  /** Private lock directory (local kinds, proper-lockfile). */
  dir: string;
  /** The lock server's port (server kind). */
  serverPort?: number;
  /** The benchmark's redis-server (redis kind and peers). */
  redis?: { host: string; port: number } | null;
}

/**
 * How long polling peers wait between tries while waiting in hand-off.
 * redis-semaphore's default; set the same for proper-lockfile (default: no
 * retries at all) and redlock (default 200 ms).
 */
export const PEER_RETRY_MS = 10;

/** A lock kind of ours that may not have landed yet. */
export function hasKind(kind: string): boolean {
  return (KINDS as readonly string[]).includes(kind);
}

/** What the benchmark uses of the lock server's module. */
export type ServerModule = Pick<typeof import("../lib/server/mod.ts"), "serve" | "LockClient">;

/**
 * The server module, or why it cannot be used yet.
 *
 * @returns `serve` and `LockClient`, or a reason string.
 */
export async function loadServerModule(): Promise<ServerModule | string> {
  if (!hasKind("server")) return "kind server not available";
  // Loaded at run time, so a missing or broken server module skips the
  // server cases instead of failing the whole run.
  for (const candidate of ["../lib/server/mod.ts", "../mod.ts"]) {
    try {
      const mod = await import(new URL(candidate, import.meta.url).href) as Partial<ServerModule>;
      if (typeof mod.serve === "function" && typeof mod.LockClient === "function") {
        return mod as ServerModule;
      }
    } catch {
      // try the next place
    }
  }
  return "kind server is listed, but neither lib/server/mod.ts nor mod.ts exports serve and LockClient";
}

function errorName(error: unknown): string | undefined {
  return (error as { name?: string } | null)?.name;
}

function localLocker(kind: "socket" | "folder" | "port", dir: string): Locker {
  const options: LockOptions = { kind, dir };
  return {
    lock: (name) => lock(name, options),
    tryLock: (name) => tryLock(name, options),
    close: () => Promise.resolve(),
  };
}

function properLockfileLocker(dir: string): Locker {
  const file = (name: string) => `${dir}/${name}.plf`;
  const tryLock = async (name: string): Promise<Held | null> => {
    try {
      return { release: await lockfile.lock(file(name), { realpath: false }) };
    } catch (error) {
      if ((error as { code?: string } | null)?.code === "ELOCKED") return null;
      throw error;
    }
  };
  return {
    // One plain lock() first (its default: no retries), so an uncontended
    // acquire costs what users pay; only a busy lock waits with retries.
    async lock(name) {
      const first = await tryLock(name);
      if (first) return first;
      const release = await lockfile.lock(file(name), {
        realpath: false,
        // The retry package builds an array of every delay up front:
        // keep the count modest (10 s of tries), or each call costs ms.
        retries: {
          retries: 1_000,
          factor: 1,
          minTimeout: PEER_RETRY_MS,
          maxTimeout: PEER_RETRY_MS,
        },
      });
      return { release };
    },
    tryLock,
    close: () => Promise.resolve(),
  };
}

/** A fresh ioredis connection to the benchmark's redis-server. */
export function redisClient(redis: { host: string; port: number }): Redis {
  return new Redis({
    host: redis.host,
    port: redis.port,
    lazyConnect: false,
    enableOfflineQueue: true,
  });
}

function redisKindLocker(client: Redis): Locker {
  const options: LockOptions = { kind: "redis", redis: client };
  return {
    lock: (name) => lock(name, options),
    tryLock: (name) => tryLock(name, options),
    close: async () => void await client.quit(),
  };
}

/** The release every Redis lock uses: delete the key only if it holds our value. */
export const COMPARE_AND_DELETE =
  'if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0';

/**
 * The floor of a Redis lock: `SET NX PX` with a random value, and the Lua
 * compare-and-delete, nothing else. It cannot wait: `lock` on a taken name
 * throws, so it only measures loads without contention.
 */
async function rawRedisLocker(client: Redis): Promise<Locker> {
  const sha = String(await client.script("LOAD", COMPARE_AND_DELETE));
  const tryLock = async (name: string): Promise<Held | null> => {
    const value = crypto.randomUUID();
    if ((await client.set(name, value, "PX", 30_000, "NX")) !== "OK") return null;
    return { release: async () => void await client.evalsha(sha, 1, name, value) };
  };
  return {
    tryLock,
    async lock(name) {
      const held = await tryLock(name);
      if (!held) throw new Error(`raw floor: ${name} is taken (it cannot wait)`);
      return held;
    },
    close: async () => void await client.quit(),
  };
}

function redlockLocker(client: Redis): Locker {
  const waiting = new Redlock([client], {
    retryCount: 1_000,
    retryDelay: PEER_RETRY_MS,
    retryJitter: 0,
  });
  const once = new Redlock([client], { retryCount: 0 });
  for (const r of [waiting, once]) r.on("clientError", () => {});
  const held = (l: { unlock(): Promise<unknown> }): Held => ({
    release: async () => void await l.unlock(),
  });
  return {
    lock: async (name) => held(await waiting.lock(name, 30_000)),
    async tryLock(name) {
      try {
        return held(await once.lock(name, 30_000));
      } catch (error) {
        // redlock 4 reports "could not acquire" as its own LockError.
        if (errorName(error) === "LockError") return null;
        throw error;
      }
    },
    close: async () => void await client.quit(),
  };
}

function semaphoreLocker(client: Redis): Locker {
  const held = (m: Mutex): Held => ({ release: () => m.release() });
  return {
    async lock(name) {
      const mutex = new Mutex(client, name, {
        lockTimeout: 30_000,
        acquireTimeout: 60_000,
        retryInterval: PEER_RETRY_MS,
      });
      await mutex.acquire();
      return held(mutex);
    },
    async tryLock(name) {
      // It sleeps retryInterval even after its last attempt: 0 makes a try a try.
      const mutex = new Mutex(client, name, {
        lockTimeout: 30_000,
        acquireAttemptsLimit: 1,
        retryInterval: 0,
      });
      return (await mutex.tryAcquire()) ? held(mutex) : null;
    },
    close: async () => void await client.quit(),
  };
}

async function serverLocker(port: number): Promise<Locker> {
  const mod = await loadServerModule();
  if (typeof mod === "string") throw new Error(mod);
  const client = new mod.LockClient({ host: "127.0.0.1", port });
  return {
    lock: (name) => client.lock(name),
    async tryLock(name) {
      try {
        return await client.lock(name, { timeout: 0 });
      } catch (error) {
        if (errorName(error) === "LockBusyError") return null;
        throw error;
      }
    },
    close: () => client.close(),
  };
}

/**
 * The server kind through the unified API, `lock(name, { server })`: every
 * such locker in a process shares that process's one connection to the
 * server, as every lock() call of an application does.
 */
function serverApiLocker(port: number): Locker {
  const options: LockOptions = { server: `127.0.0.1:${port}` };
  return {
    lock: (name) => lock(name, options),
    tryLock: (name) => tryLock(name, options),
    close: () => Promise.resolve(),
  };
}

/**
 * A locker of `kind`, each with its own connection where the kind has one
 * (`server-api` shares one per process).
 *
 * @param kind Our kind or a peer.
 * @param setup Where to find the directory, the server and Redis.
 * @returns The locker.
 * @throws {Error} If the kind needs a server or Redis that is not set up.
 */
export async function makeLocker(kind: LockerKind, setup: LockerSetup): Promise<Locker> {
  switch (kind) {
    case "socket":
    case "folder":
    case "port":
      return localLocker(kind, setup.dir);
    case "proper-lockfile":
      return properLockfileLocker(setup.dir);
    case "server":
      if (!setup.serverPort) throw new Error("no lock server port given");
      return await serverLocker(setup.serverPort);
    case "server-api":
      if (!setup.serverPort) throw new Error("no lock server port given");
      return serverApiLocker(setup.serverPort);
    case "server-bare":
      if (!setup.serverPort) throw new Error("no lock server port given");
      return await bareServerLocker(setup.serverPort);
  }
  if (!setup.redis) throw new Error("no redis-server (run through bench/run.sh)");
  if (kind.endsWith(":shared")) return await sharedClientLocker(kind, setup.redis);
  const client = redisClient(setup.redis);
  await client.ping();
  return redisLocker(kind, client);
}

function redisLocker(kind: LockerKind, client: Redis): Locker | Promise<Locker> {
  switch (kind) {
    case "redis":
      return redisKindLocker(client);
    case "redis-raw":
      return rawRedisLocker(client);
    case "redlock":
      return redlockLocker(client);
    case "redis-semaphore":
      return semaphoreLocker(client);
  }
  throw new Error(`not a Redis locker: ${kind}`);
}

// One ioredis client per process for every `<kind>:shared` locker, as an
// application shares its client between its lock calls; quit when the last
// locker on it closes.
let sharedClient: { client: Redis; lockers: number } | null = null;

async function sharedClientLocker(
  kind: LockerKind,
  redis: { host: string; port: number },
): Promise<Locker> {
  const shared = sharedClient ??= { client: redisClient(redis), lockers: 0 };
  shared.lockers++;
  await shared.client.ping();
  const locker = await redisLocker(kind.slice(0, -":shared".length) as LockerKind, shared.client);
  return {
    lock: locker.lock,
    tryLock: locker.tryLock,
    async close() {
      if (--shared.lockers > 0) return;
      if (sharedClient === shared) sharedClient = null;
      await shared.client.quit();
    },
  };
}
