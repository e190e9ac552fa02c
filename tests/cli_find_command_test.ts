// run's check of its command, on a made-up file system: found as exec finds
// it, 127 when nowhere, 126 when only a non-executable file is there, and no
// verdict where the runtime may not look (exec then decides).
import { test } from "node:test";
import assert from "node:assert/strict";
import { commandProblem, commandWord } from "../lib/cli/_find_command.ts";
import type { ExecutableState } from "../lib/runtime/mod.ts";

const files: Record<string, ExecutableState> = {
  "/bin/ls": "yes",
  "/opt/tool": "no",
  "/usr/bin/tool": "yes",
  "/home/me/script.sh": "no",
  "/secret/thing": "unknown",
};
const stateOf = (path: string): ExecutableState => files[path] ?? "missing";

test("a command on PATH is found in any of its directories, skipping non-executable ones", () => {
  assert.equal(commandProblem("ls", "/usr/bin:/bin", stateOf), null);
  assert.equal(commandProblem("tool", "/opt:/usr/bin", stateOf), null);
});

test("a command found nowhere is 127, one found only as a non-executable file 126", () => {
  assert.deepEqual(commandProblem("nope", "/usr/bin:/bin", stateOf), {
    code: 127,
    reason: "command not found",
  });
  assert.deepEqual(commandProblem("tool", "/opt:/bin", stateOf), {
    code: 126,
    reason: "permission denied",
  });
  assert.deepEqual(commandProblem("/home/me/script.sh", null, stateOf), {
    code: 126,
    reason: "permission denied",
  });
  assert.deepEqual(commandProblem("./missing", "/bin", stateOf)?.code, 127);
  // An empty command is no command, as shells say, not "<dir>/" (a directory).
  const dirs = (path: string): ExecutableState => path.endsWith("/") ? "no" : stateOf(path);
  assert.deepEqual(commandProblem("", "/usr/bin:/bin", dirs), {
    code: 127,
    reason: "command not found",
  });
});

test("no verdict where the runtime may not look, or PATH cannot be read", () => {
  assert.equal(commandProblem("thing", "/secret:/bin", stateOf), null);
  assert.equal(commandProblem("ls", null, stateOf), null);
});

test("an empty PATH entry means the current directory, as for exec", () => {
  const here = (path: string): ExecutableState => (path === "./local" ? "yes" : "missing");
  assert.equal(commandProblem("local", "/bin::/usr/bin", here), null);
});

test("commandWord() spells a command named like an option as the path exec would run", () => {
  const onlyDashX = (path: string): ExecutableState => path === "/usr/bin/-x" ? "yes" : "missing";
  assert.equal(commandWord("ls", "/bin", onlyDashX), "ls");
  assert.equal(commandWord("-x", "/bin:/usr/bin", onlyDashX), "/usr/bin/-x");
  assert.equal(commandWord("-x", ":/bin", () => "yes"), "./-x");
  assert.equal(commandWord("-d/run.sh", "/bin", onlyDashX), "./-d/run.sh");
  assert.equal(commandWord("-y", null, onlyDashX), "./-y");
});
