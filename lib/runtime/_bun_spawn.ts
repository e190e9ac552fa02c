// Bun's spawn for the Bun adapter. node:child_process in Bun, as in Node,
// reports a child ended by a signal it has no name for (a real-time one) as
// exit code 0, a success; Bun.spawn reports the signal's number.

import type { ChildProcess } from "./types.ts";
import { guardedChild } from "./_guarded_child.ts";

type Stdio = "inherit" | "ignore";

interface BunSubprocess {
  readonly pid: number;
  readonly exited: Promise<number>;
  readonly exitCode: number | null;
  readonly signalCode: string | number | null;
  kill(signal: string): void;
}

declare const Bun: {
  spawn(command: string[], options: { stdio: [Stdio, Stdio, Stdio] }): BunSubprocess;
};

/**
 * Starts `command` with inherited stdio (none if `quiet`); a failed start
 * (ENOENT, EACCES) is reported through `exited`, as Node does.
 */
export function bunSpawn(
  command: string,
  args: string[],
  options?: { quiet?: boolean },
): ChildProcess {
  const stdio: Stdio = options?.quiet ? "ignore" : "inherit";
  let child: BunSubprocess;
  try {
    child = Bun.spawn([command, ...args], { stdio: [stdio, stdio, stdio] });
  } catch (error) {
    return { pid: 0, exited: Promise.reject(error), kill() {} };
  }
  const exited = child.exited.then(() => {
    const signal = child.signalCode;
    return signal === null
      ? { code: child.exitCode, signal: null }
      : { code: null, signal: String(signal) };
  });
  return guardedChild(child.pid, exited, (signal) => child.kill(signal));
}
