// `socketlock run NAME -- CMD ...`: flock(1)-style, the command runs while
// the lock is held and its exit code becomes ours.

import { constants } from "node:os";
import { errorCode, runtime } from "../runtime/mod.ts";
import { lock } from "../lock.ts";
import { KINDS } from "../_kinds.ts";
import type { HeldLock, LockKind, LockOptions } from "../types.ts";
import {
  LockAbortedError,
  LockBusyError,
  LockPermissionError,
  LockTimeoutError,
} from "../errors.ts";
import type { Logger } from "../log.ts";
import { millis, parseArgs, UsageError } from "./args.ts";
import { applyServerFlags, SERVER_FLAGS, SERVER_FLAGS_HELP } from "./server_flags.ts";
import {
  type CommandTree,
  PASSED_SIGNALS,
  type PassedSignal,
  startCommand,
  STOP_GRACE_MS,
} from "./_command_tree.ts";
import { ignoredSignals, withSignalsIgnored } from "./_ignored_signals.ts";
import { describeHolder } from "../_describe_holder.ts";
import { commandProblem } from "./_find_command.ts";

/** Exit code when the lock is busy (`--no-wait`) or the wait timed out: EX_TEMPFAIL. */
export const EXIT_BUSY = 75;
/** Exit code when the command is not found, as shells use. */
export const EXIT_CANNOT_RUN = 127;
/** Exit code when the command exists but cannot be executed, as shells use. */
export const EXIT_NOT_EXECUTABLE = 126;
/** Exit code when the lock was lost while COMMAND ran: EX_UNAVAILABLE, as when it cannot be taken. */
export const EXIT_LOST = 69;

/** Help text of `run`. */
export const RUN_HELP = `Usage: socketlock run NAME [options] -- COMMAND [ARGS...]

Runs COMMAND while holding the lock NAME; exits with COMMAND's exit code.
Signals (SIGINT, SIGTERM, SIGHUP) are forwarded to COMMAND (SIGINT and
SIGHUP only when they cannot have come from the terminal, which sends them
to COMMAND itself: Ctrl-C reaches COMMAND once); signals ignored when run
starts (nohup) stay ignored, in COMMAND too (not under Node, which resets
them at start-up). The lock is released when
COMMAND ends, or by the OS if this process dies; on Linux, COMMAND then
dies too (it is started with a parent-death signal by setpriv, util-linux
2.33+; without it, a warning says COMMAND would outlive this process).

With no controlling terminal (cron, CI, a service), on Linux, COMMAND runs
in a process group of its own, and the lock is kept until that group is
empty: what COMMAND leaves running when it ends (the job of a script that
died at SIGTERM, a background process) gets SIGTERM, and SIGKILL ${STOP_GRACE_MS / 1000} s
later; all of it also dies with this process. A process that leaves the
group (setsid, a daemon) is not covered. With a terminal, COMMAND stays
in the terminal's job, where its processes cannot be told from others:
only COMMAND itself is signalled and waited for, and the processes it
started may run on after the lock is released.

Options:
  --kind KIND    lock kind (default: the library's default kind)
  --dir DIR      lock directory for local kinds
${SERVER_FLAGS_HELP}
  --wait MS      wait at most MS milliseconds (default: wait forever)
  --no-wait      fail at once if the lock is held
  -v             say when the lock is taken and released
  -h, --help     show this help

Exit codes: COMMAND's own; ${EXIT_BUSY} if the lock is busy (--no-wait) or the
wait timed out; ${EXIT_CANNOT_RUN} if COMMAND is not found, ${EXIT_NOT_EXECUTABLE} if it cannot
be executed; 64 on usage errors; 69 if the lock cannot be taken (a server
down, ...), or was lost before COMMAND started (it is then not started) or
while it ran (COMMAND, and its group without a terminal, then gets SIGTERM,
and SIGKILL ${STOP_GRACE_MS / 1000} s later); 77 on a permission problem; 128+N if COMMAND
was killed by signal N. Stopping what COMMAND left running does not change
the exit code.`;

/** The number of signal `name` on this OS (SIGTERM → 15; "34" → 34), or 0 if unknown. */
function signalNumber(name: string): number {
  if (/^[1-9]\d?$/.test(name)) return Number(name);
  return (constants.signals as Record<string, number>)[name] ?? 0;
}

/** Options shared by commands that name a lock. */
export function lockOptionsFrom(flags: Map<string, string | true>): LockOptions {
  const options: LockOptions = {};
  const kind = flags.get("--kind");
  if (typeof kind === "string") {
    // "redis" needs a client object, which a command line cannot pass.
    const usable: readonly LockKind[] = KINDS.filter((k) => k !== "redis");
    if (kind === "redis") {
      throw new UsageError(
        `The CLI cannot use --kind redis: it needs a Redis client, which only the library ` +
          `API takes (lock(name, { redis: client })). Use one of: ${usable.join(", ")}.`,
      );
    }
    if (!usable.includes(kind as LockKind)) {
      throw new UsageError(`Unknown --kind ${kind}. Use one of: ${usable.join(", ")}.`);
    }
    options.kind = kind as LockKind;
  }
  const dir = flags.get("--dir");
  if (dir === "") throw new UsageError("--dir needs a directory's path, e.g. --dir /run/locks.");
  if (typeof dir === "string") options.dir = dir;
  return options;
}

