// node-redis's command timeout (createClient({ commandOptions: { timeout } }))
// rejects with `new TimeoutError()`: name "Error", message "" (only its class
// says what it is). It must count as a command timeout, as ioredis's
// commandTimeout does (a wait goes on after such a try), and the error must
// say what happened rather than "... through node-redis: . Check ...".
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "redis";
import { tryLock } from "../mod.ts";
import { isCommandTimeout } from "../lib/redis/scripts.ts";
import { describeRedis, startRedisServer } from "./_redis_server.ts";

describeRedis("Redis kind with node-redis: its command timeout", () => {
  test("is recognised as a command timeout, and the error says what happened", async () => {
    const server = await startRedisServer();
    const client = createClient({
      url: `redis://127.0.0.1:${server.port}`,
      commandOptions: { timeout: 200 },
    });
    client.on("error", () => {});
    await client.connect();
    try {
      await server.stop(); // commands wait in the offline queue, then time out
      await new Promise((resolve) => setTimeout(resolve, 200));
      const error = await tryLock("nr-timeout", { redis: client }).then(
        () => assert.fail("tryLock succeeded with Redis down"),
        (e) => e as Error,
      );
      assert.equal(
        (error.cause as Error)?.constructor?.name,
        "TimeoutError",
        "node-redis timed out",
      );
      assert.ok(isCommandTimeout(error), `not seen as a command timeout: ${error.message}`);
      assert.doesNotMatch(error.message, /node-redis: \./, "the reason is empty");
    } finally {
      client.destroy();
    }
  });
});
