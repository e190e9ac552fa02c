// The client API's options are checked before anything is sent: an empty
// token (Web Crypto refuses an empty key with a DOMException of its own),
// and a timeout that is not a number of ms >= 0.
import { test } from "node:test";
import assert from "node:assert/strict";
import { lock, LockClient, LockError, serve } from "../mod.ts";

test("an empty or non-string client token is refused with a LockError", async () => {
  await using server = await serve({ port: 0, token: "s3cret" });
  const { port } = server.address;
  for (const token of ["", 42 as unknown as string]) {
    assert.throws(() => new LockClient({ port, token }), (error: unknown) => {
      assert.ok(error instanceof LockError);
      assert.match((error as Error).message, /Option token must be/);
      return true;
    });
    await assert.rejects(
      lock("x", { server: `127.0.0.1:${port}`, token }),
      (error: unknown) => error instanceof LockError && /Option token/.test(String(error)),
    );
  }
  // The right token still works.
  const held = await lock("x", { server: `127.0.0.1:${port}`, token: "s3cret" });
  await held.release();
});

test("LockClient.acquire refuses a timeout that is not a number of ms >= 0", async () => {
  await using server = await serve({ port: 0 });
  const client = new LockClient({ port: server.address.port });
  try {
    for (const timeout of [-1, Number.NaN, "5" as unknown as number]) {
      await assert.rejects(
        client.acquire("t", { timeout }),
        (error: unknown) => error instanceof LockError && /Option timeout/.test(String(error)),
      );
    }
    assert.equal(await client.status("t"), null, "nothing was sent");
  } finally {
    await client.close();
  }
});
