// A server-kind waiter that stays queued must not pile reactions on the one
// pending AcquireCall.final: each pause of the generic loop used to attach a
// fresh .then chain to it (~900 bytes a poll, ~64 MiB an hour of waiting at
// the default backoff), freed only when the wait ended. Now each pause has a
// promise of its own, dropped when it ends, and the wait does not poll.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { lock, LockTimeoutError } from "../mod.ts";
import { type LockServer, serve } from "../lib/server/mod.ts";
import { AcquireCall } from "../lib/server/_client_ops.ts";
import { RawConnection } from "./_server_helpers.ts";

describe("server kind: a long queued wait", () => {
  let server: LockServer;
  before(async () => {
    server = await serve({ port: 0 });
  });
  after(async () => {
    await server.close();
  });

  test("does not attach one more reaction to the pending grant per poll", async () => {
    const name = `reactions-${crypto.randomUUID().slice(0, 8)}`;
    const holder = await RawConnection.open(server.address.port);
    assert.match(await holder.ask(`ACQUIRE ${name} 0 60000`), / OK /);

    const descriptor = Object.getOwnPropertyDescriptor(AcquireCall.prototype, "final")!;
    const counted = new WeakSet<object>();
    let thens = 0;
    Object.defineProperty(AcquireCall.prototype, "final", {
      configurable: true,
      get() {
        const promise = descriptor.get!.call(this) as Promise<unknown>;
        if (!counted.has(promise)) {
          counted.add(promise);
          const then = promise.then;
          // deno-lint-ignore no-explicit-any
          (promise as any).then = function (...args: any[]) {
            thens++;
            // deno-lint-ignore no-explicit-any
            return (then as any).apply(this, args);
          };
        }
        return promise;
      },
    });
    try {
      const error = await lock(name, {
        server: `127.0.0.1:${server.address.port}`,
        timeout: 2_000,
      }).catch((e) => e);
      assert.ok(error instanceof LockTimeoutError, String(error));
    } finally {
      Object.defineProperty(AcquireCall.prototype, "final", descriptor);
      holder.close();
    }
    // One wait, one pending grant: a bounded number of reactions whatever
    // the wait's length. Seen: ~20 for 2 s (one per poll), i.e. ~36,000 an
    // hour of waiting, each holding a cleared timer, closures and promises.
    assert.ok(thens <= 3, `${thens} reactions attached to one pending grant in a 2 s wait`);
  });
});
