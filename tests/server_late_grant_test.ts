// A grant whose reply reaches the client after its lease ended by the
// client's own clock is no grant: the server may have given the name to
// someone else by then. It is given back, and a wait goes on within its own
// timeout. A relay delays the server's replies by more than the lease.

import { test } from "node:test";
import assert from "node:assert/strict";
import { lock, LockBusyError, LockTimeoutError } from "../mod.ts";
import { LockClient, serve } from "../lib/server/mod.ts";
import { relayProxy } from "./_relay_proxy.ts";
import { sleep, within } from "./_server_helpers.ts";

const DELAY_MS = 1_200;
const TTL_MS = 400;

/** A server, and a relay to it whose replies arrive DELAY_MS late (order kept). */
async function slowLink() {
  const server = await serve({ port: 0 });
  const relay = await relayProxy(server.address.port, (client, upstream) => {
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => {
      setTimeout(() => {
        if (!client.destroyed) client.write(chunk);
      }, DELAY_MS);
    });
  });
  return {
    port: server.address.port,
    relayPort: relay.port,
    async close() {
      await relay.close();
      await server.close();
    },
  };
}

test("a queued lock() whose grant arrives after its lease ended gives it back and waits on", async () => {
  const link = await slowLink();
  const a = new LockClient({ port: link.port });
  const c = new LockClient({ port: link.port });
  try {
    await a.acquire("job", { ttl: 10_000 });
    const b = lock("job", { server: `127.0.0.1:${link.relayPort}`, ttl: TTL_MS, timeout: 3_000 });
    const outcome = b.then((held) => held, (error) => error);
    for (let i = 0; i < 100 && (await a.stats()).waiting < 1; i++) await sleep(20);
    assert.equal((await a.stats()).waiting, 1, "B is queued");
    await a.release("job"); // granted to B, whose grant is 1.2 s on its way
    // C gets the name once B's lease, never renewed, has expired.
    const cLease = await within(c.acquire("job", { timeout: 5_000, ttl: 10_000 }), 5_000, "C");
    const result = await within(outcome, 6_000, "B's lock()");
    if (!(result instanceof Error)) await result.release();
    assert.ok(
      result instanceof LockTimeoutError,
      `B's lock() must not return a lock while C holds it (got ${result})`,
    );
    assert.equal((await c.status("job"))?.token, cLease.token, "C still holds the lock");
  } finally {
    await c.close();
    await a.close();
    await link.close();
  }
});

test("a try whose grant arrives after its lease ended gives it back and finds the lock busy", async () => {
  const link = await slowLink();
  const b = new LockClient({ port: link.relayPort });
  const watcher = new LockClient({ port: link.port });
  try {
    await assert.rejects(b.acquire("job", { timeout: 0, ttl: TTL_MS }), LockBusyError);
    // The lease was given back (or expired): the name is free for others.
    for (let i = 0; i < 50 && (await watcher.status("job")); i++) await sleep(20);
    assert.equal(await watcher.status("job"), null);
    assert.equal(await b.release("job"), false, "the client keeps no lease of it");
  } finally {
    await watcher.close();
    await b.close();
    await link.close();
  }
});
