// A wait that runs out while the lock server cannot be reached says so
// (server_client_test.ts); one that runs out while a connect to a server
// that listens is under way (after an earlier connect failed) is a held
// lock's LockTimeoutError: an older ECONNREFUSED must not be reported
// (it was, the CLI then exiting 69 for a lock that was merely held).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { lock, LockClient, LockTimeoutError, serve } from "../mod.ts";
import { freePort } from "./_processes.ts";
import { sleep } from "./_server_helpers.ts";
import { relayProxy } from "./_relay_proxy.ts";

// A loopback relay on `port` to the server on `upstreamPort` whose replies
// reach the client `delayMs` late: a reachable server that is slow to greet.
// `fast()` passes later replies at once (after those already delayed).
async function slowRelay(port: number, upstreamPort: number, delayMs: number) {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let delay = delayMs;
  // When the last reply is due: a later one, even passed at once, goes after it.
  let lastAt = 0;
  const relay = await relayProxy(upstreamPort, (client, upstream) => {
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => {
      lastAt = Math.max(performance.now() + delay, lastAt + 1);
      const t = setTimeout(() => {
        timers.delete(t);
        if (!client.destroyed) client.write(chunk);
      }, lastAt - performance.now());
      timers.add(t);
    });
  }, port);
  return {
    fast: () => void (delay = 0),
    close: () => {
      for (const t of timers) clearTimeout(t);
      return relay.close();
    },
  };
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
});

/** A lock server of its own, and a client holding `name` there. */
async function heldOnAServer(name: string) {
  const server = await serve({ port: 0 });
  cleanups.push(() => server.close());
  const holder = new LockClient({ port: server.address.port });
  cleanups.push(() => holder.close());
  await holder.acquire(name, { ttl: 30_000 });
  return { server, holder };
}

test("LockClient: a wait that runs out while a connect to a listening server is under way is a LockTimeoutError, not a stale ECONNREFUSED", async () => {
  const { server } = await heldOnAServer("stale-connect");

  const port = await freePort();
  const c = new LockClient({ port, connectTimeout: 1_500 });
  cleanups.push(() => c.close());
  // Nothing listens yet: this one is right to say it cannot reach the server
  // (1 s: a 100 ms wait could end, on a loaded machine, before any connect failed).
  const down = await c.acquire("stale-connect", { timeout: 1_000 }).catch((e) => e);
  assert.match(String(down?.message), /Cannot reach the lock server .*ECONNREFUSED/);
  await sleep(1_700); // the client's connect loop has given up

  // The server is reachable now (through a relay that greets 500 ms late);
  // the lock is merely held.
  const relay = await slowRelay(port, server.address.port, 500);
  cleanups.push(() => relay.close());
  const held = await c.acquire("stale-connect", { timeout: 200 }).catch((e) => e);
  assert.ok(
    held instanceof LockTimeoutError,
    `expected LockTimeoutError for a held lock on a reachable server, got: ${held}`,
  );
});

test("lock({ server }): a wait that runs out while the reconnect loop is under way to a listening server is a LockTimeoutError", async () => {
  const { server, holder } = await heldOnAServer("stale-connect-2");

  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  // Another name: the abandoned try keeps its own name's in-process slot until it settles.
  const down = await lock("stale-connect-probe", { server: address, timeout: 1_000 }).catch((e) =>
    e
  );
  assert.match(String(down?.message), /Cannot reach the lock server .*ECONNREFUSED/);

  // The shared client's reconnect loop is pausing now (backoff up to 1.5 s
  // between tries, jitter included): a wait of 2.8 s sees a new try start,
  // connect to the relay and wait for its greeting (3 s late). A shorter
  // wait could end before any new try, and rightly report the last one's
  // ECONNREFUSED: 1.7 s left a loaded machine 200 ms for a late timer
  // (failed once under Deno in a full run).
  const relay = await slowRelay(port, server.address.port, 3_000);
  cleanups.push(() => relay.close());
  const held = await lock("stale-connect-2", { server: address, timeout: 2_800 }).catch((e) => e);
  if (typeof held?.release === "function") await held.release();
  assert.ok(
    held instanceof LockTimeoutError,
    `expected LockTimeoutError for a held lock on a reachable server, got: ${held}`,
  );
  // The server was reachable all along: once connected, the wait is answered.
  await holder.release("stale-connect-2");
  relay.fast();
  const later = await lock("stale-connect-2", { server: address, timeout: 30_000 });
  await later.release();
});
