// Capped exponential backoff with jitter: contenders that collided spread out
// instead of colliding again in lock-step (check-bid-check can livelock).

import { LockError } from "./errors.ts";
import type { RetryOptions } from "./types.ts";
import { shown } from "./_shown.ts";

/** Default delays: fast first retries, never more than 150 ms apart (100 ms ± 50 % jitter). */
export const DEFAULT_RETRY: Required<RetryOptions> = {
  minDelay: 1,
  maxDelay: 100,
  factor: 2,
  jitter: 0.5,
};

const RETRY_BOUNDS: [keyof RetryOptions, number, number][] = [
  ["minDelay", 0, Number.MAX_SAFE_INTEGER],
  ["maxDelay", 0, Number.MAX_SAFE_INTEGER],
  ["factor", 1, Number.MAX_SAFE_INTEGER],
  ["jitter", 0, 1],
];

/**
 * Checks retry options up front: a NaN or negative delay would make a
 * waiter spin or never wake.
 *
 * @throws {LockError} Naming the option and what it must be.
 */
export function checkRetryOptions(options: RetryOptions | undefined): void {
  if (options === undefined) return;
  if (typeof options !== "object" || options === null) {
    throw new LockError(
      `Option retry must be an object ({ minDelay, maxDelay, factor, jitter }), got ${
        shown(options)
      }.`,
    );
  }
  for (const [key, min, max] of RETRY_BOUNDS) {
    checkNumberOption(options[key], `retry.${key}`, min, max);
  }
  const { minDelay = DEFAULT_RETRY.minDelay, maxDelay = DEFAULT_RETRY.maxDelay } = options;
  if (maxDelay < minDelay) {
    throw new LockError(
      `Option retry.maxDelay (${maxDelay}) must not be below retry.minDelay (${minDelay}).`,
    );
  }
}

/**
 * Checks that `signal`, if given, is an AbortSignal: anything else would
 * fail only once a try is under way.
 *
 * @throws {LockError} Naming the option.
 */
export function checkSignal(signal: unknown): void {
  if (signal === undefined) return;
  const s = signal as Partial<AbortSignal> | null;
  if (
    typeof s !== "object" || s === null || typeof s.aborted !== "boolean" ||
    typeof s.addEventListener !== "function" || typeof s.removeEventListener !== "function"
  ) {
    throw new LockError(`Option signal must be an AbortSignal, got ${shown(signal)}.`);
  }
}

/**
 * Checks that an option, if given, is a number from `min` to `max`.
 *
 * @throws {LockError} Naming the option and what it must be.
 */
export function checkNumberOption(
  value: unknown,
  label: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): void {
  if (value !== undefined && !(typeof value === "number" && value >= min && value <= max)) {
    throw new LockError(
      `Option ${label} must be a number from ${min} to ${
        max === Number.MAX_SAFE_INTEGER ? "2^53" : max
      }, got ${shown(value)}.`,
    );
  }
}

/**
 * Checks a wait's timeout: a number of ms >= 0, or Infinity.
 *
 * @throws {LockError} Naming the option and what it must be.
 */
export function checkTimeout(timeout: unknown): void {
  if (timeout !== undefined && !(typeof timeout === "number" && timeout >= 0)) {
    throw new LockError(
      `Option timeout must be a number of ms >= 0 (omit it to wait as long as it takes), ` +
        `got ${shown(timeout)}.`,
    );
  }
}

/** Returns a function giving the delay before each successive retry, in ms. */
export function backoff(
  options: RetryOptions = {},
  random: () => number = Math.random,
): () => number {
  const { minDelay, maxDelay, factor, jitter } = { ...DEFAULT_RETRY, ...options };
  let base = Math.max(0, minDelay);
  return () => {
    const capped = Math.min(base, maxDelay);
    base = Math.min(base * factor, maxDelay);
    return capped * (1 - jitter + jitter * 2 * random());
  };
}
