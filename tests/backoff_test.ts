import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { backoff } from "../lib/_backoff.ts";
import { lock, LockError, type LockOptions, PortLock } from "../mod.ts";

describe("backoff", () => {
  test("delays double from minDelay up to maxDelay when jitter is off", () => {
    const next = backoff({ minDelay: 1, maxDelay: 10, factor: 2, jitter: 0 });
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => next()), [1, 2, 4, 8, 10, 10]);
  });

  test("jitter keeps every delay within its fraction of the base delay", () => {
    for (const random of [() => 0, () => 0.999999]) {
      const next = backoff({ minDelay: 8, maxDelay: 8, jitter: 0.5 }, random);
      const delay = next();
      assert.ok(delay >= 4 && delay <= 12, String(delay));
    }
    const next = backoff({ minDelay: 8, maxDelay: 8, jitter: 0.5 });
    const seen = new Set(Array.from({ length: 20 }, () => next()));
    assert.ok(seen.size > 1, "jittered delays differ");
  });
});

describe("wait options are checked before any wait", () => {
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ["a NaN timeout", { timeout: NaN }, /Option timeout must be a number of ms >= 0/],
    ["a negative timeout", { timeout: -5 }, /Option timeout/],
    ["a string timeout", { timeout: "5s" }, /Option timeout/],
    ["a negative retry delay", { retry: { minDelay: -1 } }, /Option retry\.minDelay/],
    ["a NaN retry delay", { retry: { maxDelay: NaN } }, /Option retry\.maxDelay/],
    ["a shrinking factor", { retry: { factor: 0.5 } }, /Option retry\.factor/],
    ["a jitter over 1", { retry: { jitter: 2 } }, /Option retry\.jitter/],
    ["a numeric dir", { dir: 5 }, /Option dir must be a directory's path/],
    ["an empty dir", { dir: "" }, /Option dir/],
  ];
  for (const [what, options, message] of bad) {
    test(`lock() refuses ${what} with a LockError`, async () => {
      const error = await lock("options", options as LockOptions).catch((e) => e);
      assert.ok(error instanceof LockError, String(error));
      assert.match(error.message, message);
    });
  }

  test("PortLock refuses a NaN timeout and a negative sleepTime", () => {
    assert.throws(() => new PortLock("k", { timeout: NaN }), /Option timeout/);
    assert.throws(() => new PortLock("k", { sleepTime: -1 }), /Option sleepTime/);
  });
});