/** A flag value as a shell word. */
function shellWord(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * Why `run` gave up, and what to type next: the library's own messages
 * point at its API, while a CLI user needs --wait and the status command
 * with the flags that name this same lock.
 */
function busyMessage(
  error: LockBusyError | LockTimeoutError,
  name: string,
  flags: Map<string, string | true>,
): string {
  let status = `socketlock status ${shellWord(name)}`;
  for (const flag of ["--kind", "--dir", ...SERVER_FLAGS]) {
    const value = flags.get(flag);
    if (typeof value === "string") status += ` ${flag} ${shellWord(value)}`;
  }
  const held = describeHolder(error.holder);
  // A wait that saw no holder (a lock server that did not answer) says no "held".
  return error instanceof LockTimeoutError
    ? `timed out after ${Math.round(error.timeout)} ms waiting for lock "${name}"` +
      `${error.holder ? `, held ${held}` : ""}. ` +
      `Wait longer with --wait MS, or see who holds it: ${status}`
    : `lock "${name}" is held ${held}. Wait for it with --wait MS (or without --no-wait), ` +
      `or see who holds it: ${status}`;
}

/** While waiting for the lock, a signal of `passed` cancels the wait. */
async function takeLock(
  name: string,
  options: LockOptions,
  flags: Map<string, string | true>,
  log: Logger,
  passed: readonly PassedSignal[],
): Promise<HeldLock | number> {
  const abort = new AbortController();
  const stop = passed.map((sig) => runtime.onSignal(sig, () => abort.abort(sig)));
  try {
    return await lock(name, { ...options, signal: abort.signal });
  } catch (error) {
    if (error instanceof LockBusyError || error instanceof LockTimeoutError) {
      log.log("error", busyMessage(error, name, flags));
      return EXIT_BUSY;
    }
    if (error instanceof LockAbortedError) {
      return 128 + signalNumber(String(abort.signal.reason));
    }
    throw error;
  } finally {
    for (const off of stop) off();
  }
}

/** Runs `socketlock run`; returns the exit code. */
export async function runCommand(args: string[], log: Logger): Promise<number> {
  const parsed = parseArgs(args, ["--kind", "--dir", "--wait", ...SERVER_FLAGS], [
    "--no-wait",
    "-v",
    "-h",
    "--help",
  ]);
  if (parsed.flags.has("--help") || parsed.flags.has("-h")) {
    console.log(RUN_HELP);
    return 0;
  }
  const [name, ...extra] = parsed.positionals;
  if (!name) throw new UsageError("run needs a lock NAME.");
  if (extra.length) {
    throw new UsageError(
      `Put the command after "--": socketlock run ${name} -- ${extra.join(" ")}`,
    );
  }
  if (parsed.rest.length === 0) throw new UsageError("run needs a command after --.");
  if (parsed.flags.has("--no-wait") && parsed.flags.has("--wait")) {
    throw new UsageError("Use either --wait MS or --no-wait, not both.");
  }
  const options = lockOptionsFrom(parsed.flags);
  await applyServerFlags(options, parsed.flags);
  options.timeout = parsed.flags.has("--no-wait")
    ? 0
    : millis("--wait", parsed.flags.get("--wait"));
  const verbose = parsed.flags.has("-v");
  const [command, ...commandArgs] = parsed.rest;
  const problem = commandProblem(command, runtime.searchPath(), runtime.executableState);
  if (problem) {
    log.log("error", `cannot run ${command}: ${problem.reason}`);
    return problem.code;
  }

  const ignored = await ignoredSignals();
  // Kept ignored by a listener that does nothing, for the rest of the
  // process: Deno replaces every ignore once any signal is listened to.
  for (const sig of ignored) runtime.onSignal(sig, () => {});
  const passed = PASSED_SIGNALS.filter((sig) => !ignored.includes(sig));
  const held = await takeLock(name, options, parsed.flags, log, passed);
  if (typeof held === "number") return held;
  if (verbose) log.log("info", `lock "${name}" taken`, { kind: held.kind, token: held.token });
  let child: CommandTree | null = null;
  let lost = false;
  // Another holder may already be running: the command gets time to clean
  // up (SIGTERM), not to go on (SIGKILL, see stop()).
  const stopCommand = (tree: CommandTree) => {
    log.log("error", `lock "${name}" was lost; stopping the command`);
    tree.stop();
  };
  const onLost = () => {
    lost = true;
    if (child) stopCommand(child);
  };
  // Watched before anything is awaited: "abort" fires only once, so a lease
  // lost before the listener is added would never be noticed.
  held.signal.addEventListener("abort", onLost, { once: true });
  const stop = [() => held.signal.removeEventListener("abort", onLost)];
  try {
    if (held.signal.aborted) onLost();
    if (!lost) {
      const [program, programArgs] = withSignalsIgnored(command, commandArgs, ignored);
      child = await startCommand(program, programArgs, log, held.signal);
    }
    if (!child) {
      log.log("error", `lock "${name}" was lost before the command started; not starting it`);
      return EXIT_LOST;
    }
    // Lost while it was being spawned: the listener found no command to stop.
    if (lost) stopCommand(child);
    for (const sig of passed) stop.push(runtime.onSignal(sig, () => child?.forward(sig)));
    const { code, signal } = await child.exited;
    // The lock is kept until nothing of the command runs any more.
    await child.ended();
    // Not the command's own code: a script must not take a run that went on unlocked for a success.
    if (lost) return EXIT_LOST;
    return code ?? 128 + signalNumber(signal ?? "");
  } catch (error) {
    // Once started, nothing of the command may run on without the lock,
    // whatever went wrong in waiting for it.
    if (child) await child.ended();
    // Deno without --allow-run for it: a permission problem, said as such (77).
    if (error instanceof LockPermissionError) throw error;
    log.log("error", `cannot run ${command}: ${(error as Error).message}`);
    return errorCode(error) === "EACCES" ? EXIT_NOT_EXECUTABLE : EXIT_CANNOT_RUN;
  } finally {
    for (const off of stop) off();
    await held.release();
    if (verbose) log.log("info", `lock "${name}" released`);
  }
}
