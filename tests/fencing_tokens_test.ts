import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FencingTokens, PLAUSIBLE_AHEAD_US, plausibleToken } from "../lib/_fencing_tokens.ts";
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

  test("a floor from elsewhere is plausible up to 50 years ahead of our clock, in any year", () => {
    // 2223: a second ahead is still taken up (the margin then reaches past 2^53).
    assert.equal(plausibleToken(8e15 + 1_000_000, 8e15), 8e15 + 1_000_000);
    for (const nowUs of [1.8e15, 4.6e15]) { // 2027, 2115
      assert.equal(plausibleToken(nowUs + 1_000_000, nowUs), nowUs + 1_000_000, `${nowUs}`);
      assert.equal(plausibleToken(nowUs + PLAUSIBLE_AHEAD_US, nowUs), nowUs + PLAUSIBLE_AHEAD_US);
      // What one reader took up (t) and issued (t + 1) the next one, later, takes up too.
      const t = nowUs + PLAUSIBLE_AHEAD_US;
      assert.equal(plausibleToken(t + 1, nowUs + 1), t + 1);
    }
    assert.equal(plausibleToken(Number.MAX_SAFE_INTEGER - 1, 1.8e15), 0, "a damaged .last");
    assert.equal(plausibleToken(1.8e15 + PLAUSIBLE_AHEAD_US + 1, 1.8e15), 0);
    assert.equal(plausibleToken(-5, 1.8e15), 0);
    assert.equal(plausibleToken(1.5, 1.8e15), 0);
  });
});
