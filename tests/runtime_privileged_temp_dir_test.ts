// The Node adapter's tempDir() is os.tmpdir(), also in a privileged process
// (AT_SECURE: a file capability, setuid): os.tmpdir() then reads no
// variable, while glibc strips only TMPDIR, so a rule of our own reading
// TMP would move the default lock directory (no XDG_RUNTIME_DIR) and the
// compat directory for such a process. Node only: the child is Node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, mkdirSync, writeFileSync } from "node:fs";
import process from "node:process";
import { inOneRunner, runtimeBinary, tempDirsRemovedAfter } from "./_processes.ts";

const tempDir = tempDirsRemovedAfter();
const can = (cmd: string) => spawnSync(cmd, ["--help"], { stdio: "ignore" }).error === undefined;
const skip = !inOneRunner(0)
  ? "run by one runner (the child is Node whatever runs it)"
  : process.platform !== "linux"
  ? "Linux only"
  : process.getuid?.() !== 0
  ? "needs root (setcap, setpriv)"
  : !can("setcap") || !can("setpriv")
  ? "setcap/setpriv missing"
  : false;

test(
  "Node with a file capability and TMP set: runtime.tempDir() agrees with os.tmpdir()",
  { skip },
  async () => {
    const dir = await tempDir();
    chmodSync(dir, 0o755);
    const node = `${dir}/node`;
    copyFileSync(runtimeBinary("node"), node);
    chmodSync(node, 0o755);
    const cap = spawnSync("setcap", ["cap_sys_nice+ep", node], { encoding: "utf8" });
    if (cap.status !== 0) return void assert.fail(`setcap failed: ${cap.stderr}`);
    cpSync(new URL("../lib", import.meta.url).pathname, `${dir}/lib`, { recursive: true });
    writeFileSync(`${dir}/package.json`, `{"type":"module"}\n`);
    writeFileSync(
      `${dir}/probe.ts`,
      `import { tmpdir } from "node:os";
import { runtime } from "./lib/runtime/mod.ts";
console.log(JSON.stringify({ osTmpdir: tmpdir(), tempDir: runtime.tempDir() }));
`,
    );
    const tmp = `${dir}/tmp`;
    mkdirSync(tmp, { mode: 0o1777 });
    chmodSync(tmp, 0o1777);
    chmodSync(`${dir}/probe.ts`, 0o644);
    spawnSync("chmod", ["-R", "a+rX", dir]);
    const env: Record<string, string | undefined> = { ...process.env, TMP: tmp };
    delete env.TMPDIR;
    delete env.TEMP;
    const out = spawnSync(
      "setpriv",
      ["--reuid=65534", "--regid=65534", "--clear-groups", node, `${dir}/probe.ts`],
      { encoding: "utf8", env, timeout: 60_000 },
    );
    assert.equal(out.status, 0, out.stderr);
    const { osTmpdir, tempDir: ours } = JSON.parse(out.stdout.trim().split("\n").pop()!);
    assert.equal(ours, osTmpdir, `tempDir() ${ours} but os.tmpdir() ${osTmpdir}`);
  },
);
