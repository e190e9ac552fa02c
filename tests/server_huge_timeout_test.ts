// lock(name, { server, timeout }) with a timeout above 2^53 ms (legal: any
// number >= 0 is, and Infinity worked) sent the server a wait it could not
// parse, and the wait failed at once. A wait of 2^31 - 1 ms or more, which
// the server reads as forever anyway, is now sent as "forever".
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { lock } from "../mod.ts";
import { type LockServer, serve } from "../lib/server/mod.ts";
import { RawConnection, sleep } from "./_server_helpers.ts";

describe("server kind: very long timeouts", () => {
  let server: LockServer;
  before(async () => {
    server = await serve({ port: 0 });
  });
  after(async () => {
    await server.close();
  });

  for (const timeout of [2 ** 31 + 1_000, 2 ** 53, 1e17, 1e21, Number.MAX_VALUE, Infinity]) {
    test(`a wait with timeout ${timeout} waits, then gets the lock when it is let go`, async () => {
      const name = `huge-${crypto.randomUUID().slice(0, 8)}`;
      const holder = await RawConnection.open(server.address.port);
      assert.match(await holder.ask(`ACQUIRE ${name} 0 60000`), / OK /);
      let outcome: unknown = "pending";
      const waiting = lock(name, { server: `127.0.0.1:${server.address.port}`, timeout }).then(
        (held) => (outcome = held),
        (error) => (outcome = error),
      );
      await sleep(300);
      const early = outcome;
      holder.close();
      await waiting;
      if (outcome && typeof (outcome as { release?: unknown }).release === "function") {
        await (outcome as { release(): Promise<void> }).release();
      }
      assert.equal(early, "pending", `ended within 300 ms: ${String(early)}`);
      assert.ok(!(outcome instanceof Error), `ended with ${String(outcome)}`);
    });
  }
});
