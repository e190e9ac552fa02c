// The held lock's shape, which lock() builds the same way for every kind
// (made cheaply per acquisition, see makeHeldLock in lib/_acquire.ts):
// release() works detached and only once, `await using` releases, and the
// signal is the kind's own, made when first read.
import { test } from "node:test";
import assert from "node:assert/strict";
import { lock, type LockInfo } from "../mod.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite } from "./_redis_suite.ts";

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

describeRedis("a held lock", () => {
  const suite = redisSuite();

  test("release() works detached and only once; the fields are the grant's", async () => {
    const name = unique("shape");
    const redis = suite.client();
    const held = await lock(name, { redis });
    assert.equal(held.name, name);
    assert.equal(held.kind, "redis");
    assert.equal(held.token, (held.info as LockInfo).token);
    assert.ok(await suite.raw.exists(`socketlock:${name}`));
    const { release } = held;
    const first = release();
    assert.equal(held.release(), first, "a second call returns the first one's promise");
    await first;
    assert.equal(await suite.raw.exists(`socketlock:${name}`), 0);
    // Free again for the next holder in this process.
    const next = await lock(name, { redis, timeout: 1_000 });
    assert.ok(next.token > held.token);
    await next.release();
  });

  test("await using releases; the signal is made on first read and is the same each time", async () => {
    const name = unique("using");
    const redis = suite.client();
    let signal: AbortSignal;
    {
      await using held = await lock(name, { redis });
      signal = held.signal;
      assert.equal(held.signal, signal);
      assert.equal(signal.aborted, false);
    }
    assert.equal(await suite.raw.exists(`socketlock:${name}`), 0, "released at the scope's end");
    assert.equal(signal.aborted, false, "a release is not a loss");
  });
});
