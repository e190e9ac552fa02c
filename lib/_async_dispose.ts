// The key of `await using`'s dispose method. Where a runtime lacks
// Symbol.asyncDispose, TypeScript's downlevel `await using` looks the
// method up under Symbol.for("Symbol.asyncDispose"): the same key here.

/** `Symbol.asyncDispose`, or the registered symbol that stands for it. */
export const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose ??
  Symbol.for("Symbol.asyncDispose");
