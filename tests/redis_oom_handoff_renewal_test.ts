// under Redis' maxmemory (noeviction) OOM state, a lock
// handed over by a release can never be renewed, while a lock taken directly
// renews fine. EXTEND (and ACQUIRE's idempotent path) renew a handed-over
// lock with `SET key <value without "claim"> PX ttl` as the script's FIRST
// write; SET is a deny-oom command, and Redis refuses a script's first
// deny-oom write while over maxmemory (after a write it would let it through).
// A directly taken lock is renewed with PEXPIRE, which is not deny-oom. So the
// new holder's heartbeat fails with "OOM command not allowed" until its claim
// lease (2/3 of 2 s) runs out, and its signal aborts: a live, renewing holder
// loses its lock although Redis could have renewed it (PEXPIRE first, then
// SET, both succeed in that state).
import { test } from "node:test";
import assert from "node:assert/strict";
import { lock } from "../mod.ts";
import { ACQUIRE, CANCEL, EXTEND, INSPECT, PASS_ON, RELEASE } from "../lib/redis/scripts.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite } from "./_redis_suite.ts";
import { eventually } from "./_waiting.ts";

const TTL = 3_000; // lease 2000, refresh 100, claim 2000 (marked: 2000 < 3000)

describeRedis("renewal of a handed-over lock under OOM", () => {
  const suite = redisSuite();

  test("a handed-over lock keeps renewing when Redis is at maxmemory, as a directly taken one does", async () => {
    const name = `r14-oom-${crypto.randomUUID().slice(0, 8)}`;
    const other = `r14-oom-direct-${crypto.randomUUID().slice(0, 8)}`;
    for (const script of [ACQUIRE, CANCEL, EXTEND, INSPECT, PASS_ON, RELEASE]) {
      await suite.raw.script("LOAD", script.source);
    }
    const h = await lock(name, { redis: suite.client(), ttl: TTL });
    const waiting = lock(name, { redis: suite.client(), ttl: TTL, timeout: 5_000 });
    assert.ok(
      await eventually(async () => (await suite.raw.zcard(`socketlock:${name}:queue`)) === 1),
    );
    const direct = await lock(other, { redis: suite.client(), ttl: TTL });
    await h.release();
    const w = await waiting; // handed over: "claim" in the value until its first renewal
    assert.match((await suite.raw.get(`socketlock:${name}`))!, /"claim":/);
    try {
      await suite.raw.config("SET", "maxmemory", "1"); // noeviction: over the limit at once
      await new Promise((resolve) => setTimeout(resolve, 1_800)); // past the claim lease (~1.3 s)
      assert.equal(
        direct.signal.aborted,
        false,
        "control: the directly taken lock renews under OOM",
      );
      assert.equal(
        w.signal.aborted,
        false,
        `the handed-over lock was lost under OOM: ${String((w.signal.reason as Error)?.message)} ` +
          `(cause: ${String(((w.signal.reason as Error)?.cause as Error)?.message)})`,
      );
    } finally {
      await suite.raw.config("SET", "maxmemory", "0");
      await w.release().catch(() => {});
      await direct.release().catch(() => {});
    }
  });
});
