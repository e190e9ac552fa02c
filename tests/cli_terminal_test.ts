import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { terminalState, terminalStateOf } from "../lib/cli/_terminal.ts";

test("terminalStateOf reads the group, the terminal and its foreground group after the command name", () => {
  // pid (comm) state ppid pgrp session tty_nr tpgid ...
  assert.deepEqual(terminalStateOf("4242 (deno) S 4000 4242 4000 34816 4242 4194304 1 2"), {
    controlling: true,
    foreground: true,
  });
  assert.deepEqual(terminalStateOf("4242 (deno) S 4000 4242 4000 34816 4300 4194304 1 2"), {
    controlling: true,
    foreground: false,
  });
  // No controlling terminal: tty_nr 0, tpgid -1.
  assert.deepEqual(terminalStateOf("4242 (node) S 1 4242 4242 0 -1 4194304 1 2"), {
    controlling: false,
    foreground: false,
  });
  // A command name with spaces and parentheses.
  assert.deepEqual(terminalStateOf("7 (a) b (c) R 1 7 7 34816 7 0"), {
    controlling: true,
    foreground: true,
  });
  assert.equal(terminalStateOf("garbage"), null);
});

test("terminalState answers for this process without throwing", async () => {
  const state = await terminalState();
  if (process.platform === "linux") assert.notEqual(state, null, "read from /proc");
});
