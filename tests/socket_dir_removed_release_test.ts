// A socket-kind lock whose directory was removed while held (a logout's
// cleanup of $XDG_RUNTIME_DIR, tmpfiles cleaning /tmp): the lock is lost,
// and its release resolves, as the folder kind's does, rather than failing
// for good on the key file it cannot make again in the missing directory;
// so withLock() keeps its section's result.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { lock, withLock } from "../mod.ts";

function scratch(): { base: string; dir: string } {
  const base = mkdtempSync(`${tmpdir()}/rv12-dir-removed-`);
  return { base, dir: `${base}/locks` };
}

test("socket kind: release() after the lock directory was removed does not fail", async () => {
  const { base, dir } = scratch();
  try {
    const held = await lock("gone", { dir });
    rmSync(dir, { recursive: true, force: true });
    const first = await held.release().then(() => null, (e) => e);
    const second = first && await held.release().then(() => null, (e) => e);
    assert.equal(first, null, `release() rejected: ${first}; the retry: ${second ?? "resolved"}`);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test("socket kind: withLock returns the section's result when the directory went under it", async () => {
  const { base, dir } = scratch();
  try {
    const outcome = await withLock("gone", { dir }, () => {
      rmSync(dir, { recursive: true, force: true });
      return "work done";
    }).catch((e) => e);
    assert.equal(outcome, "work done", `withLock threw ${outcome}`);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test("folder kind, for comparison: release() after the directory was removed resolves", async () => {
  const { base, dir } = scratch();
  try {
    const held = await lock("gone", { dir, kind: "folder" });
    rmSync(dir, { recursive: true, force: true });
    await held.release();
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
