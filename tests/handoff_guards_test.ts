// What a hand-off must keep: a port waiter's fencing token outgrows the one
// its holder announced (a holder whose clock is ahead), and a release()
// called twice (explicitly, then by Symbol.asyncDispose) frees the in-process slot
// once, so waiters still get the lock in FIFO order.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { lock } from "../mod.ts";
import type { Attempt, Grant } from "../lib/_kind.ts";
import { type Connection, runtime, type SocketAddress } from "../lib/runtime/mod.ts";
import { abstractName } from "../lib/port/port_name.ts";
import { portModeFor, portTarget } from "../lib/port/port_target.ts";
import { tempDir } from "./_processes.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

/** Ends whatever an attempt holds open; returns its grant, if any. */
function settle(attempt: Attempt): Grant | null {
  if (attempt.acquired) return attempt.grant;
  attempt.cancelWake?.();
  return null;
}

describe("port kind: tokens across a hand-off", () => {
  const offLinux = portModeFor(runtime) !== "abstract" &&
    "the fake holder binds the Linux abstract socket";
  test(
    "a waiter's token outgrows the token its holder announced, even one from a clock an hour ahead",
    { skip: offLinux },
    async () => {
      const key = unique("floor");
      const ahead = Date.now() * 1000 + 3_600_000_000; // µs, an hour ahead
      // Another process's holder, as a waiter sees it: bound, greeting every
      // connection with its token.
      const conns = new Set<Connection>();
      const holder = await runtime.listen(
        { transport: "unix", path: abstractName(key) } as SocketAddress,
        (conn) => {
          conns.add(conn);
          conn.write(new TextEncoder().encode(`PORTLOCK_HELD ${ahead}\n`));
        },
      );
      let greeted = false;
      const waiter = portTarget({
        ...runtime,
        connect: async (address, timeout) => {
          const conn = await runtime.connect(address, timeout);
          const onData = conn.onData.bind(conn);
          conn.onData = (handler) =>
            onData((chunk) => {
              handler(chunk);
              greeted = true;
            });
          return conn;
        },
      }, key);
      try {
        const attempt = await waiter.tryAcquire();
        assert.equal(attempt.acquired, false, "the fake holder has the lock");
        if (attempt.acquired) return;
        const woken = attempt.wake!;
        for (let i = 0; i < 500 && !greeted; i++) await sleep(10);
        assert.ok(greeted, "the waiter heard the holder's greeting");
        await holder.close();
        for (const conn of conns) conn.close();
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          woken,
          new Promise((_, reject) =>
            timer = setTimeout(() => reject(new Error("not woken")), 10_000)
          ),
        ]).finally(() => clearTimeout(timer));
        attempt.cancelWake?.();
        const next = settle(await waiter.tryAcquire());
        assert.ok(next, "free once the holder let go");
        assert.ok(next.token > ahead, `${next.token} > ${ahead}`);
        await next.release();
      } finally {
        await holder.close();
        for (const conn of conns) conn.close();
      }
    },
  );
});

describe("a release() called more than once frees the in-process slot once", () => {
  for (const kind of ["socket", "port"] as const) {
    test(`${kind} kind: waiters queued behind a holder that releases twice get the lock in FIFO order`, async () => {
      const dir = await tempDir();
      try {
        const name = unique("twice");
        const options = { kind, dir };
        const first = await lock(name, options);
        const order: number[] = [];
        let inside = 0;
        const waiting = [1, 2, 3].map((n) =>
          lock(name, { ...options, timeout: 10_000 }).then(async (held) => {
            inside++;
            order.push(n);
            assert.equal(inside, 1, "one holder at a time");
            await sleep(100);
            inside--;
            await held.release();
          })
        );
        await sleep(50);
        // An explicit release, then `await using`'s dispose at the block's end.
        await first.release();
        await first[Symbol.asyncDispose]();
        await Promise.all(waiting);
        assert.deepEqual(order, [1, 2, 3]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
