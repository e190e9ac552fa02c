import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { backoff } from "../lib/_backoff.ts";

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
