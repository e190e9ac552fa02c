/**
 * Fencing tokens derived from the wall clock, so that they keep growing
 * across processes and restarts without anything written to disk (the lock
 * server, and the port and socket kinds' floor).
 *
 * Every token is `max(previous + 1, floor + 1, wall-clock microseconds)`.
 * Within one process that is strictly increasing whatever the clock does
 * (the `+ 1` carries it through a clock stepped back). Across a restart of
 * the lock server the new process starts at the clock reading of its start,
 * in microseconds: larger
 * than every token of the old process as long as the old one issued fewer
 * than a million grants per second on average (it runs out of CPU two
 * orders of magnitude earlier) and the host's clock did not step back by
 * more than the restart took. Microseconds since 1970 stay below 2^53 until
 * the year 2255, so tokens are exact JavaScript integers.
 *
 * @module
 */

import { LockError } from "./errors.ts";

/**
 * The largest token a holder of ours can have announced or recorded: 2^52,
 * microseconds into the year 2112. Tokens are clock microseconds (about
 * 1.8 × 10^15 now), so one above it is not a holder's, whatever the clock
 * did; taken up as a floor, it would leave too little room below 2^53 for
 * tokens to keep growing. Floors read from elsewhere are checked with
 * {@link plausibleToken}.
 */
export const MAX_PLAUSIBLE_TOKEN = 2 ** 52;

/**
 * `token` if a holder of ours could have issued it, else 0 (ignored).
 *
 * @example Ignore an imposter's token
 * ```ts
 * import { plausibleToken } from "./_fencing_tokens.ts";
 * console.log(plausibleToken(1_800_000_000_000_000)); // 1800000000000000
 * console.log(plausibleToken(Number.MAX_SAFE_INTEGER)); // 0
 * ```
 *
 * @param token A token announced or recorded by another process.
 * @returns It, or 0.
 */
export function plausibleToken(token: number): number {
  return Number.isSafeInteger(token) && token > 0 && token <= MAX_PLAUSIBLE_TOKEN ? token : 0;
}

/** Where a fencing token source reads the time: epoch milliseconds, fractional allowed. */
export type WallClock = () => number;

/**
 * A source of fencing tokens: strictly increasing within the process and,
 * being tied to the wall clock, across restarts of the server.
 *
 * @example Issue tokens
 * ```ts
 * import { FencingTokens } from "./_fencing_tokens.ts";
 * const tokens = new FencingTokens();
 * const a = tokens.next();
 * const b = tokens.next();
 * console.log(b > a); // true
 * ```
 */
export class FencingTokens {
  #last: number;
  #clock: WallClock;

  /**
   * Creates a token source.
   *
   * @param clock Epoch milliseconds; default `Date.now`. Whole milliseconds
   *   are enough: grants within one millisecond take the following integers.
   * @param floor Tokens issued are larger than this (e.g. the largest token seen before).
   */
  constructor(clock: WallClock = Date.now, floor = 0) {
    this.#clock = clock;
    this.#last = Math.floor(floor);
  }

  /** The most recently issued token (or the floor, before the first). */
  get last(): number {
    return this.#last;
  }

  /**
   * Issues the next token.
   *
   * @param floor A token seen elsewhere (e.g. the previous holder's) that the
   *   new one must exceed.
   * @returns A token larger than `floor` and every token this source issued before.
   * @throws {LockError} If that token would not be an exact integer (past
   *   2^53 − 1: a floor far beyond any clock), rather than repeat one.
   */
  next(floor = 0): number {
    const micros = Math.floor(this.#clock() * 1000);
    const token = Math.max(this.#last + 1, Math.floor(floor) + 1, micros);
    if (!Number.isSafeInteger(token)) {
      throw new LockError(
        `No fencing token above ${Math.max(this.#last, floor)} is an exact integer, so tokens ` +
          `can no longer grow: a token that large was recorded or announced by something that is ` +
          `not a holder of ours. Remove what recorded it, or restart this process.`,
      );
    }
    return this.#last = token;
  }
}
