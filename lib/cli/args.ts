// Command-line parsing for the CLI: flags before "--", the command after it.

import { LockError } from "../errors.ts";

/** A usage mistake: the CLI prints it with the help text and exits 64. */
export class UsageError extends LockError {}

/** Parsed arguments of one CLI command. */
export interface ParsedArgs {
  positionals: string[];
  flags: Map<string, string | true>;
  /** Everything after `--`. */
  rest: string[];
}

/**
 * Parses `args` given the flags that take a value and those that do not.
 * Unknown flags are usage errors, so typos never pass silently.
 */
export function parseArgs(
  args: string[],
  withValue: readonly string[],
  boolean: readonly string[],
): ParsedArgs {
  const parsed: ParsedArgs = { positionals: [], flags: new Map(), rest: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      parsed.rest = args.slice(i + 1);
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      parsed.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (withValue.includes(flag)) {
      const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
      if (value === undefined) throw new UsageError(`${flag} needs a value.`);
      parsed.flags.set(flag, value);
    } else if (boolean.includes(flag) && eq < 0) {
      parsed.flags.set(flag, true);
    } else {
      throw new UsageError(`Unknown option ${flag}.`);
    }
  }
  return parsed;
}

/** Reads a flag's value as a non-negative number of milliseconds. */
export function millis(flag: string, value: string | true | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Number(value);
  // Number("") is 0: a blank value must not quietly mean "do not wait".
  if (value === true || value.trim() === "" || !Number.isFinite(ms) || ms < 0) {
    throw new UsageError(`${flag} takes a number of milliseconds, e.g. ${flag} 5000.`);
  }
  return ms;
}
