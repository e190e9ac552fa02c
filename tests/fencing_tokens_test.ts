import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FencingTokens } from "../lib/_fencing_tokens.ts";
import { LockError } from "../mod.ts";

describe("FencingTokens", () => {
  test("tokens follow the clock in microseconds and stay strictly increasing when it stands still or steps back", () => {
    let wall = 1_000;
    const tokens = new FencingTokens(() => wall);
    assert.equal(tokens.next(), 1_000_000);
    assert.equal(tokens.next(), 1_000_001);
    wall = 999;
    assert.equal(tokens.next(), 1_000_002);
    wall = 2_000;
    assert.equal(tokens.next(), 2_000_000);
  });

  test("next(floor) exceeds a token seen elsewhere even when the clock is behind it", () => {
    const tokens = new FencingTokens(() => 1_000);
    assert.equal(tokens.next(5_000_000), 5_000_001);
    assert.equal(tokens.next(10), 5_000_002);
    assert.equal(tokens.last, 5_000_002);
  });

  test("a floor at 2^53 - 1 is refused with a LockError, never a token repeated or inexact", () => {
    const tokens = new FencingTokens(() => 1_000);
    assert.throws(() => tokens.next(Number.MAX_SAFE_INTEGER), LockError);
    assert.equal(tokens.next(), 1_000_000, "the refused floor was not taken up");
    const near = new FencingTokens(() => 1_000, Number.MAX_SAFE_INTEGER - 1);
    assert.equal(near.next(), Number.MAX_SAFE_INTEGER);
    assert.throws(() => near.next(), LockError);
  });
});
