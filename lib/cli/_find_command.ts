// `run`'s check that its command can be started, made before the lock is
// taken: a typo then costs no lock, and the message names the command, not
// the setpriv or timeout that start it (whose own "failed to execute" would
// otherwise be all a user sees).

import type { ExecutableState } from "../runtime/mod.ts";

/** Why a command cannot be started: exit 127 (not found) or 126 (not executable). */
export interface CommandProblem {
  /** The exit code `run` gives for it, as a shell would. */
  code: 126 | 127;
  /** "command not found" or "permission denied". */
  reason: string;
}

/**
 * `command` as a word that no shell's `exec` takes for an option (bash's
 * takes `-c`, `-l`, `-a`, and refuses others): a name starting with `-` as
 * the path exec would run.
 *
 * @example A command named like an option
 * ```ts
 * import { commandWord } from "./_find_command.ts";
 * console.log(commandWord("-x", "/bin", () => "yes")); // "/bin/-x"
 * console.log(commandWord("ls", "/bin", () => "yes")); // "ls"
 * ```
 *
 * @param command The command as given.
 * @param searchPath $PATH, or null if it cannot be read.
 * @param stateOf What a path is (the runtime's `executableState`).
 * @returns The word to pass to `exec`.
 */
export function commandWord(
  command: string,
  searchPath: string | null,
  stateOf: (path: string) => ExecutableState,
): string {
  if (!command.startsWith("-")) return command;
  if (command.includes("/")) return `./${command}`;
  const found = searchPath?.split(":").map((dir) => `${dir || "."}/${command}`)
    .find((path) => stateOf(path) === "yes" || stateOf(path) === "unknown");
  return found ?? `./${command}`;
}

/**
 * Looks `command` up as exec does: a path if it contains a slash, else
 * each directory of `searchPath` in turn.
 *
 * @param command The command as given.
 * @param searchPath $PATH, or null if it cannot be read.
 * @param stateOf What a path is (the runtime's `executableState`).
 * @returns The problem, or `null` if it can be started — or if that could
 *   not be told (the start itself then reports any failure).
 */
export function commandProblem(
  command: string,
  searchPath: string | null,
  stateOf: (path: string) => ExecutableState,
): CommandProblem | null {
  // As shells say of "": there is no such command (not a directory in $PATH).
  if (command === "") return { code: 127, reason: "command not found" };
  const candidates = command.includes("/")
    ? [command]
    : searchPath?.split(":").map((dir) => `${dir || "."}/${command}`);
  if (!candidates) return null;
  let found = false;
  for (const candidate of candidates) {
    const state = stateOf(candidate);
    if (state === "yes" || state === "unknown") return null;
    if (state === "no") found = true;
  }
  return found
    ? { code: 126, reason: "permission denied" }
    : { code: 127, reason: "command not found" };
}
