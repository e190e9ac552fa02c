// Bad input is a LockError, whatever its shape: a kind named like a member
// of Object.prototype is an unknown kind, and a value String() cannot show
// (a null-prototype object) is still refused with a message.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { inspect, InvalidLockNameError, lock, LockError, lockManager, tryLock } from "../mod.ts";

describe("odd option values", () => {
  for (const kind of ["constructor", "toString", "hasOwnProperty", "__proto__"]) {
    test(`kind "${kind}" is an unknown kind`, async () => {
      const options = { kind, timeout: 0 } as never;
      const unknownKind = (error: unknown) =>
        error instanceof LockError && /Unknown lock kind/.test(error.message);
      await assert.rejects(lock("odd-kind", options), unknownKind);
      await assert.rejects(tryLock("odd-kind", options), unknownKind);
      await assert.rejects(inspect("odd-kind", options), unknownKind);
      await assert.rejects(lockManager(options).request("odd-kind", () => 1), unknownKind);
    });
  }

  test("null-prototype values are refused with a LockError naming the option", async () => {
    const odd = Object.create(null);
    for (
      const [option, options] of [
        ["signal", { signal: odd }],
        ["retry.minDelay", { retry: { minDelay: odd } }],
        ["timeout", { timeout: odd }],
        ["ttl", { redis: { name: "stub", send: () => Promise.resolve(null) }, ttl: odd }],
      ] as const
    ) {
      const error = await lock("odd-value", options as never).then(() => null, (e) => e);
      assert.ok(error instanceof LockError, `${option}: ${error}`);
      assert.match(error.message, new RegExp(option.replace(".", "\\.")), option);
    }
    await assert.rejects(lock(odd, {}), InvalidLockNameError);
  });
});
