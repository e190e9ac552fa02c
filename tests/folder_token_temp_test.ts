// The folder kind's counter temp (`.token.<uuid>.tmp`) is swept by any
// waiter once 5 s old, as a crash's leftover: a holder stalled that long
// between writing it and renaming it must still get its token, not a raw
// ENOENT.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createWorld, gate } from "./_scripted_runtime.ts";
import { folderTarget } from "../lib/folder/folder_target.ts";
import { LockError } from "../lib/errors.ts";

const FOLDER = "/locks/x.folder";

function world() {
  const world = createWorld();
  world.files.set("/locks", { kind: "dir", data: "", mode: 0o700, mtimeMs: 0 });
  world.files.set(FOLDER, { kind: "dir", data: "", mode: 0o700, mtimeMs: 0 });
  return world;
}

test("a holder whose counter temp a waiter swept while it stalled still gets the next token", async () => {
  const w = world();
  const [a, b] = [w.process(101), w.process(102)];
  const stalled = gate();
  const resume = gate();
  let renames = 0;
  a.hook = async (op, path) => {
    if (op !== "rename" || !path.includes("/.token.") || renames++ > 0) return;
    // Stalled for "6 s" before the first rename: the temp is now that old.
    w.files.get(path)!.mtimeMs -= 6_000;
    stalled.open();
    await resume.wait();
  };
  const before = a.runtime.now();
  const trying = folderTarget(a.runtime, "x", FOLDER).tryAcquire();
  await stalled.wait();
  // A waiter's try meanwhile finds A's live bid and sweeps the old temp.
  const other = await folderTarget(b.runtime, "x", FOLDER).tryAcquire();
  assert.equal(other.acquired, false, "A's bid is live");
  other.cancelWake?.();
  assert.equal([...w.files.keys()].filter((path) => path.includes("/.token.")).length, 0);
  resume.open();
  const first = await trying;
  assert.ok(first.acquired);
  // A new folder's counter starts from the clock in µs.
  const token = first.grant.token;
  assert.ok(token >= before * 1000, `${token}`);
  assert.equal(w.files.get(`${FOLDER}/token`)?.data, String(token).padStart(16, "0"));
  await first.grant.release();
  // The next holder goes on from the counter: no token repeats.
  const second = await folderTarget(b.runtime, "x", FOLDER).tryAcquire();
  assert.ok(second.acquired);
  assert.equal(second.grant.token, token + 1);
  await second.grant.release();
});

test("a counter temp swept before every rename gives a LockError, withdraws the bid and gives no token", async () => {
  const w = world();
  const a = w.process(101);
  let renames = 0;
  a.hook = (op, path) => {
    if (op === "rename" && path.includes("/.token.")) {
      renames++;
      w.files.delete(path);
    }
  };
  const error = await folderTarget(a.runtime, "x", FOLDER).tryAcquire().then(
    () => null,
    (error) => error,
  );
  assert.ok(error instanceof LockError, `got ${error}`);
  assert.equal(renames, 3, "the temp is written again a bounded number of times");
  const left = [...w.files.keys()].filter((path) => path.startsWith(`${FOLDER}/`));
  assert.deepEqual(left, [], "no bid, counter or temp is left");
});
