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
 * How far ahead of our clock another holder's token may be, in µs: 50
 * years. Tokens are clock microseconds, so a real holder is that far ahead
 * only if the clock stepped back by decades since; a token beyond it (near
 * 2^53, say: a damaged `.last`, or anyone who binds a port lock's name and
 * greets) taken up as a floor would leave tokens no room to grow. The same
 * margin for every reader keeps what one holder took up acceptable to the
 * next: its token is at most one above it, and the clock has moved on.
 */
export const PLAUSIBLE_AHEAD_US = 50 * 365.25 * 86_400_000_000;

/**
 * `token` if a holder of ours could have issued it by now, else 0 (ignored).
 *
 * @example Ignore an imposter's token
 * ```ts
 * import { plausibleToken } from "./_fencing_tokens.ts";
 * const nowUs = Date.now() * 1000;
 * console.log(plausibleToken(nowUs + 1_000_000, nowUs) > 0); // true: a clock a second ahead
 * console.log(plausibleToken(Number.MAX_SAFE_INTEGER, nowUs)); // 0
 * ```
 *
 * @param token A token announced or recorded by another process.
 * @param nowUs Our wall clock, epoch microseconds.
 * @returns It, or 0.
 */
export function plausibleToken(token: number, nowUs: number): number {
  return Number.isSafeInteger(token) && token > 0 && token <= nowUs + PLAUSIBLE_AHEAD_US
    ? token
    : 0;
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
