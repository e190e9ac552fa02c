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
//   command twice (once to it, once to its group) and drop repeats. Once
//   the command has ended, what is left of its group (a script's job that
//   outlived the script) gets SIGTERM, then SIGKILL, and `run` waits until
//   the group is empty: only then may the lock be released.
// - With a terminal, or where /proc cannot tell, the command stays in our
//   process group, so that job control, terminal input and Ctrl-C work as
//   for any command: through setpriv --pdeathsig KILL, so the command dies
//   with us, the processes it started do not. SIGINT and SIGHUP from the
//   terminal reach it directly, so we do not send them again. The processes
//   it started cannot be told apart from ours or from a pipeline's (all in
//   the terminal's group), so only the command itself is signalled there.

import { errorCode, runtime } from "../runtime/mod.ts";
import type { ChildProcess, Timer } from "../runtime/mod.ts";
import { statFields } from "../runtime/_proc_stat.ts";
import { LockPermissionError } from "../errors.ts";
import type { Logger } from "../log.ts";
import process from "node:process";
import { terminalState } from "./_terminal.ts";

/** The signals `run` passes on to the command (and that cancel its wait for the lock). */
export const PASSED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** A signal `run` passes on. */
export type PassedSignal = (typeof PASSED_SIGNALS)[number];

/** How long the command's processes get between SIGTERM and SIGKILL when `run` stops them. */
export const STOP_GRACE_MS = 2_000;

/** How often `run` looks whether the command's process group is empty yet. */
const GROUP_POLL_MS = 50;

/** The command `run` started, and how to reach it. */
export interface CommandTree {
  /** Resolves when the command ends: its exit code, or the signal that ended it. */
  readonly exited: ChildProcess["exited"];
  /** Sends the command a signal `run` received, unless the terminal sent it the same. */
  forward(signal: PassedSignal): Promise<void>;
  /**
   * Stops the command: SIGTERM now, and {@link STOP_GRACE_MS} later SIGKILL
   * to it and, where it has a process group of its own, to all of that group.
   */
  stop(): void;
  /**
   * Resolves once nothing of the command is left (never rejects): after {@link exited},
   * and, where it has a process group of its own, once that group is empty.
   * Processes left there get SIGTERM, and SIGKILL {@link STOP_GRACE_MS}
   * later (sooner if {@link stop} came first).
   */
  ended(): Promise<void>;
}

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"];
const TIMEOUT = ["/usr/bin/timeout", "/bin/timeout"];

/**
 * Starts `command` with `args` (inherited stdio) so that it dies with this
 * process where the OS allows (see the module comment).
 *
 * @param command The program.
 * @param args Its arguments.
 * @param log Where a missing Deno permission and leftover processes are warned about.
 * @param cancel Checked at the last moment before the spawn: once it has
 *   aborted (the lock was lost), the command is not started.
 * @returns The running command, or `null` if `cancel` aborted before it started.
 */
export async function startCommand(
  command: string,
  args: string[],
  log: Logger,
  cancel: AbortSignal,
): Promise<CommandTree | null> {
  // Where it cannot be told, the command stays in our group: a command
  // that cannot read its terminal would stop, which is worse.
  const grouped = (await terminalState())?.controlling === false;
  const [setpriv, timeout] = await Promise.all([
    findProgram(SETPRIV, log),
    grouped ? findProgram(TIMEOUT, log) : null,
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
      if (cancel.aborted) return null;
      return groupedTree(runtime.spawn(setpriv, [...wrap, command, ...args]), log);
    }
  }
  const wrapped = setpriv !== null && await usable(setpriv, diesWithParent, log);
  if (!wrapped && runtime.platform === "linux") {
    warnUnwrapped(
      log,
      `${setpriv ?? "setpriv"} (util-linux 2.33 or later) ${
        setpriv ? "cannot be run" : "was not found"
      }`,
    );
  }
  if (cancel.aborted) return null;
  return sharedGroupTree(
    wrapped
      ? runtime.spawn(setpriv, [...diesWithParent, command, ...args])
      : runtime.spawn(command, args),
  );
}

