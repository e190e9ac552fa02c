// The passed signals `run` was started with ignored: `nohup socketlock run`
// ignores SIGHUP, and a non-interactive shell starts `socketlock run … &`
// with SIGINT ignored. flock(1) keeps them ignored for its command; so does
// `run`: it does not pass them on, answers them with a listener that does
// nothing (Deno drops every ignore once any signal is listened to, and
// removing a listener leaves the default, which ends the process), and
// starts the command with them ignored again, since spawn and timeout(1)
// reset every signal to its default.
//
// Node resets every ignored signal at start-up, so under Node none is
// found here (the README says so); Deno and Bun keep them.

import { constants } from "node:os";
import { runtime } from "../runtime/mod.ts";
import { PASSED_SIGNALS, type PassedSignal } from "./_command_tree.ts";
import { commandWord } from "./_find_command.ts";

/**
 * The signals of {@link PASSED_SIGNALS} that this process ignores, read
 * from the `SigIgn` mask of `/proc/self/status` (none where it cannot be
 * read: not Linux, Deno without -A).
 *
 * @returns The ignored signals, in {@link PASSED_SIGNALS}' order.
 */
export async function ignoredSignals(): Promise<PassedSignal[]> {
  let status: string;
  try {
    status = await runtime.readFile("/proc/self/status");
  } catch {
    return [];
  }
  return ignoredIn(status);
}

/**
 * The signals of {@link PASSED_SIGNALS} that a `/proc/<pid>/status` text
 * marks as ignored.
 *
 * @example Read a SigIgn mask
 * ```ts
 * import { ignoredIn } from "./_ignored_signals.ts";
 * console.log(ignoredIn("SigIgn:\t0000000000001001\n")); // ["SIGHUP"]
 * ```
 *
 * @param status The text.
 * @returns The ignored signals, in {@link PASSED_SIGNALS}' order.
 */
export function ignoredIn(status: string): PassedSignal[] {
  const mask = /^SigIgn:\s*([0-9a-f]{1,32})\s*$/m.exec(status)?.[1];
  if (mask === undefined) return [];
  const bits = BigInt(`0x${mask}`);
  return PASSED_SIGNALS.filter((name) => {
    const number = (constants.signals as Record<string, number>)[name];
    return number !== undefined && ((bits >> BigInt(number - 1)) & 1n) === 1n;
  });
}

/**
 * `command` and `args` started so that `signals` are ignored in it: through
 * `sh -c 'trap "" … && exec "$@"'` (an ignored signal stays ignored across
 * exec), or as they are if there are none. A command named like an option
 * goes as its path (see `commandWord`): bash's exec would take it for one.
 *
 * @param command The program.
 * @param args Its arguments.
 * @param signals The signals to ignore.
 * @returns The program and arguments to start.
 */
export function withSignalsIgnored(
  command: string,
  args: string[],
  signals: readonly PassedSignal[],
): [string, string[]] {
  if (signals.length === 0) return [command, args];
  const names = signals.map((name) => name.slice(3)).join(" ");
  const word = commandWord(command, runtime.searchPath(), runtime.executableState);
  return ["/bin/sh", ["-c", `trap '' ${names} && exec "$@"`, "sh", word, ...args]];
}
