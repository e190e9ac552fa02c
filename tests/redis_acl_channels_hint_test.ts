// Redis 7 gives users made by ACL SETUSER no channels by default
// (acl-pubsub-default resetchannels). Such a user can take locks, but every
// release fails when its script PUBLISHes ("ERR The user executing the
// script can't publish to the channel ...", code ERR, not NOPERM): the
// error's Fix must name the missing channel permission, not only "check the
// key and the Redis server's log".
import { test } from "node:test";
import assert from "node:assert/strict";
import { lock, LockProtocolError } from "../mod.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite } from "./_redis_suite.ts";

describeRedis("Redis kind: a Redis user without channel permissions", () => {
  const suite = redisSuite();
  test("release() fails with a Fix that names the missing channel permission", async () => {
    await suite.raw.call("ACL", "SETUSER", "nochan", "on", ">pw", "~*", "resetchannels", "+@all");
    const client = suite.client({ username: "nochan", password: "pw" });
    const held = await lock("acl-hint", { redis: client, ttl: 5_000 });
    const error = await held.release().then(() => null, (e) => e as Error);
    assert.ok(error instanceof LockProtocolError, `release: ${error}`);
    assert.match(error.message, /Fix: .*(channel|&)/i, error.message);
  });
});
