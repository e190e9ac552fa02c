// Whether this process has a controlling terminal, and is in its
// foreground process group. A terminal sends Ctrl-C's SIGINT (and a
// hangup's SIGHUP) to that whole group, so the command `run` started there
// gets them already: forwarding them too would deliver each twice, and to
// many programs a second Ctrl-C means "stop now, skip the clean-up".

import { runtime } from "../runtime/mod.ts";
import { statFields } from "../runtime/_proc_stat.ts";

/** Where a process stands towards its controlling terminal. */
export interface TerminalState {
  /** It has a controlling terminal (field 7, tty_nr, is not 0). */
  controlling: boolean;
  /** Its process group (field 5) is the terminal's foreground group (field 8). */
  foreground: boolean;
}

/**
 * Reads a `/proc/<pid>/stat` line.
 *
 * @param stat The line.
 * @returns The terminal state, or `null` if the line cannot be read.
 */
export function terminalStateOf(stat: string): TerminalState | null {
  const fields = statFields(stat);
  if (!fields) return null;
  const [group, tty, foreground] = [fields[2], fields[4], fields[5]].map(Number);
  if (![group, tty, foreground].every(Number.isSafeInteger) || group <= 0) return null;
  return { controlling: tty !== 0, foreground: group === foreground };
}

/**
 * This process's terminal state, or `null` where `/proc` cannot be read
 * (not Linux; Deno without -A).
 */
export async function terminalState(): Promise<TerminalState | null> {
  try {
    return terminalStateOf(await runtime.readFile("/proc/self/stat"));
  } catch {
    return null;
  }
}
