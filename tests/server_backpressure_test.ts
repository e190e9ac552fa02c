// A client that pipelines requests but does not read the replies must not
// grow the lock server's memory without bound: once a connection's queued
// replies pass --max-output, the server stops reading it (TCP then slows the
// client down) and resumes once they are sent. The server runs as a process
// of the runtime running this file, so its memory can be read from /proc.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { LockClient } from "../mod.ts";
import { type Connection, detectRuntimeName, type Runtime, runtime } from "../lib/runtime/mod.ts";
import { serveOn } from "../lib/server/serve.ts";
import type { Child } from "./_processes.ts";
import { RawConnection, residentKb, serveProcess, sleep, within } from "./_server_helpers.ts";

const REQUESTS = 300_000;
const HOST = "h".repeat(250);

/** A connection that reads only when told to, and counts the reply lines it got. */
async function silentClient(port: number) {
  const conn: Connection = await runtime.connect(
    { transport: "tcp", hostname: "127.0.0.1", port },
    5_000,
  );
  conn.pause();
  const seen = { lines: 0, bytes: 0, conn };
  conn.onData((chunk) => {
    seen.bytes += chunk.length;
    for (let i = 0; i < chunk.length; i++) if (chunk[i] === 0x0a) seen.lines++;
  });
  return seen;
}

describe("the lock server facing a client that does not read its replies", () => {
  let child: Child;
  let port: number;
  let witness: LockClient;
  const raws: RawConnection[] = [];
  const conns: Connection[] = [];

  before(async () => {
    const proc = await serveProcess(detectRuntimeName());
    child = proc.child;
    port = proc.port;
    witness = new LockClient({ port });
  });
  after(async () => {
    for (const made of raws) made.close();
    for (const conn of conns) conn.abort();
    await witness.close();
    child.process.kill("SIGTERM");
    await within(child.done, 10_000, "the server's exit").catch(() =>
      child.process.kill("SIGKILL")
    );
  });

  test(`${REQUESTS} pipelined STATUS requests never read: the server stops reading, its memory stays bounded, others keep working, and every reply comes once the client reads`, async () => {
    // A holder with a 250-byte host name (HELLO allows 255) makes each STATUS reply ~420 bytes:
    // 300,000 of them would be ~125 MB queued in the server if it kept reading.
    const holder = await RawConnection.open(port);
    raws.push(holder);
    assert.match(await holder.ask(`HELLO 4242 ${HOST}`), / OK /);
    assert.match(await holder.ask("ACQUIRE flood 0 600000"), / OK /);
    const opsBefore = (await witness.stats()).operations;
    const rssBefore = await residentKb(child.pid);

    const flood = await silentClient(port);
    conns.push(flood.conn);
    const batch = new TextEncoder().encode("s STATUS flood\n".repeat(1_000));
    for (let sent = 0; sent < REQUESTS; sent += 1_000) flood.conn.write(batch);

    // Wait until the server has stopped reading (its operation count stands
    // still), watching its memory meanwhile.
    let rssPeak = rssBefore;
    let last = -1;
    let handled = 0;
    const started = performance.now();
    for (;;) {
      await sleep(250);
      rssPeak = Math.max(rssPeak, await residentKb(child.pid));
      handled = (await witness.stats()).operations - opsBefore;
      // Each poll is one STATS request of its own.
      if (handled - last <= 1 || performance.now() - started > 30_000) break;
      last = handled;
    }
    assert.ok(handled < REQUESTS, `the server stopped reading after ${handled} requests`);
    assert.equal(flood.lines, 0, "the flooding client has read nothing");
    const grownKb = rssPeak - rssBefore;
    console.log(
      `server backpressure: read ${handled} of ${REQUESTS} requests, then stopped; memory ${rssBefore} KB, peak +${grownKb} KB`,
    );
    assert.ok(grownKb < 64 * 1024, `the server grew by ${grownKb} KB while not read`);

    // Others are served meanwhile, and the flooder's lock holder is intact.
    const lease = await within(witness.acquire("bystander", { timeout: 5_000 }), 10_000, "a lock");
    assert.ok(lease.token > 0);
    assert.equal(await witness.release("bystander"), true);
    assert.equal(await witness.health(), true);
    assert.equal((await witness.status("flood"))?.host, HOST);

    // Once the client reads, the server drains, reads on, and answers all.
    flood.conn.resume();
    await within(
      (async () => {
        while (flood.lines < REQUESTS) await sleep(50);
      })(),
      120_000,
      `all ${REQUESTS} replies (got ${flood.lines})`,
    );
    assert.equal(flood.lines, REQUESTS);
    assert.ok(flood.bytes > 400 * REQUESTS, `${flood.bytes} bytes of replies`);
    const stats = await witness.stats();
    assert.equal(stats.held, 1);
    assert.equal(stats.waiting, 0);
  });

  test("a client that never reads and goes idle is dropped, releasing nothing it did not hold", async () => {
    const proc = await serveProcess(detectRuntimeName(), [
      "--idle-timeout",
      "1500",
      "--max-output",
      "4096",
    ]);
    const local = new LockClient({ port: proc.port });
    try {
      // A lock held meanwhile by another connection must come through untouched.
      const kept = await local.acquire("kept", { ttl: 600_000 });
      const flood = await silentClient(proc.port);
      conns.push(flood.conn);
      const batch = new TextEncoder().encode("h HEALTH\n".repeat(10_000));
      for (let i = 0; i < 100; i++) flood.conn.write(batch);
      await sleep(200);
      assert.ok((await local.stats()).connections >= 2);
      // Idle (it holds nothing) yet unable to take its goodbye: closed, then dropped.
      await within(
        (async () => {
          while ((await local.stats()).connections > 1) await sleep(100);
        })(),
        15_000,
        "the silent connection's drop",
      );
      assert.equal(await local.health(), true);
      assert.equal((await local.status("kept"))?.token, kept.token);
      assert.equal((await local.stats()).held, 1);
    } finally {
      await local.close();
      proc.child.process.kill("SIGTERM");
      await within(proc.child.done, 10_000, "the server's exit").catch(() =>
        proc.child.process.kill("SIGKILL")
      );
    }
  });
});

