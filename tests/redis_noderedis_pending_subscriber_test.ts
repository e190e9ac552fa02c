// node-redis: openSubscriber() awaited duplicate().connect() before handing
// the connection to the release listener. While Redis is unreachable that
// connect() never settles (node-redis's default reconnect strategy retries
// for ever), so a close (the user's client closing, or the channel
// lingering out) could only be chained on it and never ran: the duplicate
// went on reconnecting after the user closed their client, keeping the
// process alive. The subscriber is now handed out at once; close() stops it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "redis";
import { Redis } from "ioredis";
import { lock } from "../mod.ts";
import { adaptRedisClient } from "../lib/redis/client_adapter.ts";
import { watchReleases } from "../lib/redis/_release_listener.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { describeRedis, startRedisServer } from "./_redis_server.ts";
import { sleep } from "./_server_helpers.ts";
import { eventually } from "./_waiting.ts";

type Duplicate = { isOpen: boolean; destroy(): void };

// The duplicates `client` makes from now on (the adapter's subscriber), kept.
function keptDuplicates(client: { duplicate(...args: never[]): unknown }): Duplicate[] {
  const duplicates: Duplicate[] = [];
  const duplicate = client.duplicate.bind(client);
  // deno-lint-ignore no-explicit-any
  (client as any).duplicate = (...args: any[]) => {
    const sub = (duplicate as (...args: unknown[]) => Duplicate)(...args);
    duplicates.push(sub);
    return sub;
  };
  return duplicates;
}

describeRedis("Redis kind with node-redis: a subscriber still connecting", () => {
  test("is closed when the user closes their client while Redis is unreachable", async () => {
    const server = await startRedisServer();
    const client = createClient({ url: `redis://127.0.0.1:${server.port}` });
    client.on("error", () => {});
    const duplicates = keptDuplicates(client);
    await client.connect();
    const adapter = adaptRedisClient(client);
    await server.stop(); // Redis goes away (a restart, a network cut)
    const watch = watchReleases(adapter, runtime, "pending-subscriber");
    try {
      await sleep(300);
      assert.equal(duplicates.length, 1, "the subscriber connection was opened");
      assert.equal(duplicates[0].isOpen, true, "and is (re)connecting");
      watch.leave();
      client.destroy(); // the user shuts down: "end" is emitted
      const closed = await eventually(() => !duplicates[0].isOpen, 4_000);
      assert.ok(
        closed,
        "the subscriber duplicate still reconnects after the user closed their client",
      );
    } finally {
      watch.leave();
      for (const sub of duplicates) if (sub.isOpen) sub.destroy();
      if (client.isOpen) client.destroy();
    }
  });

  test("through lock(): after a password rotation the duplicate's AUTH fails for ever; closing the client leaves it reconnecting", async () => {
    const server = await startRedisServer();
    const peer = new Redis({ port: server.port, host: "127.0.0.1" });
    peer.on("error", () => {});
    await peer.call("ACL", "SETUSER", "app", "on", ">old", "~*", "&*", "+@all");
    const client = createClient({ url: `redis://app:old@127.0.0.1:${server.port}` });
    client.on("error", () => {});
    const duplicates = keptDuplicates(client);
    await client.connect();
    try {
      // The password is rotated: live connections stay authenticated, new ones are refused.
      await peer.call("ACL", "SETUSER", "app", "resetpass", ">new");
      const held = await lock("rotated", { redis: peer, ttl: 5_000 });
      const waiting = lock("rotated", { redis: client, ttl: 5_000, timeout: 5_000 });
      await sleep(300);
      await held.release();
      await (await waiting).release(); // works, by polling
      assert.equal(duplicates.length, 1, "a subscriber connection was opened");
      await client.close(); // the user shuts down
      const closed = await eventually(() => !duplicates[0].isOpen, 4_000);
      assert.ok(
        closed,
        "the subscriber duplicate still reconnects after the user closed their client",
      );
    } finally {
      for (const sub of duplicates) if (sub.isOpen) sub.destroy();
      if (client.isOpen) client.destroy();
      peer.disconnect();
      await server.stop();
    }
  });
});
