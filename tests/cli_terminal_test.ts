import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { inForegroundGroup, inTerminalForeground } from "../lib/cli/_terminal.ts";

test("inForegroundGroup reads the process group and the terminal's foreground group after the command name", () => {
  // pid (comm) state ppid pgrp session tty_nr tpgid ...
  assert.equal(inForegroundGroup("4242 (deno) S 4000 4242 4000 34816 4242 4194304 1 2"), true);
  assert.equal(inForegroundGroup("4242 (deno) S 4000 4242 4000 34816 4300 4194304 1 2"), false);
  // No controlling terminal: tpgid is -1.
  assert.equal(inForegroundGroup("4242 (node) S 1 4242 4242 0 -1 4194304 1 2"), false);
  // A command name with spaces and parentheses.
  assert.equal(inForegroundGroup("7 (a) b (c) R 1 7 7 34816 7 0"), true);
  assert.equal(inForegroundGroup("garbage"), false);
});

test("inTerminalForeground answers for this process without throwing", async () => {
  const answer = await inTerminalForeground();
  assert.ok(answer === null || typeof answer === "boolean");
  if (process.platform === "linux") assert.equal(typeof answer, "boolean", "read from /proc");
});
