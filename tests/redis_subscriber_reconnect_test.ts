// A subscriber connection that reconnects must either hear its channels
// again or stop calling them live. ioredis with autoResubscribe: false (the
// duplicate inherits it) and Bun's RedisClient (which never resubscribes)
// came back from a reconnect with no subscriptions, while the release
// listener still called every channel live (seen() >= 0): waiters trusted a
// deaf channel (Waiting.canWait) and learnt of each grant only from their
// place's renewal, ~70 ms per hand-off instead of ~1 ms, for as long as the
// channel kept being waited on. Now a drop makes the channels not live, tells
// their waiters (RESET), and subscribes them again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { adaptRedisClient } from "../lib/redis/client_adapter.ts";
import { watchReleases } from "../lib/redis/_release_listener.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite } from "./_redis_suite.ts";
import { sleep } from "./_server_helpers.ts";
import { eventually } from "./_waiting.ts";

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
// deno-lint-ignore no-explicit-any
const bun = (globalThis as any).Bun as { RedisClient: new (url: string) => any } | undefined;

describeRedis("Redis kind: the subscriber connection reconnects", () => {
  const suite = redisSuite();
  const bunClient = () => new bun!.RedisClient(`redis://127.0.0.1:${suite.server.port}`);
  const cases: {
    label: string;
    skip: string | false;
    make(): { client: unknown; close(): void };
  }[] = [
    {
      // The control: ioredis's default (autoResubscribe: true) passes.
      label: "ioredis, default options (control)",
      skip: false,
      make: () => ({ client: suite.client(), close: () => {} }),
    },
    {
      label: "ioredis, autoResubscribe: false",
      skip: false,
      make: () => ({ client: suite.client({ autoResubscribe: false }), close: () => {} }),
    },
    {
      label: "Bun RedisClient",
      skip: !bun && "Bun's RedisClient exists only under Bun",
      make: () => {
        const client = bunClient();
        return { client, close: () => client.close() };
      },
    },
  ];

  for (const c of cases) {
    test(`${c.label}: a channel called live still hears releases after its subscriber reconnects`, {
      skip: c.skip,
    }, async () => {
      const { client, close } = c.make();
      const name = unique("chan");
      const w = watchReleases(adaptRedisClient(client), runtime, name);
      let heard = 0;
      w.listen(() => heard++);
      try {
        assert.equal(await w.ready, true, "subscribed");
        await suite.raw.publish(name, "released");
        assert.ok(await eventually(() => heard === 1, 3_000), "heard before the reconnect");
        assert.ok(
          Number(await suite.raw.client("KILL", "TYPE", "pubsub")) >= 1,
          "the subscriber dropped",
        );
        await sleep(1_000); // the client reconnects meanwhile
        // The invariant waiters rely on: live (seen() >= 0) means heard.
        const ok = await eventually(async () => {
          await suite.raw.publish(name, "released");
          return heard > 1 || w.seen() < 0;
        }, 3_000);
        assert.ok(
          ok,
          `deaf after the reconnect, yet called live: seen() = ${w.seen()}, heard ${heard}`,
        );
      } finally {
        w.leave();
        close();
      }
    });
  }
});
