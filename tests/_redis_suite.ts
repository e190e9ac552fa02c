// A Redis test suite's common set-up: inside a describeRedis() body, one
// redis-server for the suite and ioredis clients on it, all disconnected and
// the server stopped when the suite ends.

import { after, before } from "node:test";
import { Redis, type RedisOptions } from "ioredis";
import { type RedisServer, startRedisServer } from "./_redis_server.ts";

/** What a suite gets: its server, a raw client, and more clients on demand. */
export interface RedisSuite {
  /** The suite's redis-server (set once the suite starts). */
  readonly server: RedisServer;
  /** A client for the test's own reads and writes. */
  readonly raw: Redis;
  /** A new client (on the suite's server unless `extra.port` says otherwise), closed at the end. */
  client(extra?: RedisOptions): Redis;
}

/**
 * Registers the suite's before/after hooks; call it at the top of a
 * describeRedis() body.
 *
 * @param options ioredis options for every client.
 * @param cleanup Also run at the end, before the clients close.
 */
export function redisSuite(options: RedisOptions = {}, cleanup?: () => void): RedisSuite {
  let server: RedisServer | undefined;
  let raw: Redis | undefined;
  const clients: Redis[] = [];
  const suite: RedisSuite = {
    get server() {
      return server!;
    },
    get raw() {
      return raw!;
    },
    client(extra = {}) {
      const c = new Redis({ port: server!.port, host: "127.0.0.1", ...options, ...extra });
      clients.push(c);
      return c;
    },
  };
  before(async () => {
    server = await startRedisServer();
    raw = suite.client();
  });
  after(async () => {
    cleanup?.();
    for (const c of clients) c.disconnect();
    await server?.stop();
  });
  return suite;
}

/** Stalls the event loop for `ms`, as a busy or paused process would. */
function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* busy */ }
}

/**
 * Makes the subscriber connections `client` opens stall the process for
 * `ms` as each grant is heard, before the lock code hears it.
 */
export function stallOnGrant(client: Redis, ms: number): void {
  const duplicate = client.duplicate.bind(client);
  client.duplicate = ((...args: Parameters<Redis["duplicate"]>) => {
    const sub = duplicate(...args);
    sub.on("message", (_channel: string, message: string) => {
      if (message.startsWith("granted ")) stall(ms);
    });
    return sub;
  }) as Redis["duplicate"];
}
