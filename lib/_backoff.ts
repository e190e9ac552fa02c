// Capped exponential backoff with jitter: contenders that collided spread out
// instead of colliding again in lock-step (check-bid-check can livelock).

import type { RetryOptions } from "./types.ts";

/** Default delays: fast first retries, never more than 100 ms apart. */
export const DEFAULT_RETRY: Required<RetryOptions> = {
  minDelay: 1,
  maxDelay: 100,
  factor: 2,
  jitter: 0.5,
};

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
