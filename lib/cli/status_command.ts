// `socketlock status NAME`: who holds a lock, for people and for scripts.

import { inspect } from "../lock.ts";
import { kindOf } from "../_kinds.ts";
import { describeHolder } from "../_describe_holder.ts";
import { parseArgs, UsageError } from "./args.ts";
import { lockOptionsFrom } from "./run_command.ts";
import { applyServerFlags, SERVER_FLAGS, SERVER_FLAGS_HELP } from "./server_flags.ts";

/** Help text of `status`. */
export const STATUS_HELP = `Usage: socketlock status NAME [options]

Tells who holds the lock NAME. Exits 0 if it is free, 1 if it is held,
64 on usage errors, 69 if it cannot tell (a server down, ...), 77 on a
permission problem.

Options:
  --kind KIND    lock kind (default: the library's default kind)
  --dir DIR      lock directory for local kinds
${SERVER_FLAGS_HELP}
  --json         print {"name", "kind", "held", "holder"} as JSON
  -h, --help     show this help`;

/** Runs `socketlock status`; returns the exit code. */
export async function statusCommand(args: string[]): Promise<number> {
  const parsed = parseArgs(args, ["--kind", "--dir", ...SERVER_FLAGS], ["--json", "-h", "--help"]);
  if (parsed.flags.has("--help") || parsed.flags.has("-h")) {
    console.log(STATUS_HELP);
    return 0;
  }
  const [name, ...extra] = parsed.positionals;
  if (!name || extra.length || parsed.rest.length) {
    throw new UsageError("status takes exactly one lock NAME (and no command after --).");
  }
  const options = lockOptionsFrom(parsed.flags);
  await applyServerFlags(options, parsed.flags);
  const holder = await inspect(name, options);
  if (parsed.flags.has("--json")) {
    console.log(JSON.stringify({ name, kind: kindOf(options), held: !!holder, holder }));
  } else if (!holder) {
    console.log(`lock "${name}" is free`);
  } else {
    console.log(`lock "${name}" is held ${describeHolder(holder, true)}`);
  }
  return holder ? 1 : 0;
}
