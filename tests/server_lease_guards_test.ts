// How a LockClient holder learns it no longer holds, seen through a proxy
// that can delay, inject and drop protocol lines: a renewal's reply that
// comes back late must not stretch the holder's lease past the server's;
// a LOST push or a renewal answered NOT_HOLDER must abort held.signal at
// once, not at the lease's end by our clock; and a connection dropped while
// it holds a name and waits for it again must not be granted it back.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { LockClient, LockLostError, serve } from "../mod.ts";
import { LockTable, Owner } from "../lib/server/lock_table.ts";
import { abortedSignal, within } from "./_server_helpers.ts";
import { relayProxy } from "./_relay_proxy.ts";
import { eventually } from "./_waiting.ts";

/**
 * A line-protocol proxy on loopback in front of `port`. Replies (server to
 * client) can be held back `delayMs`, or dropped by tag; lines can be
 * injected either way; `cut` drops every byte both ways from then on while
 * the connections stay open (a silent partition); `sent` collects the
 * client's request lines.
 */
async function proxyTo(port: number) {
  const state = { delayMs: 0, cut: false, dropTags: new Set<string>() };
  const sent: string[] = [];
  let toClient: (text: string) => void = () => {};
  let toServer: (text: string) => void = () => {};
  const lines = (socket: Socket, each: (line: string) => void) => {
    let rest = "";
    socket.on("data", (chunk) => {
      const parts = (rest + chunk.toString("utf8")).split("\n");
      rest = parts.pop()!;
      for (const line of parts) each(line);
    });
  };
  const proxy = await relayProxy(port, (client, upstream) => {
    toClient = (text) => client.write(text);
    toServer = (text) => upstream.write(text);
    lines(client, (line) => {
      if (state.cut) return;
      sent.push(line);
      upstream.write(`${line}\n`);
    });
    lines(upstream, (line) => {
      if (state.cut || state.dropTags.has(line.split(" ")[0])) return;
      if (state.delayMs === 0) return void client.write(`${line}\n`);
      setTimeout(() => state.cut || client.write(`${line}\n`), state.delayMs);
    });
  });
  return {
    ...proxy,
    state,
    sent,
    toClient: (text: string) => toClient(text),
    toServer: (text: string) => toServer(text),
  };
}

describe("lock server: a holder learns of its loss in time", () => {
  test("a renewal whose reply comes back late does not stretch the holder's lease: held.signal aborts before the next holder is granted", async () => {
    await using server = await serve({ port: 0 });
    const proxy = await proxyTo(server.address.port);
    const holder = new LockClient({ port: proxy.port });
    const waiter = new LockClient({ port: server.address.port });
    try {
      const held = await holder.lock("late-reply", { ttl: 60_000 });
      // Read when the grant arrives: the signal compares the clock with the
      // lease's end itself, so no timer's turn in the event loop matters.
      let liveAtGrant: boolean | null = null;
      const waiting = waiter.acquire("late-reply", { timeout: 20_000 }).then((lease) => {
        liveAtGrant = !held.signal.aborted;
        return lease;
      });
      // The server renews the lease to 1 s as it reads the request; its reply
      // reaches the holder 400 ms later. The holder's lease counts from when
      // it sent the request, not from when the reply came.
      proxy.state.delayMs = 400;
      await holder.renew("late-reply", 1_000);
      proxy.state.cut = true; // every later renewal goes unanswered
      await within(abortedSignal(held.signal), 10_000, "the holder's abort");
      assert.ok(held.signal.reason instanceof LockLostError, String(held.signal.reason));
      const lease = await within(waiting, 10_000, "the waiter's grant");
      assert.equal(
        liveAtGrant,
        false,
        "the old holder's signal was live when the waiter was granted",
      );
      assert.ok(lease.token > held.token);
      await waiter.release("late-reply");
    } finally {
      await holder.close();
      await waiter.close();
      await proxy.close();
    }
  });

  test("a LOST pushed by the server aborts held.signal at once, not at the lease's end by our clock", async () => {
    await using server = await serve({ port: 0 });
    const proxy = await proxyTo(server.address.port);
    const holder = new LockClient({ port: proxy.port });
    try {
      const held = await holder.lock("pushed-lost", { ttl: 60_000 });
      // As the server says it when it expired the lease (a clock that runs
      // fast, a holder paused): the name may be someone else's already.
      proxy.toClient(`* LOST pushed-lost ${held.token} expired\n`);
      assert.ok(
        await eventually(() => held.signal.aborted, 5_000),
        "held.signal still not aborted 5 s after the server said LOST (the lease runs 60 s)",
      );
      assert.ok(held.signal.reason instanceof LockLostError, String(held.signal.reason));
    } finally {
      await holder.close();
      await proxy.close();
    }
  });

  test("a renewal answered NOT_HOLDER aborts held.signal before the holder sends anything else", async () => {
    await using server = await serve({ port: 0 });
    const proxy = await proxyTo(server.address.port);
    const holder = new LockClient({ port: proxy.port });
    try {
      const held = await holder.lock("not-holder", { ttl: 3_000 });
      // The server lets the lease go behind the holder's back (its reply to
      // this injected request never reaches the client).
      proxy.state.dropTags.add("injected-1");
      proxy.toServer(`injected-1 RELEASE not-holder ${held.token}\n`);
      const renewalAt = await within(
        (async () => {
          for (let i = 0; i < 1_000; i++) {
            const at = proxy.sent.findIndex((line) => / RENEW not-holder /.test(line));
            if (at >= 0) return at;
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          throw new Error("no renewal was sent");
        })(),
        10_000,
        "the background renewal",
      );
      // Whatever the holder sends after that renewal (the answer is
      // NOT_HOLDER), it must already know it lost the lock: another renewal
      // sent while it still believes it holds means it went on working.
      assert.ok(
        await eventually(() => proxy.sent.length > renewalAt + 1, 5_000),
        `nothing sent after the renewal: ${proxy.sent.join(" | ")}`,
      );
      assert.equal(held.signal.aborted, true, `sent: ${proxy.sent.slice(renewalAt).join(" | ")}`);
      assert.ok(held.signal.reason instanceof LockLostError, String(held.signal.reason));
    } finally {
      await holder.close();
      await proxy.close();
    }
  });
});

describe("lock table: a dropped owner's own waits", () => {
  test("an owner dropped while it holds a name and waits for it again hands it to the next owner, not to itself", () => {
    const timers: (() => void)[] = [];
    const table = new LockTable({
      now: () => 0,
      wallNow: () => 1_700_000_000_000,
      setTimer: (fn) => {
        timers.push(fn);
        return { clear: () => {}, unref: () => {} };
      },
    });
    const a = new Owner({ pid: 1, host: "h", client: "a" });
    const b = new Owner({ pid: 2, host: "h", client: "b" });
    const granted: string[] = [];
    const handler = (label: string) => ({
      granted: () => void granted.push(label),
      timedOut: () => void granted.push(`${label} timed out`),
    });
    assert.equal(table.acquire("job", a, 30_000, 0).status, "granted");
    assert.equal(table.acquire("job", a, 30_000, Infinity, handler("a again")).status, "queued");
    assert.equal(table.acquire("job", b, 30_000, Infinity, handler("b")).status, "queued");
    assert.equal(table.drop(a), 1);
    assert.deepEqual(granted, ["b"], "the name goes past the dropped owner's own wait");
    assert.equal(table.holderOf("job")?.owner, b);
    assert.equal(a.leases.size, 0, "the dropped owner holds nothing");
    table.close();
  });
});