/** The command under timeout, which leads the command's own process group. */
function groupedTree(child: ChildProcess, log: Logger): CommandTree {
  // The group's id is timeout's pid; the kernel does not reuse it while the
  // group has members, zombies included.
  const group = child.pid;
  let force: Timer | undefined;
  let empty = false;
  const escalate = () => {
    // Never once the group is gone: its id may then name another group. A
    // failed start has no pid, and group 0 would be our own.
    if (!empty && group > 0) {
      force ??= runtime.setTimer(() => signalGroup(group, "SIGKILL"), STOP_GRACE_MS);
    }
  };
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
    stop() {
      void signal("SIGTERM");
      escalate();
    },
    async ended() {
      await child.exited.catch(() => {});
      // Killed rather than waited for: a forgotten background process (a
      // `sleep infinity &`, a daemon that did not leave the group) would
      // hold the lock forever; stopping the rest of a finished service is
      // what systemd does too.
      if (group > 0 && await groupRuns(group)) {
        log.log(
          "warn",
          `the command left processes running; stopping them (SIGTERM, SIGKILL ` +
            `${STOP_GRACE_MS / 1000} s later) before the lock is released`,
        );
        signalGroup(group, "SIGTERM");
        escalate();
        while (await groupRuns(group)) await pause(GROUP_POLL_MS);
      }
      empty = true;
      force?.clear();
    },
  };
}

/** The command in our own process group (a terminal's job): only it can be reached. */
function sharedGroupTree(child: ChildProcess): CommandTree {
  let force: Timer | undefined;
  return {
    exited: child.exited,
    async forward(signal) {
      // In our group: from the terminal, the command got it too.
      if (signal !== "SIGTERM" && (await terminalState())?.foreground === true) return;
      child.kill(signal);
    },
    stop() {
      child.kill("SIGTERM");
      force ??= runtime.setTimer(() => child.kill("SIGKILL"), STOP_GRACE_MS);
    },
    async ended() {
      await child.exited.catch(() => {});
      force?.clear();
    },
  };
}

/** Sends `signal` to every process of `group`; an empty group is no error. */
function signalGroup(group: number, signal: "SIGTERM" | "SIGKILL"): void {
  try {
    process.kill(-group, signal);
  } catch {
    // ESRCH: empty already
  }
}

/**
 * Whether a process of `group` still runs. A zombie does not: it waits to
 * be reaped by an init that may never do it (a container's), and kill()
 * still counts it.
 */
async function groupRuns(group: number): Promise<boolean> {
  try {
    process.kill(-group, 0);
  } catch (error) {
    // EPERM: a member we may not signal (setuid) runs; anything else, we cannot tell or act.
    return errorCode(error) === "EPERM";
  }
  let entries: string[];
  try {
    entries = await runtime.readDir("/proc");
  } catch {
    return true;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(await runtime.readFile(`/proc/${entry}/stat`).catch(() => ""));
    if (fields && Number(fields[2]) === group && !/^[ZX]$/.test(fields[0])) return true;
  }
  return false;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => runtime.setTimer(resolve, ms));
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

async function findProgram(paths: string[], log: Logger): Promise<string | null> {
  if (runtime.platform !== "linux") return null;
  for (const path of paths) {
    try {
      // A link too (uutils coreutils installs them); the probe run tells if it works.
      const stat = await runtime.lstat(path);
      if (stat.isFile || stat.isSymlink) return path;
    } catch (error) {
      // Deno with --allow-read scoped elsewhere: not "not found", and the
      // warning names the flag. (Without timeout, only the grouping of
      // what the command leaves is lost, as where none is installed.)
      if (error instanceof LockPermissionError && paths === SETPRIV) {
        return warnUnreadable(path, log);
      }
    }
  }
  return null;
}

function warnUnreadable(path: string, log: Logger): null {
  warnUnwrapped(
    log,
    `${path} cannot be looked at (Deno: add --allow-read=${SETPRIV[0]},${TIMEOUT[0]}, or -A)`,
  );
  return null;
}

// Whether `setpriv wrap... true` runs (Deno may lack --allow-run for them;
// setpriv knows --pdeathsig from util-linux 2.33): tried once per wrapping.
const probes = new Map<string, Promise<boolean>>();

// Whether a command was started unwrapped and that was said (once).
let warnedUnwrapped = false;

// Says, once, why the command may outlive this process.
function warnUnwrapped(log: Logger, why: string): void {
  if (warnedUnwrapped) return;
  warnedUnwrapped = true;
  log.log(
    "warn",
    `${why}, so if this process is killed outright, the command runs on without the lock`,
  );
}

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
          warnUnwrapped(
            log,
            `${programs} may not be run (Deno: add --allow-run=${programs}, or -A)`,
          );
        }
        return false;
      }
    })();
    probes.set(key, probe);
  }
  return probe;
}
