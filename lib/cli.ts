/**
 * The `socketlock` command line: `run` a command under a lock, show a lock's
 * `status`.
 *
 * ```sh
 * deno run -A jsr:@x/socketlock/cli run nightly -- ./report.sh
 * ```
 *
 * @example Run the CLI from code
 * ```ts
 * import { main } from "jsr:@x/socketlock/cli";
 * const code = await main(["status", "nightly"]);
 * console.log(code === 0 ? "free" : "held");
 * ```
 *
 * @module
 */

import { errorCode, runtime } from "./runtime/mod.ts";
import { InvalidLockNameError, LockError, LockPermissionError } from "./errors.ts";
import { createLogger } from "./log.ts";
import { UsageError } from "./cli/args.ts";
import { RUN_HELP, runCommand } from "./cli/run_command.ts";
import { STATUS_HELP, statusCommand } from "./cli/status_command.ts";
import { SERVE_HELP, serveCommand } from "./cli/serve_command.ts";
import { VERSION } from "./version.ts";

/** Exit code on usage errors: EX_USAGE. */
const EXIT_USAGE = 64;
/** sysexits' EX_UNAVAILABLE: the lock could not be inspected or taken (a server down, ...). */
const EXIT_UNAVAILABLE = 69;
/** sysexits' EX_NOPERM: an unsafe lock directory, a missing Deno permission. */
const EXIT_NO_PERMISSION = 77;

const HELP = `Usage: socketlock COMMAND [options]

Commands:
  run NAME [options] -- CMD [ARGS...]   run CMD while holding the lock NAME
  status NAME [options]                 show who holds the lock NAME
  serve [options]                       run a lock server (--server HOST:PORT reaches it)

Run "socketlock COMMAND --help" for a command's options, "socketlock --version" for the version.`;

/**
 * Runs the CLI with `args` (without the program name) and returns the exit
 * code; it does not exit the process.
 *
 * @example Show the holder of a lock
 * ```ts
 * import { main } from "./cli.ts";
 * await main(["status", "nightly"]);
 * ```
 *
 * @param args The command-line arguments.
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  const log = createLogger();
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "run":
        return await runCommand(rest, log);
      case "status":
        return await statusCommand(rest);
      case "serve":
        return await serveCommand(rest);
      case "-V":
      case "--version":
        console.log(`socketlock ${VERSION}`);
        return 0;
      case undefined:
      case "-h":
      case "--help":
      case "help":
        console.log(HELP);
        return command === undefined ? EXIT_USAGE : 0;
      default:
        throw new UsageError(`Unknown command "${command}".`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      log.log("error", error.message);
      const help = command === "run"
        ? RUN_HELP
        : command === "status"
        ? STATUS_HELP
        : command === "serve"
        ? SERVE_HELP
        : HELP;
      console.error(help);
      return EXIT_USAGE;
    }
    if (error instanceof InvalidLockNameError) {
      log.log("error", error.message);
      return EXIT_USAGE;
    }
    if (error instanceof LockError) {
      // Not 1: `status` says "held" with 1, and a command may exit 1 itself.
      log.log("error", error.message);
      return error instanceof LockPermissionError ? EXIT_NO_PERMISSION : EXIT_UNAVAILABLE;
    }
    // A system error no kind translated (an unwritable --dir, ...): the user
    // needs its message and an exit code, not a stack trace.
    const code = errorCode(error) ?? "";
    if (/^E[A-Z]+$/.test(code)) {
      log.log("error", (error as Error).message);
      return ["EACCES", "EPERM", "EROFS"].includes(code) ? EXIT_NO_PERMISSION : EXIT_UNAVAILABLE;
    }
    throw error;
  }
}

if (import.meta.main) {
  runtime.exit(await main(runtime.args()));
}
