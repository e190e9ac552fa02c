// Bad input never crashes or hangs the lock server: random bytes, a 1 MB
// line, half a line then silence, unknown commands, names and waits over
// the limits, too many connections, and 10,000 idle connections. Each gets
// a clear reply or a closed connection; other clients keep working; the
// server's memory stays bounded. The server runs as a process of the
// runtime running this file, so its memory can be read from /proc.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { LockClient, LockError, serve } from "../mod.ts";
import { detectRuntimeName } from "../lib/runtime/mod.ts";
import { DistlockdCommand, encodeDistlockdRequest } from "../lib/server/distlockd_frames.ts";
import type { Child } from "./_processes.ts";
import { RawConnection, residentKb, serveProcess, sleep, within } from "./_server_helpers.ts";

const IDLE_MS = 500;

/** Resolves once `conn` has a reply or is closed (a close with no reply counts). */
function replyOrClose(conn: RawConnection, ms: number): Promise<unknown> {
  return conn.waitBytes(1, ms).catch((error) => {
    if (!conn.isClosed) throw error;
  });
}

describe("the lock server facing bad input", () => {
  let child: Child;
  let port: number;
  let witness: LockClient;
  const raws: RawConnection[] = [];
  const raw = async () => {
    const made = await RawConnection.open(port);
    raws.push(made);
    return made;
  };
  /** A well-behaved client still gets and releases a lock. */
  async function othersStillWork(): Promise<void> {
    const lease = await within(
      witness.acquire("witness", { timeout: 5_000 }),
      10_000,
      "the witness lock",
    );
    assert.ok(lease.token > 0);
    assert.equal(await witness.release("witness"), true);
  }

  before(async () => {
    const proc = await serveProcess(detectRuntimeName(), [
      "--idle-timeout",
      String(IDLE_MS),
      "--max-name",
      "64",
      "--max-waiters",
      "3",
    ]);
    child = proc.child;
    port = proc.port;
    witness = new LockClient({ port });
  });
  after(async () => {
    for (const made of raws) made.close();
    await witness.close();
    child.process.kill("SIGTERM");
    await within(child.done, 10_000, "the server's exit").catch(() =>
      child.process.kill("SIGKILL")
    );
  });

  test("random bytes get an error reply or a closed connection, and other clients keep working", async () => {
    const conns = await Promise.all(Array.from({ length: 40 }, () => raw()));
    for (const conn of conns) {
      conn.send(crypto.getRandomValues(new Uint8Array(1 + Math.floor(Math.random() * 4_000))));
    }
    await within(
      Promise.all(conns.map((conn) => replyOrClose(conn, IDLE_MS * 6))),
      IDLE_MS * 8,
      "a reply or a close for every connection",
    );
    await othersStillWork();
  });

  test("a 1 MB line is answered LINE_TOO_LONG and the same connection goes on working", async () => {
    const conn = await raw();
    conn.send("t1 ACQUIRE ");
    const chunk = "x".repeat(64 * 1024);
    for (let i = 0; i < 16; i++) conn.send(chunk);
    conn.send("\n");
    // Answered with the tag it starts with, so that request fails at once.
    assert.match(await conn.waitLine(/^t1 ERR /), /^t1 ERR LINE_TOO_LONG .*4096 bytes/);
    assert.match(await conn.ask("HEALTH"), / OK$/);
    await othersStillWork();
  });

  test("half a line then silence: the server says BYE and closes after the idle timeout", async () => {
    const conn = await raw();
    conn.send("t1 ACQU");
    const started = performance.now();
    await within(conn.closed, IDLE_MS * 10, "the idle close");
    assert.ok(performance.now() - started >= IDLE_MS * 0.5);
    assert.match(conn.text, /^\* BYE idle/m);
    await othersStillWork();
  });

  test("a connection holding a lock is not closed for idleness while its lease lasts", async () => {
    const conn = await raw();
    assert.match(await conn.ask("ACQUIRE kept 0 3000"), / OK /);
    await sleep(IDLE_MS * 3);
    assert.equal(conn.isClosed, false);
    assert.match(await conn.ask("RELEASE kept"), / OK$/);
  });

  test("unknown commands and malformed requests get ERR replies and the connection goes on", async () => {
    const conn = await raw();
    const requests = [
      "FROB",
      "ACQUIRE",
      "ACQUIRE x soon",
      "RELEASE x -1",
      "RENEW",
      "STATUS a b",
      "AUTH x y",
    ];
    for (const request of requests) {
      assert.match(await conn.ask(request), / ERR (UNKNOWN_COMMAND|BAD_REQUEST) .{10,}/, request);
    }
    conn.send("!!! garbage\n\u0000\u0001 more\n");
    assert.match(await conn.waitLine(/^\* ERR BAD_REQUEST/), /tag/);
    assert.match(await conn.ask("HEALTH"), / OK$/);
  });

  test("names over the limit get NAME_TOO_LONG, in both protocols", async () => {
    const conn = await raw();
    assert.match(await conn.ask(`ACQUIRE ${"n".repeat(65)}`), /ERR NAME_TOO_LONG .*64 bytes/);
    assert.match(await conn.ask(`ACQUIRE ${"n".repeat(64)}`), / OK /);
    const binary = await raw();
    binary.send(encodeDistlockdRequest(DistlockdCommand.ACQUIRE, "n".repeat(1_000), "id"));
    binary.send(encodeDistlockdRequest(DistlockdCommand.HEALTH, "health", "id"));
    const message = "Lock name too long (1000 bytes, at most 64)";
    const bytes = await binary.waitBytes(3 + message.length + 3);
    assert.deepEqual(bytes.slice(0, 3), [1, 0, message.length], "distlockd's ERROR status");
    assert.equal(
      new TextDecoder().decode(new Uint8Array(bytes.slice(3, 3 + message.length))),
      message,
    );
    assert.deepEqual(bytes.slice(3 + message.length), [0, 0, 0], "then HEALTH is OK");
  });

  test("waits per connection are limited, with TOO_MANY_WAITERS once over the limit", async () => {
    const holder = await raw();
    const waiter = await raw();
    for (let i = 0; i < 4; i++) assert.match(await holder.ask(`ACQUIRE w${i}`), / OK /);
    for (let i = 0; i < 3; i++) {
      waiter.send(`w${i} ACQUIRE w${i} 10000\n`);
      await waiter.waitLine(new RegExp(`^w${i} QUEUED`));
    }
    assert.match(await waiter.ask("ACQUIRE w3 10000"), /ERR TOO_MANY_WAITERS/);
    holder.close();
    await waiter.waitLine(/^w2 OK/);
  });

  test("locks per connection are limited counting its waits, so granted waits never take it over the limit", async () => {
    await using server = await serve({ port: 0, maxLocksPerConnection: 2 });
    const holder = await RawConnection.open(server.address.port);
    const capped = await RawConnection.open(server.address.port);
    try {
      for (const name of ["l0", "l1"]) assert.match(await holder.ask(`ACQUIRE ${name}`), / OK /);
      assert.match(await capped.ask("ACQUIRE mine"), / OK /);
      capped.send("q1 ACQUIRE l0 10000\n");
      await capped.waitLine(/^q1 QUEUED/);
      // One held and one waited for: the limit of 2.
      assert.match(await capped.ask("ACQUIRE l1 10000"), /ERR TOO_MANY_LOCKS/);
      assert.match(await capped.ask("ACQUIRE free"), /ERR TOO_MANY_LOCKS/);
      holder.close();
      await capped.waitLine(/^q1 OK/);
      assert.equal((await server.stats()).held, 2, "the capped connection holds 2, no more");
    } finally {
      holder.close();
      capped.close();
    }
  });

  test("10,000 idle connections opened and dropped in batches leave the server healthy, its memory bounded", async () => {
    await othersStillWork();
    const namesBefore = (await witness.stats()).names;
    const before = await residentKb(child.pid);
    for (let batch = 0; batch < 20; batch++) {
      const conns = await within(
        Promise.all(Array.from({ length: 500 }, () => RawConnection.open(port))),
        30_000,
        `batch ${batch}`,
      );
      conns.forEach((conn, i) => {
        if (i % 3 === 1) conn.send("t1 ACQUIRE half-a-li");
        if (i % 3 === 2) conn.send(new Uint8Array([1, 0, 200]));
      });
      for (const conn of conns) conn.close();
      await Promise.all(conns.map((conn) => within(conn.closed, 10_000, "a client-side close")));
    }
    await sleep(200);
    const stats = await witness.stats();
    assert.ok(stats.connections <= 3, `connections left: ${stats.connections}`);
    assert.equal(stats.waiting, 0);
    assert.equal(stats.names, namesBefore, "no name entry outlives its last holder or waiter");
    await othersStillWork();
    // Resident memory also holds what the garbage collector and malloc have
    // not handed back yet (Deno's high-water mark for 500 connections at once
    // is ~200 MB); a leak of even one 64 KB buffer per connection would add
    // 640 MB here.
    const grown = (await residentKb(child.pid)) - before;
    assert.ok(grown < 320 * 1024, `the server grew by ${grown} KB`);
  });
});

