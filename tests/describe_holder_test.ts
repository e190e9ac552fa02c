// Holder times come from other processes' files and bids, even other
// hosts': one beyond Date's range must still give the typed busy and timeout
// errors, and a `status` that answers rather than crashes.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { lock, LockBusyError, LockTimeoutError } from "../mod.ts";
import { describeHolder } from "../lib/_describe_holder.ts";
import { type RuntimeName, scriptCommand, spawnCommand, tempDir } from "./_processes.ts";
import { within } from "./_server_helpers.ts";

const self: RuntimeName = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
const CLI = new URL("../lib/cli.ts", import.meta.url).pathname;

describe("a holder time outside Date's range", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  // A lockfolder bid from another host (never judged stale from here) whose
  // CREATED (seconds) is far beyond Date's range once made milliseconds.
  async function folderWithForeignBid(): Promise<string> {
    const dir = await tempDir();
    dirs.push(dir);
    mkdirSync(`${dir}/job.folder`, { mode: 0o700 });
    writeFileSync(
      `${dir}/job.folder/11111111-2222-3333-4444-555555555555.json`,
      JSON.stringify({ PID: 4242, CREATED: 1e13, host: "another-host" }),
      { mode: 0o600 },
    );
    return dir;
  }

  test("is shown as the number it is", () => {
    const text = describeHolder({ kind: "folder", name: "x", pid: 1, host: "h", acquiredAt: 1e16 });
    assert.match(text, /since 10000000000000000 /);
  });

  test("lock() still rejects with LockBusyError and LockTimeoutError", async () => {
    const dir = await folderWithForeignBid();
    const busy = await lock("job", { kind: "folder", dir, timeout: 0 }).catch((e) => e);
    assert.ok(busy instanceof LockBusyError, `got ${busy?.name}: ${busy?.message}`);
    const timedOut = await lock("job", { kind: "folder", dir, timeout: 100 }).catch((e) => e);
    assert.ok(timedOut instanceof LockTimeoutError, `got ${timedOut?.name}: ${timedOut?.message}`);
  });

  test("socketlock status says held (exit 1), without a stack trace", async () => {
    const dir = await folderWithForeignBid();
    const [cmd, base] = scriptCommand(self, CLI);
    const result = await within(
      spawnCommand(cmd, [...base, "status", "job", "--kind", "folder", "--dir", dir]).done,
      20_000,
      "status",
    );
    assert.doesNotMatch(result.stderr, /RangeError|^\s+at /m, "a crash, not a status");
    assert.equal(result.code, 1, result.stderr);
  });
});

describe("a holder's host from a file another user may write", () => {
  const ESC = "\u001b";
  const RLO = "\u202e";

  test("is shown with control characters and bidi overrides escaped, and cut short", () => {
    const holder = {
      kind: "folder" as const,
      name: "job",
      pid: 7,
      acquiredAt: Date.now(),
      host: `evil${ESC}[2J${ESC}]0;pwned\u0007\n${RLO}txt.exe`,
    };
    const text = describeHolder(holder);
    assert.ok(
      [...text].every((c) => c.charCodeAt(0) >= 0x20 && c !== "\u007f" && c !== RLO),
      JSON.stringify(text),
    );
    assert.match(text, /on host evil\\u001b\[2J\\u001b\]0;pwned\\u0007\\u000a\\u202etxt\.exe/);
    const long = describeHolder({ ...holder, host: "h".repeat(10_000) });
    assert.ok(long.length < 400, `${long.length} characters`);
  });

  test("reaches a busy error escaped", async () => {
    const dir = await tempDir();
    try {
      mkdirSync(`${dir}/job.folder`, { mode: 0o700 });
      writeFileSync(
        `${dir}/job.folder/11111111-2222-3333-4444-555555555555.json`,
        JSON.stringify({ PID: 4242, CREATED: Date.now() / 1000, host: `x${ESC}[31mred` }),
      );
      const error = await lock("job", { kind: "folder", dir, timeout: 0 }).catch((e) => e);
      assert.ok(error instanceof LockBusyError, String(error));
      assert.ok(!error.message.includes(ESC), error.message);
      assert.match(error.message, /on host x\\u001b\[31mred/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
