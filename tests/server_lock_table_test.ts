// The lock server's table on a scripted clock: grants, FIFO hand-over,
// leases that expire (revoked before the next grant), renewals, owner-only
// release, dropped owners, timeouts, tokens, and bounded memory.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Lease, LockTable, Owner, type WaiterHandler } from "../lib/server/lock_table.ts";
import { FencingTokens } from "../lib/_fencing_tokens.ts";
import { DeadlineHeap, type HeapItem } from "../lib/server/_deadline_heap.ts";
import { FakeClock } from "./_fake_table_clock.ts";

function recorder() {
  const events: string[] = [];
  const handler = (label: string): WaiterHandler => ({
    granted: (lease, waited) => events.push(`${label} granted ${lease.token} after ${waited}`),
    timedOut: (holder) =>
      events.push(`${label} timed out; holder ${holder?.owner.info.client ?? "none"}`),
  });
  return { events, handler };
}

function owner(name: string, lost?: (lease: Lease) => void): Owner {
  return new Owner({ pid: 1, host: "h", client: name }, lost);
}

describe("the lock table", () => {
  test("a free name is granted at once and a held one is reported busy with its holder", () => {
    const clock = new FakeClock();
    const table = new LockTable(clock);
    const a = owner("a");
    const first = table.acquire("job", a, 1_000, 0);
    assert.equal(first.status, "granted");
    const second = table.acquire("job", owner("b"), 1_000, 0);
    assert.equal(second.status, "busy");
    assert.equal(second.status === "busy" && second.holder.owner, a);
    assert.equal(table.held, 1);
    table.close();
  });

  test("waiters are granted in FIFO order the moment the holder releases", () => {
    const clock = new FakeClock();
    const table = new LockTable(clock);
    const { events, handler } = recorder();
    const a = owner("a");
    table.acquire("job", a, 1_000, 0);
    const owners = ["b", "c", "d"].map((n) => owner(n));
    owners.forEach((o, i) => {
      clock.advance(1);
      const outcome = table.acquire("job", o, 1_000, 5_000, handler(o.info.client));
      assert.equal(outcome.status, "queued");
      assert.equal(outcome.status === "queued" && outcome.position, i + 1);
    });
    clock.advance(10);
    assert.ok(table.release("job", a));
    assert.equal(events.length, 1);
    assert.match(events[0], /^b granted \d+ after 12$/);
    assert.ok(table.release("job", owners[0]));
    assert.ok(table.release("job", owners[1]));
    assert.deepEqual(events.map((e) => e.split(" ")[0]), ["b", "c", "d"]);
    assert.equal(table.holderOf("job")?.owner, owners[2]);
    table.close();
  });

  test("owners dropped after the table closed (connections closing at shutdown) undo nothing and throw nothing", () => {
    const table = new LockTable(new FakeClock());
    const { events, handler } = recorder();
    const [a, b] = [owner("a"), owner("b")];
    table.acquire("job", a, 1_000, 0);
    assert.equal(table.acquire("job", b, 1_000, 60_000, handler("b")).status, "queued");
    table.close();
    assert.equal(table.drop(b), 0);
    assert.equal(table.drop(a), 0);
    assert.deepEqual(events, [], "no handler is called after close");
  });

  test("only the holder can release, and a token must match when given", () => {
    const table = new LockTable(new FakeClock());
    const a = owner("a");
    const outcome = table.acquire("job", a, 1_000, 0);
    assert.equal(outcome.status, "granted");
    const token = outcome.status === "granted" ? outcome.lease.token : 0;
    assert.equal(table.release("job", owner("b")), false);
    assert.equal(table.release("job", a, token + 1), false);
    assert.equal(table.release("job", a, token), true);
    assert.equal(table.release("job", a, token), false, "release is not repeated");
    assert.equal(table.names, 0, "a free name leaves no entry behind");
    table.close();
  });

  test("an expired lease is revoked and its owner told before the next waiter is granted", () => {
    const clock = new FakeClock();
    const table = new LockTable(clock);
    const order: string[] = [];
    const a = owner("a", (lease) => {
      order.push(`lost ${lease.token}`);
      assert.equal(table.holderOf("job"), null, "revoked before the owner is told");
    });
    const first = table.acquire("job", a, 100, 0);
    const b = owner("b");
    table.acquire("job", b, 100, 10_000, {
      granted: (lease) => {
        order.push("b granted");
        assert.equal(a.leases.size, 0, "the old owner holds nothing any more");
        assert.equal(table.holderOf("job"), lease);
      },
      timedOut: () => order.push("b timed out"),
    });
    clock.advance(99);
    assert.deepEqual(order, []);
    clock.advance(1);
    assert.deepEqual(order, [
      `lost ${first.status === "granted" && first.lease.token}`,
      "b granted",
    ]);
    assert.equal(table.renew("job", a, 100), null, "the expired owner cannot renew");
    assert.equal(table.release("job", a), false, "nor release");
    table.close();
  });

  test("renewing moves the lease end, so the lease outlives its first ttl", () => {
    const clock = new FakeClock();
    const table = new LockTable(clock);
    let lost = 0;
    const a = owner("a", () => lost++);
    table.acquire("job", a, 100, 0);
    for (let i = 0; i < 10; i++) {
      clock.advance(60);
      assert.ok(table.renew("job", a, 100), `renewal ${i}`);
    }
    assert.equal(lost, 0);
    clock.advance(100);
    assert.equal(lost, 1);
    assert.equal(table.held, 0);
    table.close();
  });

  test("a waiter that runs out of time is told who holds the name and leaves the queue", () => {
    const clock = new FakeClock();
    const table = new LockTable(clock);
    const { events, handler } = recorder();
    const a = owner("a");
    table.acquire("job", a, 10_000, 0);
    table.acquire("job", owner("b"), 1_000, 50, handler("b"));
    table.acquire("job", owner("c"), 1_000, 5_000, handler("c"));
    clock.advance(50);
    assert.deepEqual(events, ["b timed out; holder a"]);
    assert.equal(table.queueLength("job"), 1);
    table.release("job", a);
    assert.match(events[1], /^c granted/);
    table.close();
  });

  test("dropping an owner releases its locks to the next waiters and withdraws its waits", () => {
    const clock = new FakeClock();
    const table = new LockTable(clock);
    const { events, handler } = recorder();
    const a = owner("a");
    const b = owner("b");
    table.acquire("x", a, 1_000, 0);
    table.acquire("y", a, 1_000, 0);
    table.acquire("z", b, 1_000, 0);
    table.acquire("x", b, 1_000, 5_000, handler("b-x"));
    table.acquire("z", a, 1_000, 5_000, handler("a-z"));
    assert.equal(table.drop(a), 2);
    assert.equal(events.length, 1);
    assert.match(events[0], /^b-x granted/);
    assert.equal(table.holderOf("y"), null);
    assert.equal(table.queueLength("z"), 0, "a's wait for z is gone");
    clock.advance(10_000);
    assert.equal(table.held, 0, "b's leases on x and z expire later");
    assert.equal(events.length, 1, "no waiter of a's is ever granted");
    table.close();
  });

  test("an owner asking again for a name it holds queues behind itself", () => {
    const table = new LockTable(new FakeClock());
    const { events, handler } = recorder();
    const a = owner("a");
    table.acquire("job", a, 1_000, 0);
    assert.equal(table.acquire("job", a, 1_000, 1_000, handler("again")).status, "queued");
    table.release("job", a);
    assert.match(events[0], /^again granted/);
    table.close();
  });

  test("a cancelled waiter is never granted", () => {
    const table = new LockTable(new FakeClock());
    const { events, handler } = recorder();
    const a = owner("a");
    table.acquire("job", a, 1_000, 0);
    const outcome = table.acquire("job", owner("b"), 1_000, 1_000, handler("b"));
    assert.ok(outcome.status === "queued" && table.cancel(outcome.waiter));
    table.release("job", a);
    assert.deepEqual(events, []);
    assert.equal(table.names, 0);
    table.close();
  });

  test("fencing tokens strictly increase per name, across names, and when the clock steps back", () => {
    const clock = new FakeClock();
    const table = new LockTable(clock);
    const a = owner("a");
    const tokens: number[] = [];
    for (let i = 0; i < 50; i++) {
      const outcome = table.acquire(i % 2 ? "x" : "y", a, 1_000, 0);
      assert.equal(outcome.status, "granted");
      if (outcome.status === "granted") tokens.push(outcome.lease.token);
      table.release(i % 2 ? "x" : "y", a);
      if (i === 25) clock.wall -= 3_600_000; // NTP steps the clock back an hour
    }
    for (let i = 1; i < tokens.length; i++) {
      assert.ok(tokens[i] > tokens[i - 1], `${tokens[i - 1]} < ${tokens[i]}`);
    }
    table.close();
  });

  test("a new token source started later issues tokens above an earlier one's, like a restarted server", () => {
    let wall = 1_700_000_000_000;
    const before = new FencingTokens(() => wall);
    let last = 0;
    // 5,000 grants within one millisecond: far more than a server can do.
    for (let i = 0; i < 5_000; i++) last = before.next();
    wall += 50; // the restart takes at least this long
    const after = new FencingTokens(() => wall);
    assert.ok(after.next() > last);
  });

  test("the table forgets names nobody holds or waits for, so its memory stays bounded", () => {
    const clock = new FakeClock();
    const table = new LockTable(clock);
    const a = owner("a");
    for (let i = 0; i < 10_000; i++) {
      table.acquire(`n${i}`, a, 50, 0);
      if (i % 2) table.release(`n${i}`, a);
    }
    assert.equal(table.names, 5_000);
    clock.advance(60);
    assert.equal(table.names, 0);
    assert.equal(table.held, 0);
    assert.equal(a.leases.size, 0);
    table.close();
  });
});

describe("the deadline heap", () => {
  test("pops items in deadline order after random pushes, removals and updates", () => {
    const heap = new DeadlineHeap<HeapItem & { id: number }>();
    const items = Array.from(
      { length: 500 },
      (_, id) => ({ id, deadline: Math.random() * 1_000, heapIndex: -1 }),
    );
    for (const item of items) heap.push(item);
    for (const item of items.slice(0, 100)) heap.remove(item);
    for (const item of items.slice(100, 200)) heap.update(item, Math.random() * 1_000);
    const popped: number[] = [];
    for (let item = heap.pop(); item; item = heap.pop()) popped.push(item.deadline);
    assert.equal(popped.length, 400);
    for (let i = 1; i < popped.length; i++) assert.ok(popped[i] >= popped[i - 1]);
    assert.ok(items.every((item) => item.heapIndex === -1));
  });
});
