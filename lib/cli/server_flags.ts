// The flags that point run/status at a lock server: --server HOST:PORT and
// --token-file FILE.

import type { LockOptions } from "../types.ts";
import { UsageError } from "./args.ts";
import { parseServerAddress } from "../server/server_address.ts";
import { readTokenFile } from "./serve_command.ts";

/** The server flags that take a value. */
export const SERVER_FLAGS = ["--server", "--token-file"] as const;

/** Their lines in a command's help. */
export const SERVER_FLAGS_HELP =
  `  --server HOST:PORT  use the lock server there (socketlock serve; kind "server")
  --token-file FILE  the server's shared secret, if it has one`;

/**
 * Adds `server` and `token` to `options` from the parsed flags.
 *
 * @throws {UsageError} If `--kind server` is given without `--server`,
 * `--server` or `--token-file` with another kind, `--token-file` without
 * `--server`, or the address cannot be read.
 */
export async function applyServerFlags(
  options: LockOptions,
  flags: Map<string, string | true>,
): Promise<void> {
  const server = flags.get("--server");
  const tokenFile = flags.get("--token-file");
  // Two kinds named at once is a usage error (64), not a lock that cannot
  // be taken (69), which a wrapper script would retry forever.
  if (options.kind !== undefined && options.kind !== "server") {
    const flag = typeof server === "string"
      ? "--server"
      : typeof tokenFile === "string"
      ? "--token-file"
      : null;
    if (flag) {
      throw new UsageError(
        `${flag} is for --kind server, not --kind ${options.kind}: drop one of them.`,
      );
    }
  }
  if (typeof server === "string") {
    // A typo is a usage error (64), not a server that is down (69).
    try {
      parseServerAddress(server);
    } catch (error) {
      throw new UsageError(`--server: ${(error as Error).message}`);
    }
    options.server = server;
  } else if (options.kind === "server") {
    throw new UsageError(
      '--kind server needs --server HOST:PORT (a lock server started with "socketlock serve").',
    );
  }
  if (typeof tokenFile === "string" && typeof server !== "string") {
    throw new UsageError(
      "--token-file is the secret of a lock server: give --server HOST:PORT too.",
    );
  }
  if (typeof tokenFile === "string") options.token = await readTokenFile(tokenFile);
}