describe("the lock server facing a client that half-closes without reading its replies", () => {
  test("the connection is counted while it holds replies, and dropped once idle", async () => {
    // The server's own side of each connection, to see its queued replies.
    const accepted: Connection[] = [];
    const watching: Runtime = {
      ...runtime,
      listen: (address, onConnection) =>
        runtime.listen(address, (conn) => {
          accepted.push(conn);
          onConnection(conn);
        }),
    };
    const server = await serveOn(watching, { port: 0, idleTimeout: 500 });
    const client = net.connect({
      host: "127.0.0.1",
      port: server.address.port,
      allowHalfOpen: true,
    });
    try {
      await within(new Promise((resolve) => client.once("connect", resolve)), 5_000, "connect");
      client.pause(); // reads nothing, ever
      // STATS until replies queue in the server (below maxOutputBytes, so it
      // keeps reading and sees the FIN).
      let requests = 0;
      while (requests < 200_000 && (accepted[0]?.bufferedAmount ?? 0) === 0) {
        client.write(`t STATS\n`.repeat(50));
        requests += 50;
        await sleep(5);
      }
      assert.ok(accepted[0].bufferedAmount > 0, `replies queued after ${requests} requests`);
      client.end(); // FIN; its read side stays open, unread
      await sleep(200);
      if (server.stats().connections === 0) {
        // Bun closes at the FIN and drops the replies: nothing is held.
        assert.equal(accepted[0].bufferedAmount, 0, "no longer counted, yet holding replies");
      }
      await within(
        (async () => {
          while (server.stats().connections > 0) await sleep(50);
        })(),
        10_000,
        "the idle connection's drop",
      );
    } finally {
      client.destroy();
      await server.close();
    }
  });
});
