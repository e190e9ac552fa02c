// A lock held from other namespaces — a container that shares the lock
// directory and the host name (docker --network host with a volume, a
// systemd unit with PrivateNetwork=yes, a process restored by CRIU in a
// time namespace of its own) — is never judged stale here: its pid, its
// start time and its loopback addresses are not ours to check.
// Real namespaces, made with unshare(1); skipped, loudly, where this
// machine does not allow them.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdir, rm } from "node:fs/promises";
import { inspect, tryLock } from "../mod.ts";
import { foreignNamespaces } from "../lib/_namespaces.ts";
import { detectRuntimeName } from "../lib/runtime/mod.ts";
import {
  type Child,
  fixture,
  NEW_MOUNT_NAMESPACE,
  NEW_NET_NAMESPACE,
  scriptCommand,
  spawnCommand,
  tempDir,
  unshareUnavailable,
} from "./_processes.ts";

const [bin, binArgs] = scriptCommand(detectRuntimeName(), fixture("hold_lock.ts"));
const asRoot = NEW_NET_NAMESPACE.slice(0, -1);
const NET = NEW_NET_NAMESPACE;
const PID = [...asRoot, "-p", "-f", "--mount-proc", "--kill-child"];

// A mount namespace whose /proc shows no boot time (systemd's ProcSubset=pid).
const HIDDEN_BOOT = NEW_MOUNT_NAMESPACE;
const hiddenBootReason = unshareUnavailable([
  ...HIDDEN_BOOT,
  "sh",
  "-c",
  "mount -t proc -o subset=pid proc /proc", // `true`, appended, is its $0
]);
// Another time namespace: /proc shows its start ticks shifted by our
// boot-time offset, so they never match those its bid records.
const TIME = [...asRoot, "--time", "--boottime", "100000"];
const timeReason = unshareUnavailable(TIME);
const netReason = unshareUnavailable(NET);
const pidReason = unshareUnavailable(PID);
const loReason = netReason ?? (spawnSync("ip", ["-V"]).error ? "no ip(8) to bring up lo" : null);

describe("locks held from other namespaces", () => {
  const children: Child[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const child of children) child.process.kill("SIGKILL");
    await Promise.all(children.map((child) => child.done));
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  /** Starts a holder of `name` under `unshare flags` (a shell line if `shell`). */
  async function holdIn(flags: string[], options: object, name: string, shell?: string) {
    const command = [bin, ...binArgs, JSON.stringify(options), name];
    const quoted = command.map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(" ");
    const child = shell
      ? spawnCommand("unshare", [...flags, "sh", "-c", `${shell} && exec ${quoted}`])
      : spawnCommand("unshare", [...flags, ...command]);
    children.push(child);
    await child.waitFor("held", 30_000);
    return child;
  }

  const cases: [string, string[], string | null, "folder" | "socket", string?][] = [
    ["a folder lock held from another network namespace", NET, netReason, "folder"],
    ["a folder lock held from another pid namespace", PID, pidReason, "folder"],
    ["a folder lock held from another time namespace", TIME, timeReason, "folder"],
    [
      "a folder lock held by a process that cannot read its own start time (/proc mounted subset=pid)",
      HIDDEN_BOOT,
      hiddenBootReason,
      "folder",
      "mount -t proc -o subset=pid proc /proc",
    ],
    [
      "a socket lock held from another network namespace",
      NET,
      loReason,
      "socket",
      "ip link set lo up",
    ],
  ];
  for (const [what, flags, reason, kind, shell] of cases) {
    test(`${what} is not broken here`, async (t) => {
      if (reason) {
        console.log(`SKIPPED: ${what}: namespaces are not available here (${reason})`);
        t.skip(`namespaces not available: ${reason}`);
        return;
      }
      const dir = await tempDir();
      dirs.push(dir);
      const name = `ns-${kind}-${crypto.randomUUID().slice(0, 8)}`;
      const options = { kind, dir };
      const holder = await holdIn(flags, options, name, shell);
      const before = await readdir(dir, { recursive: true });
      assert.equal(await tryLock(name, { ...options, handshakeTimeout: 300 }), null);
      assert.ok(await inspect(name, options), "shown as held");
      assert.deepEqual(
        (await readdir(dir, { recursive: true })).sort(),
        before.sort(),
        "the holder's files are left alone",
      );
      holder.process.kill("SIGKILL");
      await holder.done;
    });
  }
});

describe("foreignNamespaces", () => {
  test("each namespace is compared on its own; a time namespace only where both ids have one", () => {
    const none = { pid: false, net: false, time: false };
    assert.deepEqual(foreignNamespaces("1:2:3", "1:2:3"), none);
    assert.deepEqual(foreignNamespaces(undefined, "1:2:3"), none, "nothing recorded");
    assert.deepEqual(foreignNamespaces("1:2:3", null), none, "ours unknown");
    assert.deepEqual(foreignNamespaces("9:2:3", "1:2:3"), { ...none, pid: true });
    assert.deepEqual(foreignNamespaces("1:9:3", "1:2:3"), { ...none, net: true });
    assert.deepEqual(foreignNamespaces("1:2:9", "1:2:3"), { ...none, time: true });
    // An older peer or kernel records no time namespace: taken as ours.
    assert.deepEqual(foreignNamespaces("1:2", "1:2:3"), none);
    assert.deepEqual(foreignNamespaces("1:2:3", "1:2"), none);
  });
});
