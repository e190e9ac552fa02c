// A request line over the server's --max-line is skipped, and answered with
// its own tag (read from the line's start) in its place among the replies,
// so the request that sent it fails at once instead of waiting forever. A
// client still fails the oldest unanswered request when a server could not
// read the tag (`* ERR LINE_TOO_LONG`), as older servers always answered.

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { lock, LockClient, LockError, LockTimeoutError, serve } from "../mod.ts";
import { importAuthKey, newNonce, signChallenge } from "../lib/server/auth.ts";
import { RawConnection, sleep, within } from "./_server_helpers.ts";

// A valid lock name (120 bytes), over a 128-byte --max-line once in a request.
const LONG_NAME = "reports-" + "x".repeat(112);

describe("a request line over --max-line", () => {
  const closers: (() => unknown)[] = [];
  after(async () => {
    for (const close of closers.reverse()) await close();
  });
  async function server(options: Parameters<typeof serve>[0] = {}) {
    const s = await serve({ port: 0, maxLineBytes: 128, ...options });
    closers.push(() => s.close());
    return s;
  }
  async function raw(port: number) {
    const r = await RawConnection.open(port);
    closers.push(() => r.close());
    return r;
  }

  test("is answered with its own tag, in its place among the replies", async () => {
    const r = await raw((await server()).address.port);
    r.send(`a1 HEALTH\nb1 ACQUIRE ${LONG_NAME} forever\nc1 HEALTH\n`);
    await r.waitLine(/^c1 /);
    assert.deepEqual(r.lines().map((line) => line.split(" ", 3).join(" ")), [
      "a1 OK",
      "b1 ERR LINE_TOO_LONG",
      "c1 OK",
    ]);
    assert.match(r.lines()[1], /longer than 128 bytes/);
  });

  test("is answered with its tag when the tag arrives in pieces after the line is already too long", async () => {
    // 8 bytes: the line is over the limit before its 10-character tag has ended.
    const r = await raw((await server({ maxLineBytes: 8 })).address.port);
    for (const piece of ["long", "tag123", " ACQUIRE", " some-name", " forever\n"]) {
      r.send(piece);
      await sleep(20);
    }
    assert.match(await r.waitLine(/ERR/), /^longtag123 ERR LINE_TOO_LONG /);
  });

  test("without a readable tag is answered with *", async () => {
    const r = await raw((await server()).address.port);
    r.send(`${"?".repeat(200)} ACQUIRE x\n`);
    assert.match(await r.waitLine(/ERR/), /^\* ERR LINE_TOO_LONG /);
    assert.match(await r.ask("HEALTH"), /^q\d+ OK$/, "the connection goes on");
  });

  test("sent while AUTH is checked is answered after AUTH, in order", async () => {
    const s = await server({ token: "secret" });
    const r = await raw(s.address.port);
    const hello = await r.ask("HELLO 1 h");
    const nonce = hello.split(" ")[3];
    const mine = newNonce();
    const mac = await signChallenge(await importAuthKey("secret"), "client", nonce, mine);
    r.send(`au AUTH ${mac} ${mine}\nx1 ACQUIRE ${LONG_NAME} 0\nx2 HEALTH\n`);
    await r.waitLine(/^x2 /);
    assert.deepEqual(r.lines().slice(1).map((line) => line.split(" ", 2).join(" ")), [
      "au OK",
      "x1 ERR",
      "x2 OK",
    ]);
    assert.match(r.lines()[2], /^x1 ERR LINE_TOO_LONG /);
  });

  test("fails LockClient.acquire and lock() at once with the reason, not a hang or a timeout", async () => {
    const s = await server();
    const client = new LockClient({ port: s.address.port });
    closers.push(() => client.close());
    const started = performance.now();
    const error = await within(client.acquire(LONG_NAME).catch((e) => e), 5_000, "acquire");
    assert.ok(error instanceof LockError, String(error));
    assert.match(error.message, /LINE_TOO_LONG/);
    const viaLock = await within(
      lock(LONG_NAME, { server: `127.0.0.1:${s.address.port}`, timeout: 2_000 }).catch((e) => e),
      5_000,
      "lock()",
    );
    assert.ok(!(viaLock instanceof LockTimeoutError), `not a timeout: ${viaLock}`);
    assert.ok(viaLock instanceof LockError, String(viaLock));
    assert.match(viaLock.message, /LINE_TOO_LONG/);
    assert.ok(performance.now() - started < 1_500, "both failed at once");
    // The connection goes on: a short name is served.
    const lease = await client.acquire("short", { timeout: 0 });
    assert.ok(lease.token > 0);
  });

  test("is never sent by this library's client for a name of at most 200 bytes, at the default limit", async () => {
    const s = await serve({ port: 0 }); // the default --max-line, 4096 bytes
    closers.push(() => s.close());
    const client = new LockClient({ port: s.address.port });
    closers.push(() => client.close());
    // Every byte escaped (%25): the longest name on the wire, 600 bytes.
    const worst = "%".repeat(200);
    const lease = await client.acquire(worst, { timeout: 0, ttl: 2 ** 31 - 2 });
    assert.equal((await client.status(worst))?.token, lease.token);
    assert.equal(await client.renew(worst, 2 ** 31 - 2).then(() => true), true);
    assert.equal(await client.release(worst), true);
  });
});

describe("a client told * ERR LINE_TOO_LONG (a server that could not read the tag)", () => {
  test("fails the oldest request not answered yet, and only that one", async () => {
    // A server of the old kind: every line over 128 bytes gets the push,
    // every other request its reply, all in order.
    const sockets = new Set<net.Socket>();
    const fake = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => {});
      let buffer = "";
      socket.on("data", (chunk) => {
        buffer += chunk.toString("utf8");
        for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
          const line = buffer.slice(0, end);
          buffer = buffer.slice(end + 1);
          const [tag, command] = line.split(" ");
          if (line.length > 128) {
            socket.write("* ERR LINE_TOO_LONG A request line is longer than 128 bytes.\n");
          } else if (command === "HELLO") socket.write(`${tag} OK socketlock/1 -\n`);
          else if (command === "STATUS") {
            socket.write(`${tag} OK {"name":"a","held":false,"holder":null,"waiters":0}\n`);
          } else if (command === "HEALTH") socket.write(`${tag} OK\n`);
          else socket.write(`${tag} ERR UNKNOWN_COMMAND not in this fake\n`);
        }
      });
    });
    await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
    const client = new LockClient({ port: (fake.address() as net.AddressInfo).port });
    try {
      assert.equal(await client.health(), true);
      // Sent together: STATUS first, then the acquire, then HEALTH.
      const status = client.status("a");
      const acquire = client.acquire(LONG_NAME).catch((e) => e);
      const health = client.health();
      const error = await within(acquire, 5_000, "the acquire");
      assert.ok(error instanceof LockError, String(error));
      assert.match(error.message, /LINE_TOO_LONG/);
      assert.equal(await within(status, 5_000, "status"), null);
      assert.equal(await within(health, 5_000, "health"), true);
    } finally {
      await client.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => fake.close(() => resolve()));
    }
  });
});
