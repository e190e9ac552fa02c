// Real redis-server instances for the Redis tests: started on a free
// loopback port with persistence off, ready once they answer PING, stopped
// by the test (and killed when the test process exits, through
// _processes.ts). Without redis-server on PATH the Redis suites say so
// loudly — and fail when CI=true, where a silent skip would hide a gap.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { accessSync, constants } from "node:fs";
import { connect } from "node:net";
import process from "node:process";
import { type Child, freePort, spawnCommand } from "./_processes.ts";

/** The absolute path of redis-server, or null if it is not on PATH. */
export function findRedisServer(): string | null {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (!dir) continue;
    const path = `${dir}/redis-server`;
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch { /* not here */ }
  }
  return null;
}

const SKIP_MESSAGE = "SKIPPED: redis-server not found — Redis tests did not run";

/**
 * `describe(title, body)` when redis-server is available. Otherwise one
 * visible test: failing under CI=true, else passing with SKIPPED in its name.
 */
export function describeRedis(title: string, body: () => void): void {
  if (findRedisServer()) {
    describe(title, body);
    return;
  }
  if (process.env.CI === "true") {
    test(`${title}: redis-server is required when CI=true`, () => {
      assert.fail(
        "redis-server is not on PATH; .ci/run must install it (apt-get install redis-server)",
      );
    });
    return;
  }
  console.log(`\n!!!!! ${SKIP_MESSAGE} (${title}) !!!!!\n`);
  test(`${SKIP_MESSAGE} (${title})`, () => {});
}

/** A running redis-server. */
export interface RedisServer {
  readonly port: number;
  readonly child: Child;
  /** Stops it (SIGTERM, then SIGKILL after 3 s); resolves once it has exited. */
  stop(): Promise<void>;
}

/**
 * Sends an inline command to 127.0.0.1:`port` and resolves what `parse`
 * makes of the reply so far, once it is not undefined; null on an error or
 * after 500 ms.
 */
function askRedis<T>(
  port: number,
  command: string,
  parse: (reply: string) => T | undefined,
): Promise<T | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    let reply = "";
    const done = (value: T | null) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(500, () => done(null));
    socket.once("error", () => done(null));
    socket.once("connect", () => socket.write(`${command}\r\n`));
    socket.on("data", (chunk) => {
      reply += chunk;
      const value = parse(reply);
      if (value !== undefined) done(value);
    });
  });
}

/** Whether a redis-server on 127.0.0.1:`port` answers PING within 500 ms. */
export async function pingRedis(port: number): Promise<boolean> {
  const pong = await askRedis(
    port,
    "PING",
    (reply) => reply.includes("\r\n") ? reply.startsWith("+PONG") : undefined,
  );
  return pong === true;
}

/** The pid of the redis-server on 127.0.0.1:`port`, from INFO, or null. */
function redisPid(port: number): Promise<number | null> {
  return askRedis(port, "INFO server", (reply) => {
    const match = reply.match(/process_id:(\d+)\r\n/);
    return match ? Number(match[1]) : undefined;
  });
}

async function startOnce(
  binary: string,
  extra: string[],
  fixedPort?: number,
): Promise<RedisServer | null> {
  const port = fixedPort ?? await freePort();
  // Another test's redis-server there would answer our PINGs for us.
  if (fixedPort !== undefined && await pingRedis(port)) return null;
  const child = spawnCommand(binary, [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--loglevel",
    "warning",
    ...extra,
  ]);
  let exited = false;
  child.done.then(() => (exited = true));
  const deadline = performance.now() + 10_000;
  while (performance.now() < deadline && !exited) {
    if (await pingRedis(port)) {
      // It must be ours: one that took the port first answers too.
      if (await redisPid(port) !== child.pid) break;
      return {
        port,
        child,
        async stop() {
          if (exited) return;
          child.process.kill("SIGTERM");
          const killer = setTimeout(() => child.process.kill("SIGKILL"), 3_000);
          await child.done;
          clearTimeout(killer);
        },
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.process.kill("SIGKILL");
  await child.done;
  return null; // the port was taken meanwhile, or it did not come up in time
}

/**
 * Starts a redis-server on a free loopback port and waits until it answers
 * PING (at most 10 s per try, 3 tries).
 *
 * @param extra More command-line options, e.g. ["--maxmemory", "1mb"].
 */
export async function startRedisServer(extra: string[] = []): Promise<RedisServer> {
  const binary = findRedisServer();
  if (!binary) throw new Error("redis-server is not on PATH");
  for (let attempt = 0; attempt < 3; attempt++) {
    const server = await startOnce(binary, extra);
    if (server) return server;
  }
  throw new Error("redis-server did not start (3 tries)");
}

/**
 * Starts a redis-server on a port below the ephemeral range, so that it can
 * be stopped and started again on the same port ({@link restartRedisServer})
 * without another test's free-port pick or outgoing connection taking it
 * meanwhile.
 */
export async function startRestartableRedisServer(): Promise<RedisServer> {
  const binary = findRedisServer();
  if (!binary) throw new Error("redis-server is not on PATH");
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const server = await startOnce(binary, [], port);
    if (server) return server;
  }
  throw new Error("redis-server did not start on any of 10 ports");
}

/** Stops `server` and starts a fresh one (no data: persistence is off) on its port. */
export async function restartRedisServer(server: RedisServer): Promise<RedisServer> {
  await server.stop();
  const again = await startOnce(findRedisServer()!, [], server.port);
  if (!again) throw new Error(`redis-server did not come back on port ${server.port}`);
  return again;
}
