import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FencingTokens } from "../lib/_fencing_tokens.ts";

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
});
