// Replies that come late: a RENEW answered after our own keeper gave the
// lease up at its end, a renewal answered after the request's own deadline
// but well within the lease, and a manual renewal to a shorter ttl after
// such a late one (the keeper must renew for the new, earlier end).
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { LockClient, LockLostError, serve } from "../mod.ts";
import { abortedSignal, sleep, within } from "./_server_helpers.ts";
import { relayProxy } from "./_relay_proxy.ts";

// A relay to the server whose replies to the client can be held back (a
// slow link, a stalled reply path), and then let through in order.
async function stallingRelay(port: number) {
  let stalled = false;
  const held: Buffer[] = [];
  let toClient: Socket | null = null;
  const proxy = await relayProxy(port, (client, upstream) => {
    toClient = client;
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk: Buffer) => {
      if (stalled) held.push(chunk);
      else client.write(chunk);
    });
  });
  return {
    port: proxy.port,
    close: () => proxy.close(),
    stall: () => void (stalled = true),
    flow() {
      stalled = false;
      for (const chunk of held.splice(0)) (toClient as Socket | null)?.write(chunk);
    },
  };
}

// A server of its own, `client` reaching it through a stalling relay
// (`proxy`), and `other` reaching it directly; all closed when `body` ends.
async function overStallingRelay(
  clientOptions: { connectTimeout?: number },
  body: (link: {
    client: LockClient;
    other: LockClient;
    proxy: Awaited<ReturnType<typeof stallingRelay>>;
  }) => Promise<void>,
): Promise<void> {
  await using server = await serve({ port: 0 });
  const proxy = await stallingRelay(server.address.port);
  const client = new LockClient({ port: proxy.port, ...clientOptions });
  const other = new LockClient({ port: server.address.port });
  try {
    await body({ client, other, proxy });
  } finally {
    await client.close();
    await other.close();
    await proxy.close();
  }
}

test("renew() does not resolve with a lease its own keeper has declared lost and released", async () => {
  await overStallingRelay({}, async ({ client, other, proxy }) => {
    const lock = await client.lock("renew-race", { ttl: 300 });
    proxy.stall(); // from now on, no reply reaches the client until released below
    const renewing = client.renew("renew-race").then(
      (lease) => ({ ok: true as const, lease }),
      (error) => ({ ok: false as const, error }),
    );
    // The keeper's own renewal (due at ttl/3) gets no answer: at the lease's
    // end by our clock (~300 ms) it declares the lock lost and releases it.
    await within(abortedSignal(lock.signal), 3_000, "held.signal to abort");
    assert.ok(lock.signal.reason instanceof LockLostError);
    await sleep(100); // the keeper's RELEASE reaches the server
    // Another client now holds the name, legitimately.
    const theirs = await other.acquire("renew-race", { timeout: 0 });
    assert.ok(theirs.token > lock.token);
    // The replies come through at last: RENEW OK (read before the RELEASE).
    proxy.flow();
    const result = await within(renewing, 3_000, "renew() to settle");
    assert.equal(
      result.ok,
      false,
      `renew() resolved with a lease (token ${
        result.ok ? result.lease.token : "-"
      }) although held.signal had aborted, the client had released it, and another client holds the name (token ${theirs.token})`,
    );
    assert.ok(!result.ok && result.error instanceof LockLostError);
  });
});

test("a renewal answered late, but well within the lease, does not lose the lock", async () => {
  await overStallingRelay({ connectTimeout: 500 }, async ({ client, other, proxy }) => {
    const lock = await client.lock("slow-renewal", { ttl: 6_000 });
    const start = performance.now();
    // Replies from the server stall for 3.5 s; the keeper renews at ttl/3
    // (~2 s); the lease is ours by our clock until ~5.9 s.
    proxy.stall();
    await sleep(3_500);
    const abortedDuringStall = lock.signal.aborted;
    const when = (performance.now() - start).toFixed(0);
    proxy.flow();
    await sleep(300);
    const status = await other.status("slow-renewal");
    assert.equal(
      abortedDuringStall,
      false,
      `held.signal aborted within ${when} ms (${
        (lock.signal.reason as Error)?.message
      }), though the lease was ours by our clock for ~5,900 ms; the server now says the name is ${
        status ? `held by token ${status.token}` : "free"
      }`,
    );
    assert.equal(status?.token, lock.token, "the server still grants it to us");
    await lock.release();
  });
});

test("renew(name, shorter ttl) after a timed-out background renewal keeps the lease held", async () => {
  // RENEW's own deadline: connectTimeout * 2 = 1 s.
  await overStallingRelay({ connectTimeout: 500 }, async ({ client, other, proxy }) => {
    const lock = await client.lock("shorter", { ttl: 6_000 });
    // Replies stall for 3.6 s: the keeper's renewal (at ~2 s) times out at
    // ~3 s and is rescheduled for ~4.5 s; the lease is ours until ~5.9 s.
    proxy.stall();
    await sleep(3_600);
    assert.equal(lock.signal.aborted, false, "still held by our clock");
    proxy.flow();
    await sleep(50);
    // The server is answering again: shorten the lease to 600 ms.
    const lease = await client.renew("shorter", 600);
    assert.equal(lease.ttl, 600);
    // A keeper renews every ttl/3 = 200 ms from here; wait out 3 leases.
    await sleep(1_800);
    const status = await other.status("shorter");
    assert.equal(
      lock.signal.aborted,
      false,
      `held.signal aborted (${(lock.signal.reason as Error)?.message}) although the server ` +
        `answered every request after the stall; server says: ${
          status ? `held by token ${status.token}` : "free"
        }`,
    );
    assert.equal(status?.token, lock.token);
    await lock.release();
  });
});