describe("the lock server at its connection limit", () => {
  test("a connection over the limit is told TOO_MANY_CONNECTIONS and closed, and the others keep working", async () => {
    const server = await serve({ port: 0, maxConnections: 3 });
    const conns: RawConnection[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const conn = await RawConnection.open(server.address.port);
        conns.push(conn);
        assert.match(await conn.ask("HEALTH"), / OK$/);
      }
      const extra = await RawConnection.open(server.address.port);
      conns.push(extra);
      await within(extra.closed, 5_000, "the refused connection's close");
      assert.match(extra.text, /^\* ERR TOO_MANY_CONNECTIONS /);
      assert.match(await conns[0].ask("ACQUIRE still-fine"), / OK /);
      const refused = await new LockClient({ port: server.address.port, connectTimeout: 200 })
        .health();
      assert.equal(refused, false);
    } finally {
      for (const conn of conns) conn.close();
      await server.close();
    }
  });
});

describe("serve() options", () => {
  test("limits that count things, and leases (whole ms on the wire), must be whole numbers of at least 1, with a LockError naming the option", async () => {
    for (
      const bad of [
        { maxConnections: 1.5 },
        { maxConnections: 0.5 },
        { maxLineBytes: 0 },
        {
          maxOutputBytes: Number.NaN,
        },
        { idleTimeout: 0 },
        { ttl: 1500.5 },
        { maxTtl: 2000.5 },
      ]
    ) {
      await assert.rejects(serve({ port: 0, ...bad }), (error: Error) => {
        assert.ok(error instanceof LockError);
        assert.match(error.message, new RegExp(`serve\\(\\): ${Object.keys(bad)[0]} must be`));
        return true;
      });
    }
  });

  test("a ttl above maxTtl is refused, naming both; a default ttl above it is cut to it", async () => {
    await assert.rejects(
      serve({ port: 0, ttl: 10_000, maxTtl: 5 }),
      /ttl \(10000 ms\) is above maxTtl \(5 ms\)/,
    );
    await using server = await serve({ port: 0, maxTtl: 5_000 });
    const conn = await RawConnection.open(server.address.port);
    try {
      assert.match(await conn.ask("ACQUIRE capped"), / OK \d+ 5000\b/);
    } finally {
      conn.close();
    }
  });
});
