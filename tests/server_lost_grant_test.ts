// A server-kind lease lost at once: the connection dropping right after the
// OK that granted it (a crash or cut at that moment), or later. lock() must
// never hand out a lock already lost (an abort listener added to it would
// never run), and inspect() must not name our lost lock as the holder.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import type * as net from "node:net";
import { inspect, lock } from "../mod.ts";
import type { Child } from "./_processes.ts";
import { abortedSignal, serveProcess, sleep, within } from "./_server_helpers.ts";
import { cutAfterGrant, relayProxy } from "./_relay_proxy.ts";

/** Relays to `port`, and cuts every connection open so far when told. */
async function cuttable(port: number) {
  const live = new Set<net.Socket>();
  const proxy = await relayProxy(port, (client, upstream) => {
    live.add(client);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return { ...proxy, cut: () => live.forEach((socket) => socket.destroy()) };
}

describe("server kind: a lease lost right after its grant", () => {
  const children: Child[] = [];
  const closers: (() => Promise<void>)[] = [];
  after(async () => {
    for (const close of closers) await close();
    for (const child of children) child.process.kill("SIGKILL");
  });

  test("lock() does not return it lost: it returns a live lock, or one whose loss is heard", async () => {
    const server = await serveProcess("node");
    children.push(server.child);
    const proxy = await cutAfterGrant(server.port, { firstOnly: true });
    closers.push(() => proxy.close());
    const held = await lock("pre", { server: `127.0.0.1:${proxy.port}`, timeout: 5_000 });
    assert.equal(held.signal.aborted, false, "lock() returned a lock already lost");
    let heard = false;
    held.signal.addEventListener("abort", () => (heard = true), { once: true });
    await sleep(200);
    if (held.signal.aborted) {
      assert.ok(heard, "the loss happened, and the listener never ran");
    } else {
      // Taken again on a connection that stayed: the server says it is ours.
      assert.equal((await inspect("pre", { server: server.address }))?.token, held.token);
    }
    await held.release().catch(() => {});
  });

  test("inspect() after the loss names the new holder, not the lost lock", async () => {
    const server = await serveProcess("node");
    children.push(server.child);
    const proxy = await cuttable(server.port);
    closers.push(() => proxy.close());
    const address = `127.0.0.1:${proxy.port}`;
    const lost = await lock("seen", { server: address, timeout: 5_000 });
    proxy.cut();
    await within(abortedSignal(lost.signal), 5_000, "the loss");
    const other = await lock("seen", { server: server.address, timeout: 5_000 });
    try {
      assert.equal((await inspect("seen", { server: address }))?.token, other.token);
    } finally {
      await other.release();
      await lost.release().catch(() => {});
    }
  });
});
