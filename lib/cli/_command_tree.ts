// How `run` starts its command so that it does not run on without the lock.
//
// The lock lives in the `run` process. flock(1) hands its child the lock's
// descriptor; we cannot, so on Linux the command is started through
// setpriv(1) with a parent-death signal:
//
// - With no controlling terminal (cron, CI, a service), through setpriv
//   --pdeathsig ALRM, timeout(1) -s KILL 0 (no time limit) and setpriv
//   --pdeathsig KILL: timeout puts the command in a process group of its
//   own and, on ALRM, SIGKILLs that whole group. So if `run` is killed
//   outright, the command and every process it started die with it (and
//   the command dies with timeout, should timeout alone be killed).
//   Signals go to the command itself: timeout would relay them to the
//   command twice (once to it, once to its group) and drop repeats.
// - With a terminal, or where /proc cannot tell, the command stays in our
//   process group, so that job control, terminal input and Ctrl-C work as
//   for any command: through setpriv --pdeathsig KILL, so the command dies
//   with us, the processes it started do not. SIGINT and SIGHUP from the
//   terminal reach it directly, so we do not send them again.

import { runtime } from "../runtime/mod.ts";
import type { ChildProcess } from "../runtime/mod.ts";
import { LockPermissionError } from "../errors.ts";
import type { Logger } from "../log.ts";
import process from "node:process";
import { terminalState } from "./_terminal.ts";

/** The signals `run` passes on to the command (and that cancel its wait for the lock). */
export const PASSED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** A signal `run` passes on. */
export type PassedSignal = (typeof PASSED_SIGNALS)[number];

/** The command `run` started, and how to reach it. */
export interface CommandTree {
  /** Resolves when the command ends: its exit code, or the signal that ended it. */
  readonly exited: ChildProcess["exited"];
  /** Sends the command a signal `run` received, unless the terminal sent it the same. */
  forward(signal: PassedSignal): Promise<void>;
  /** Sends the command a signal. */
  signal(signal: PassedSignal): void;
  /** Kills the command outright, with the processes it started where it is in a group of its own. */
  kill(): void;
}

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"];
const TIMEOUT = ["/usr/bin/timeout", "/bin/timeout"];

/**
 * Starts `command` with `args` (inherited stdio) so that it dies with this
 * process where the OS allows (see the module comment).
 *
 * @param command The program.
 * @param args Its arguments.
 * @param log Where a missing Deno permission is warned about.
 * @returns The running command.
 */
export async function startCommand(
  command: string,
  args: string[],
  log: Logger,
): Promise<CommandTree> {
  // Where it cannot be told, the command stays in our group: a command
  // that cannot read its terminal would stop, which is worse.
  const grouped = (await terminalState())?.controlling === false;
  const [setpriv, timeout] = await Promise.all([
    findProgram(SETPRIV),
    grouped ? findProgram(TIMEOUT) : null,
  ]);
  const diesWithParent = ["--pdeathsig", "KILL", "--"];
  if (setpriv && timeout) {
    const wrap = [
      "--pdeathsig",
      "ALRM",
      "--",
      timeout,
      "-s",
      "KILL",
      "--",
      "0",
      setpriv,
      ...diesWithParent,
    ];
    if (await usable(setpriv, wrap, log)) {
      const child = runtime.spawn(setpriv, [...wrap, command, ...args]);
      const signal = async (name: PassedSignal) => {
        const pid = await childOf(child.pid);
        // Not started yet: timeout relays it (it started within microseconds).
        if (pid === null) return child.kill(name);
        try {
          process.kill(pid, name);
        } catch {
          // ended meanwhile
        }
      };
      return {
        exited: child.exited,
        forward: signal,
        signal: (name) => void signal(name),
        // timeout turns ALRM into SIGKILL for the whole group (and SIGKILL would only kill timeout).
        kill: () => child.kill("SIGALRM"),
      };
    }
  }
  const child = setpriv && await usable(setpriv, diesWithParent, log)
    ? runtime.spawn(setpriv, [...diesWithParent, command, ...args])
    : runtime.spawn(command, args);
  return {
    exited: child.exited,
    async forward(signal) {
      // In our group: from the terminal, the command got it too.
      if (signal !== "SIGTERM" && (await terminalState())?.foreground === true) return;
      child.kill(signal);
    },
    signal: (signal) => child.kill(signal),
    kill: () => child.kill("SIGKILL"),
  };
}

/** The pid of `pid`'s (only) child, or null if it has none yet or /proc cannot tell. */
async function childOf(pid: number): Promise<number | null> {
  try {
    const first = Number(
      (await runtime.readFile(`/proc/${pid}/task/${pid}/children`)).trim().split(" ")[0],
    );
    return Number.isSafeInteger(first) && first > 0 ? first : null;
  } catch {
    return null;
  }
}

async function findProgram(paths: string[]): Promise<string | null> {
  if (runtime.platform !== "linux") return null;
  for (const path of paths) {
    // A link too (uutils coreutils installs them); the probe run tells if it works.
    if (await runtime.lstat(path).then((s) => s.isFile || s.isSymlink, () => false)) return path;
  }
  return null;
}

// Whether `setpriv wrap... true` runs (Deno may lack --allow-run for them;
// setpriv knows --pdeathsig from util-linux 2.33): tried once per wrapping.
const probes = new Map<string, Promise<boolean>>();

function usable(setpriv: string, wrap: string[], log: Logger): Promise<boolean> {
  const key = [setpriv, ...wrap].join(" ");
  let probe = probes.get(key);
  if (!probe) {
    probe = (async () => {
      try {
        const { code } = await runtime.spawn(setpriv, [...wrap, "true"], { quiet: true }).exited;
        return code === 0;
      } catch (error) {
        if (error instanceof LockPermissionError) {
          const programs = [setpriv, ...wrap.filter((arg) => arg.startsWith("/"))].join(",");
          log.log(
            "warn",
            `${programs} may not be run (Deno: add --allow-run=${programs}, or -A), so if this ` +
              "process is killed outright, the command runs on without the lock",
          );
        }
        return false;
      }
    })();
    probes.set(key, probe);
  }
  return probe;
}
