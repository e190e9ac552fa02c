// Whether this process is in its terminal's foreground process group. A
// terminal sends Ctrl-C's SIGINT (and a hangup's SIGHUP) to that whole
// group, so the command `run` started there gets them already: forwarding
// them too would deliver each twice, and to many programs a second Ctrl-C
// means "stop now, skip the clean-up".

import { runtime } from "../runtime/mod.ts";

/**
 * True if a `/proc/<pid>/stat` line shows its process in the foreground
 * group of its controlling terminal: the process group (field 5) is the
 * terminal's foreground group (field 8; -1 without a terminal). Fields are
 * counted after the last `)`, as the command name may hold any character.
 */
export function inForegroundGroup(stat: string): boolean {
  const end = stat.lastIndexOf(")");
  if (end < 0) return false;
  const fields = stat.slice(end + 2).split(" ");
  const group = Number(fields[2]);
  return Number.isSafeInteger(group) && group > 0 && group === Number(fields[5]);
}

/**
 * Whether this process is in its terminal's foreground process group, or
 * `null` where `/proc` cannot be read (not Linux; Deno without -A).
 */
export async function inTerminalForeground(): Promise<boolean | null> {
  try {
    return inForegroundGroup(await runtime.readFile("/proc/self/stat"));
  } catch {
    return null;
  }
}
