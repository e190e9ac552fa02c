// A LockClient that gives a lease up by other means than its HeldLock
// (closing the client, release(name)) must abort that lock's held.signal at
// once: the server grants the name to the next waiter right away, and a
// holder that still believes it holds it is a second holder.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type * as net from "node:net";
import { inspect, lock, LockClient, LockLostError, serve } from "../mod.ts";
import { type Connection, type Runtime, runtime } from "../lib/runtime/mod.ts";
import { ClientCore } from "../lib/server/_client_core.ts";
import { serverTarget } from "../lib/server/server_target.ts";
import { relayProxy } from "./_relay_proxy.ts";
import { RawConnection, serveProcess, signal, within } from "./_server_helpers.ts";

/**
 * The runtime, except that connections never report their close: the client
 * behaves as in a process too busy to see its close event yet.
 */
function withoutCloseEvents(): Runtime {
  const withheld = (conn: Connection): Connection => ({
    onData: (handler) => conn.onData(handler),
    onClose: () => {},
    write: (data) => conn.write(data),
    close: () => conn.close(),
    unref: () => conn.unref(),
    get bufferedAmount() {
      return conn.bufferedAmount;
    },
    onDrain: (handler) => conn.onDrain(handler),
    pause: () => conn.pause(),
    resume: () => conn.resume(),
    abort: () => conn.abort(),
  });
  return {
    ...runtime,
    connect: async (address, timeout) => withheld(await runtime.connect(address, timeout)),
  };
}

describe("LockClient: leases given up by close() or release(name)", () => {
  test("LockClient.close() aborts held.signal at once: the server grants the name on the FIN", async () => {
    // The server is another process, so it hands the name over while this
    // one is still busy after close() and has not seen its own close event.
    const server = await serveProcess("node");
    const a = new LockClient({ port: server.port });
    let b: RawConnection | null = null;
    try {
      const held = await a.lock("closing", { ttl: 30_000 });
      b = await RawConnection.open(server.port);
      await b.ask("HELLO 1 b");
      b.send("w1 ACQUIRE closing forever 30000\n");
      await b.waitLine(/^w1 QUEUED/);
      await a.close();
      const until = Date.now() + 300;
      while (Date.now() < until) {
        // busy: the work that follows close() in the same turn
      }
      const checkedAt = Date.now();
      const stillBelieved = !held.signal.aborted;
      await within(b.waitLine(/^w1 OK/), 5_000, "b granted");
      const status = JSON.parse((await b.ask("STATUS closing")).split(" ").slice(2).join(" "));
      const grantedToB = status.holder.client !== undefined &&
        status.holder.acquiredAt <= checkedAt;
      assert.ok(
        !(stillBelieved && grantedToB),
        `a's held.signal was not aborted at ${checkedAt} although b was granted at ${status.holder.acquiredAt}`,
      );
      assert.equal(stillBelieved, false, "close() must abort held.signal before it returns");
    } finally {
      await a.close();
      b?.close();
      signal(server.child.pid, "SIGKILL");
      await server.child.done;
    }
  });

  test("LockClient.release(name) of a name taken by lock() aborts that lock's held.signal", async () => {
    await using server = await serve({ port: 0 });
    const a = new LockClient({ port: server.address.port });
    const b = new LockClient({ port: server.address.port });
    try {
      const held = await a.lock("by-name", { ttl: 30_000 });
      const other = b.acquire("by-name", { ttl: 30_000 });
      assert.equal(await a.release("by-name"), true);
      const lease = await within(other, 5_000, "b granted");
      assert.ok(lease.token > held.token);
      assert.equal(held.signal.aborted, true, "b holds the name: a's holder must know");
      assert.ok(held.signal.reason instanceof LockLostError);
      assert.equal(await b.release("by-name"), true);
      await held.release(); // frees the in-process slot; the lease is gone already
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("a reply it cannot read drops the connection and aborts held.signal at once, not on the close event", async () => {
    await using server = await serve({ port: 0 });
    let toClient: net.Socket | null = null;
    let clientClosed!: () => void;
    const closedByClient = new Promise<void>((resolve) => (clientClosed = resolve));
    const proxy = await relayProxy(server.address.port, (client, upstream) => {
      toClient = client;
      client.on("data", (data) => upstream.write(data));
      upstream.on("data", (data) => client.write(data));
      client.on("end", clientClosed);
    });
    const core = new ClientCore({
      hostname: "127.0.0.1",
      port: proxy.port,
      connectTimeout: 5_000,
      runtime: withoutCloseEvents(),
    });
    try {
      const attempt = await serverTarget(core, "garbled", {}).tryAcquire();
      assert.ok(attempt.acquired);
      const lost = attempt.grant.lost!;
      assert.equal(lost.aborted, false);
      toClient!.write("this is no reply\n");
      // The client closed its end: the server may grant the name to the next
      // waiter now, so the holder must already know.
      await within(closedByClient, 5_000, "the client drops the connection");
      assert.equal(lost.aborted, true, "dropped without aborting held.signal: two holders");
      assert.ok(lost.reason instanceof LockLostError);
    } finally {
      core.close();
      await proxy.close();
    }
  });

  test("a grant followed, in the same read, by a reply it cannot read is not handed out: the wait goes on", async () => {
    await using server = await serve({ port: 0 });
    let injected = false;
    const proxy = await relayProxy(server.address.port, (client, upstream) => {
      client.on("data", (data) => upstream.write(data));
      upstream.on("data", (data: Buffer) => {
        // The grant and a garbled line arrive together.
        if (!injected && /\bOK \d+ \d+ \d+\n/.test(data.toString())) {
          injected = true;
          client.write(Buffer.concat([data, Buffer.from("this is no reply\n")]));
        } else client.write(data);
      });
    });
    try {
      const held = await lock("garbled-grant", { server: `127.0.0.1:${proxy.port}`, ttl: 30_000 });
      assert.ok(injected);
      // That connection is gone, and with it the lease: a lock with its
      // signal aborted already would never fire a listener added to it.
      assert.equal(held.signal.aborted, false);
      const holder = await inspect("garbled-grant", { server: `127.0.0.1:${server.address.port}` });
      assert.equal(holder?.token, held.token, "taken again, on a new connection");
      await held.release();
    } finally {
      await proxy.close();
    }
  });
});
