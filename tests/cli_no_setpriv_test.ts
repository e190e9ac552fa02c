// Where setpriv (util-linux 2.33+) is missing, `socketlock run` cannot have
// its command die with it, so a SIGKILLed `run` would leave the command
// running on without the lock: run says so on stderr rather than stay
// silent. setpriv is hidden by a bind mount in a private mount namespace
// (unshare -m); skipped, loudly, where this machine does not allow that.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import process from "node:process";
import { detectRuntimeName } from "../lib/runtime/mod.ts";
import {
  NEW_MOUNT_NAMESPACE,
  scriptCommand,
  spawnCommand,
  tempDirsRemovedAfter,
  unshareUnavailable,
} from "./_processes.ts";
import { within } from "./_server_helpers.ts";

const CLI = new URL("../lib/cli.ts", import.meta.url).pathname;
const tempDir = tempDirsRemovedAfter();
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].filter((path) => existsSync(path));

test("run warns that its command may outlive it where setpriv is missing", async (t) => {
  const reason = process.platform !== "linux"
    ? "not Linux"
    : SETPRIV.length === 0
    ? "no setpriv to hide"
    : unshareUnavailable(NEW_MOUNT_NAMESPACE);
  if (reason) {
    console.log(`SKIPPED: run without setpriv: ${reason}`);
    t.skip(reason);
    return;
  }
  const dir = await tempDir();
  const [cmd, base] = scriptCommand(detectRuntimeName(), CLI);
  const quote = (arg: string) => `'${arg.replaceAll("'", "'\\''")}'`;
  const hide = SETPRIV.map((path) => `mount --bind /dev/null ${path}`).join(" && ");
  const runLine = [cmd, ...base, "run", "nosetpriv", "--dir", dir, "--", "true"].map(quote)
    .join(" ");
  const child = spawnCommand("unshare", [
    ...NEW_MOUNT_NAMESPACE,
    "sh",
    "-c",
    `${hide} && exec ${runLine}`,
  ]);
  const { code, stderr } = await within(child.done, 30_000, "run's exit");
  assert.equal(code, 0, stderr);
  assert.match(
    stderr,
    /setpriv .*was not found, so if this process is killed outright, the command runs on without the lock/,
  );
});
