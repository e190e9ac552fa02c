// Reading process start times from /proc: a process that exits while its
// stat file is read is gone, not an error that reaches lock().
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import process from "node:process";
import { procStartTimeReader } from "../lib/runtime/_proc_stat.ts";
import { detectRuntimeName } from "../lib/runtime/mod.ts";
import {
  fixture,
  NEW_MOUNT_NAMESPACE,
  scriptCommand,
  spawnCommand,
  tempDir,
  unshareUnavailable,
} from "./_processes.ts";
import { within } from "./_server_helpers.ts";

const BOOT = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
// Field 22 (start ticks) is 250: 2.5 s after boot. The name holds ") (" on purpose.
const STAT = "4242 (a) (b) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 250 0 0";

function failing(code: string) {
  return Object.assign(new Error(`${code}: read`), { code });
}

const SELF = "77 (self) S 1 77 77 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 99 0 0";

function reader(pidStat: () => string, ownPid = 77) {
  return procStartTimeReader(
    (path) =>
      Promise.resolve().then(() =>
        path === "/proc/stat" ? BOOT : path === "/proc/self/stat" ? SELF : pidStat()
      ),
    (error) => (error as { code?: string }).code === "ENOENT",
    ownPid,
  );
}

describe("procStartTimeReader", () => {
  test("reads the start in epoch seconds and ticks since boot", async () => {
    assert.deepEqual(await reader(() => STAT)(4242), { created: 1700000002, ticks: 250 });
  });

  test("a process gone before the read (ENOENT) or during it (ESRCH) has no start time", async () => {
    for (const code of ["ENOENT", "ESRCH"]) {
      const read = reader(() => {
        throw failing(code);
      });
      assert.equal(await read(4242), null, code);
    }
  });

  test("a /proc of another pid namespace (its /proc/self is not us) gives no start times", async () => {
    assert.equal(await reader(() => STAT, 1)(4242), null);
  });

  test("any other failure is the caller's to see", async () => {
    const read = reader(() => {
      throw failing("EACCES");
    });
    await assert.rejects(read(4242), { code: "EACCES" });
  });
});

// Hundreds of CPUs put /proc/stat past 64 KiB (the bound on untrusted
// files); the kernel also hands it out in pieces. Mounted over /proc/stat in
// a private mount namespace; skipped, loudly, where that is not allowed.

test("the runtime reads start times where /proc/stat is over 64 KiB", async (t) => {
  const reason = process.platform !== "linux"
    ? "not Linux"
    : unshareUnavailable(NEW_MOUNT_NAMESPACE);
  if (reason) {
    console.log(`SKIPPED: a large /proc/stat: ${reason}`);
    t.skip(reason);
    return;
  }
  const dir = await tempDir();
  try {
    const real = readFileSync("/proc/stat", "utf8");
    const cpu = real.split("\n").find((line) => /^cpu0 /.test(line))!;
    const more = Array.from({ length: 1500 }, (_, i) => cpu.replace(/^cpu0/, `cpu${i + 1000}`));
    writeFileSync(`${dir}/stat`, real.replace(/^(cpu0 .*)$/m, `$1\n${more.join("\n")}`));
    assert.ok(statSync(`${dir}/stat`).size > 64 * 1024);
    const [cmd, args] = scriptCommand(detectRuntimeName(), fixture("print_start_time.ts"));
    const child = spawnCommand("unshare", [
      ...NEW_MOUNT_NAMESPACE,
      "sh",
      "-c",
      `mount --bind '${dir}/stat' /proc/stat && exec "$@"`,
      "sh",
      cmd,
      ...args,
    ]);
    const { stdout, stderr } = await within(child.done, 30_000, "the child");
    assert.match(stdout, /^result \{"created":\d+,"ticks":\d+\}/, stdout + stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
