// A release() called twice (explicitly, then by Symbol.asyncDispose at the
// end of an `await using` block) frees the in-process slot once, so waiters
// still get the lock one at a time, in FIFO order.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { lock } from "../mod.ts";
import { tempDir } from "./_processes.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

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
