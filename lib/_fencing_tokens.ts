/**
 * Fencing tokens for the lock server, derived from the wall clock so that
 * they keep growing across restarts without anything written to disk.
 *
 * Every token is `max(previous + 1, wall-clock microseconds)`. Within one
 * server process that is strictly increasing whatever the clock does (the
 * `+ 1` carries it through a clock stepped back). Across a restart the new
 * process starts at the clock reading of its start, in microseconds: larger
 * than every token of the old process as long as the old one issued fewer
 * than a million grants per second on average (it runs out of CPU two
 * orders of magnitude earlier) and the host's clock did not step back by
 * more than the restart took. Microseconds since 1970 stay below 2^53 until
 * the year 2255, so tokens are exact JavaScript integers.
 *
 * @module
 */

/** Where a fencing token source reads the time: epoch milliseconds, fractional allowed. */
export type WallClock = () => number;

/**
 * A source of fencing tokens: strictly increasing within the process and,
 * being tied to the wall clock, across restarts of the server.
 *
 * @example Issue tokens
 * ```ts
 * import { FencingTokens } from "./fencing_token.ts";
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
   * @returns A token larger than every token this source issued before.
   */
  next(): number {
    const micros = Math.floor(this.#clock() * 1000);
    this.#last = micros > this.#last ? micros : this.#last + 1;
    return this.#last;
  }
}
