// Review 5 of the lock server and its client, each case failing before
// its fix: a HELLO host is bounded (a long one, repeated in replies to other
// clients, made them drop their connections and every lock on them); a timed
// acquire sent after its wait ran out is a timeout, not "busy"; malformed
// STATS/STATUS replies are LockProtocolErrors; -v logs every connection's
// close, distlockd's and silent ones included.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  inspect,
  LockBusyError,
  LockClient,
  LockProtocolError,
  LockTimeoutError,
  serve,
} from "../mod.ts";
import { DistlockdCommand, encodeDistlockdRequest } from "../lib/server/distlockd_frames.ts";
import { fakeServer } from "./_fake_lock_server.ts";
import { relayProxy } from "./_relay_proxy.ts";
import { RawConnection, sleep, within } from "./_server_helpers.ts";

describe("lock server, review 5", () => {
  const closers: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const close of closers.reverse()) await close();
  });

  test("a HELLO host over 255 characters, or with control characters, is a BAD_REQUEST", async () => {
    const server = await serve({ port: 0, maxLineBytes: 40_000 });
    closers.push(() => server.close());
    const raw = await RawConnection.open(server.address.port);
    closers.push(() => raw.close());
    raw.send(`h1 HELLO 4242 ${"%01".repeat(11_000)}\n`);
    assert.match(await raw.waitLine(/^h1 /), /^h1 ERR BAD_REQUEST .*at most 255 printable/);
    raw.send(`h2 HELLO 4242 ${"x".repeat(256)}\n`);
    assert.match(await raw.waitLine(/^h2 /), /^h2 ERR BAD_REQUEST/);
    raw.send(`h3 HELLO 4242 ${"x".repeat(255)}\n`);
    assert.match(await raw.waitLine(/^h3 /), /^h3 OK/);
    // Held by that client, the name is shown to others, and nobody is cut off.
    assert.match(await raw.ask("ACQUIRE shared 0 60000"), / OK /);
    const other = new LockClient({ port: server.address.port });
    closers.push(() => other.close());
    const mine = await other.lock("others-own", { ttl: 30_000 });
    await assert.rejects(other.acquire("shared", { timeout: 0 }), LockBusyError);
    assert.equal(mine.signal.aborted, false);
    await mine.release();
  });

  test("a timed acquire whose request leaves after its wait ran out throws LockTimeoutError", async () => {
    const server = await serve({ port: 0 });
    closers.push(() => server.close());
    const holder = new LockClient({ port: server.address.port });
    closers.push(() => holder.close());
    await holder.acquire("job", { ttl: 30_000 });
    // The server's first reply (to HELLO) reaches the client 350 ms late.
    const relay = await relayProxy(server.address.port, (client, upstream) => {
      client.pipe(upstream);
      let first = true;
      upstream.on("data", (chunk) => {
        if (!first) return void client.write(chunk);
        first = false;
        setTimeout(() => client.write(chunk), 350);
      });
    });
    closers.push(() => relay.close());
    const waiter = new LockClient({ port: relay.port });
    closers.push(() => waiter.close());
    const error = await within(
      waiter.acquire("job", { timeout: 300 }).then(() => null, (e) => e),
      5_000,
      "acquire",
    );
    assert.ok(error instanceof LockTimeoutError, String(error));
  });

  for (const [what, body] of [["not JSON", "OK {oops"], ["JSON null", "OK null"]] as const) {
    test(`status(), inspect() and stats() answered ${what} fail with a LockProtocolError`, async () => {
      const fake = await fakeServer((_command, tag) => `${tag} ${body}\n`);
      closers.push(fake.close);
      const client = new LockClient({ port: fake.port });
      closers.push(() => client.close());
      await assert.rejects(client.status("job"), LockProtocolError);
      await assert.rejects(inspect("job", { server: `127.0.0.1:${fake.port}` }), LockProtocolError);
      await assert.rejects(client.stats(), LockProtocolError);
    });
  }

  test("-v logs the close of every connection: line, distlockd, and one that sent nothing", async () => {
    const logs: string[] = [];
    const server = await serve({
      port: 0,
      verbose: true,
      logger: {
        log: (level, message, fields) => logs.push(`${level} ${message} ${JSON.stringify(fields)}`),
      },
    });
    closers.push(() => server.close());
    const line = await RawConnection.open(server.address.port);
    line.send("a1 HEALTH\n");
    await line.waitLine(/^a1 OK/);
    line.close();
    const distlockd = await RawConnection.open(server.address.port);
    distlockd.send(encodeDistlockdRequest(DistlockdCommand.HEALTH, "", "id-1"));
    await distlockd.waitBytes(3);
    distlockd.close();
    const silent = await RawConnection.open(server.address.port);
    await sleep(50);
    silent.close();
    for (let i = 0; i < 40 && logs.filter((l) => / closed /.test(l)).length < 3; i++) {
      await sleep(25);
    }
    const closes = logs.filter((l) => / closed /.test(l));
    assert.equal(closes.length, 3, logs.join("\n"));
    assert.ok(closes.some((l) => /distlockd/.test(l)), "distlockd's close");
    assert.ok(closes.some((l) => /closed before a byte/.test(l)), "the silent one's close");
  });
});
