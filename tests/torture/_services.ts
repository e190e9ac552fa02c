// The lock services a torture run crashes and brings back on the same
// address: the lock server (a CLI `serve` process, each start on the next
// runtime) and redis-server (persistence off, so a crash loses every key).

import process from "node:process";
import { type Child, RUNTIMES, scriptCommand, spawnCommand } from "../_processes.ts";
import {
  type RedisServer,
  restartRedisServer,
  startRestartableRedisServer,
} from "../_redis_server.ts";
import type { Service } from "./_fleet.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function crash(child: Child | null): Promise<void> {
  if (!child) return;
  try {
    process.kill(child.pid, "SIGKILL");
  } catch { /* gone */ }
  await child.done;
}

/** A restartable service plus its port. */
export interface RunningService extends Service {
  readonly port: number;
  /** Stops it for good. */
  close(): Promise<void>;
}

const CLI = new URL("../../lib/cli.ts", import.meta.url).pathname;

/**
 * A lock server on a fixed port below the ephemeral range (so that no
 * outgoing connection takes it while the server is down); each start runs
 * on the next runtime.
 */
export async function lockServerService(): Promise<RunningService> {
  const port = 20_000 + Math.floor(Math.random() * 12_000);
  let child: Child | null = null;
  let starts = 0;
  const service: RunningService = {
    port,
    async start() {
      for (let attempt = 0; attempt < 50; attempt++) {
        const runtime = RUNTIMES[starts % RUNTIMES.length];
        const [cmd, base] = scriptCommand(runtime, CLI);
        child = spawnCommand(cmd, [...base, "serve", "--port", String(port)]);
        try {
          await child.waitFor("listening on", 30_000);
          starts++;
          return;
        } catch {
          await crash(child); // the port may not be free yet
          await sleep(100);
        }
      }
      throw new Error(`the lock server did not come back on port ${port}`);
    },
    crash: () => crash(child),
    close: () => crash(child),
  };
  await service.start();
  return service;
}

/** A redis-server (persistence off) on a port it can be restarted on. */
export async function redisService(): Promise<RunningService> {
  let server: RedisServer = await startRestartableRedisServer();
  return {
    port: server.port,
    crash: () => crash(server.child),
    async start() {
      server = await restartRedisServer(server);
    },
    close: () => crash(server.child),
  };
}
