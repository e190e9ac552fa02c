import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { terminalState, terminalStateOf } from "../lib/cli/_terminal.ts";

test("terminalStateOf reads the group, the terminal and its foreground group after the command name", () => {
  // pid (comm) state ppid pgrp session tty_nr tpgid ...
  const cases: [string, { controlling: boolean; foreground: boolean } | null][] = [
    ["4242 (deno) S 4000 4242 4000 34816 4242 4194304 1 2", {
      controlling: true,
      foreground: true,
    }],
    ["4242 (deno) S 4000 4242 4000 34816 4300 4194304 1 2", {
      controlling: true,
      foreground: false,
    }],
    // No controlling terminal: tty_nr 0, tpgid -1.
    ["4242 (node) S 1 4242 4242 0 -1 4194304 1 2", { controlling: false, foreground: false }],
    // A command name with spaces and parentheses.
    ["7 (a) b (c) R 1 7 7 34816 7 0", { controlling: true, foreground: true }],
    ["garbage", null],
  ];
  for (const [line, expected] of cases) assert.deepEqual(terminalStateOf(line), expected, line);
});

test("terminalState answers for this process without throwing", async () => {
  const state = await terminalState();
  if (process.platform === "linux") assert.notEqual(state, null, "read from /proc");
});
