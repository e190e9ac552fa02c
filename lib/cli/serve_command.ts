// `socketlock serve`: the lock server, in the foreground, until SIGTERM or
// SIGINT (graceful: stop accepting, tell clients, exit 0).

import { errorCode, runtime } from "../runtime/mod.ts";
import { createLogger, type Logger } from "../log.ts";
import { LockError, LockPermissionError } from "../errors.ts";
import { serve, ServeOptionError, type ServeOptions } from "../server/serve.ts";
import { DEFAULT_PORT } from "../server/server_address.ts";
import { DEFAULT_MAX_TTL, DEFAULT_TTL } from "../server/_server_context.ts";
import { parseArgs, UsageError } from "./args.ts";

/** Help text of `serve`. */
export const SERVE_HELP = `Usage: socketlock serve [options]

Runs a lock server: named locks with FIFO waiters, leases and fencing tokens,
released at once when a client's connection closes. It also answers
distlockd's binary protocol on the same port. Prints its address once ready;
SIGTERM or SIGINT stop it gracefully (exit 0).

Options:
  --host HOST            address to listen on (default 127.0.0.1; any other
                         address needs --token-file, or --insecure)
  --port PORT            TCP port (default ${DEFAULT_PORT}; 0 picks a free one)
  --token-file FILE      shared secret: clients must prove they know it (HMAC)
  --insecure             allow a non-loopback --host without a token
  --ttl MS               default lease length, whole ms (default ${DEFAULT_TTL})
  --max-ttl MS           longest lease granted (default ${DEFAULT_MAX_TTL})
  --restart-grace MS     grant nothing for this long after starting (default 0):
                         a try is answered busy, waits are queued. The server
                         keeps no state, so a holder cut off from its previous
                         run (a partition, a crashed host) may still count its
                         lease; set it to the longest ttl clients use to keep
                         exclusion across restarts
  --max-line BYTES       longest request line (default 4096)
  --max-name BYTES       longest lock name (default 256)
  --max-connections N    most open connections (default 10000)
  --max-waiters N        most queued waits per connection (default 1000)
  --max-locks N          most locks held or waited for per connection (default 10000)
  --idle-timeout MS      close connections idle this long (default 300000)
  --max-output BYTES     replies queued for one connection before the server
                         stops reading its requests until they are sent
                         (default 262144)
  -v                     log every connection, grant, release and expiry
  --json                 log JSON lines
  -h, --help             show this help

Exit codes: 0 after SIGTERM or SIGINT; 64 on bad options (also a non-loopback
--host without --token-file or --insecure, an empty token file); 69 if it
cannot start (the port is taken, ...); 77 on a permission problem.`;

const LIMIT_FLAGS: Record<string, keyof ServeOptions> = {
  "--ttl": "ttl",
  "--max-ttl": "maxTtl",
  "--restart-grace": "restartGrace",
  "--max-line": "maxLineBytes",
  "--max-name": "maxNameBytes",
  "--max-connections": "maxConnections",
  "--max-waiters": "maxWaitersPerConnection",
  "--max-locks": "maxLocksPerConnection",
  "--idle-timeout": "idleTimeout",
  "--max-output": "maxOutputBytes",
};

/** The limit flags given in milliseconds; leases in whole ones, as the protocol sends them. */
const MS_FLAGS = new Set(["--ttl", "--max-ttl", "--idle-timeout", "--restart-grace"]);
const FRACTIONAL_FLAGS = new Set(["--idle-timeout"]);
/** The flags that may be 0 (off). */
const ZERO_FLAGS = new Set(["--restart-grace"]);

/** Reads a token file: its content without trailing whitespace. */
export async function readTokenFile(path: string, log?: Logger): Promise<string> {
  let text: string;
  try {
    text = await runtime.readFile(path);
  } catch (error) {
    throw new LockError(`Cannot read the token file ${path}: ${(error as Error).message}.`, {
      cause: error,
    });
  }
  const token = text.replace(/\s+$/, "");
  if (!token) {
    throw new UsageError(`The token file ${path} is empty; put a long random secret in it.`);
  }
  try {
    const stat = await runtime.lstat(path);
    // A link's own mode says nothing (and chmod cannot change it): only a
    // file's is judged.
    if (log && !stat.isSymlink && (stat.mode & 0o077) !== 0) {
      log.log("warn", `token file ${path} is readable by other users; chmod 600 it`);
    }
  } catch {
    // the read worked; the mode is only advice
  }
  return token;
}

/** Runs `socketlock serve`; resolves with the exit code once stopped. */
export async function serveCommand(args: string[]): Promise<number> {
  const parsed = parseArgs(
    args,
    ["--host", "--port", "--token-file", ...Object.keys(LIMIT_FLAGS)],
    [
      "--insecure",
      "-v",
      "--json",
      "-h",
      "--help",
    ],
  );
  if (parsed.flags.has("--help") || parsed.flags.has("-h")) {
    console.log(SERVE_HELP);
    return 0;
  }
  if (parsed.positionals.length || parsed.rest.length) {
    throw new UsageError(
      `serve takes no arguments, only options (got "${
        [...parsed.positionals, ...parsed.rest].join(" ")
      }").`,
    );
  }
  const verbose = parsed.flags.has("-v");
  const log = createLogger({ verbose, json: parsed.flags.has("--json") });
  const options: ServeOptions = { logger: log, verbose, insecure: parsed.flags.has("--insecure") };
  const host = parsed.flags.get("--host");
  if (host === "") {
    throw new UsageError("--host needs an address to listen on, e.g. --host 127.0.0.1.");
  }
  if (typeof host === "string") options.host = host;
  const port = parsed.flags.get("--port");
  if (port !== undefined) {
    const value = Number(port);
    // Digits only: Number("") is 0 (a random port), Number("0x10") is 16.
    if (port === true || !/^\d{1,5}$/.test(port) || value > 65535) {
      throw new UsageError(
        `--port takes a port number from 0 to 65535, e.g. --port ${DEFAULT_PORT}.`,
      );
    }
    options.port = value;
  }
  for (const [flag, key] of Object.entries(LIMIT_FLAGS)) {
    const raw = parsed.flags.get(flag);
    if (raw === undefined) continue;
    const value = Number(raw);
    // Only the idle timeout may be fractional; counts, sizes and leases may not.
    const ms = MS_FLAGS.has(flag);
    const fractional = FRACTIONAL_FLAGS.has(flag);
    const zero = ZERO_FLAGS.has(flag);
    if (
      raw === true || raw.trim() === "" || !Number.isFinite(value) || value < 0 ||
      (value === 0 && !zero) || (!fractional && !Number.isSafeInteger(value))
    ) {
      throw new UsageError(
        `${flag} takes ${
          fractional
            ? "a number of milliseconds"
            : ms
            ? "a whole number of milliseconds"
            : "a whole number"
        } ${zero ? "of 0 or more" : "above 0"}, e.g. ${flag} ${ms ? 5000 : 1000}.`,
      );
    }
    (options as Record<string, unknown>)[key] = value;
  }
  const tokenFile = parsed.flags.get("--token-file");
  if (typeof tokenFile === "string") options.token = await readTokenFile(tokenFile, log);

  const server = await serve(options).catch((error) => {
    // Options serve() cannot work with were given on the command line: usage (64).
    if (error instanceof ServeOptionError) throw new UsageError(error.message);
    if (error instanceof LockError) throw error;
    const host = options.host ?? "127.0.0.1";
    const port = options.port ?? DEFAULT_PORT;
    const where = `${host}:${port}`;
    if (errorCode(error) === "EADDRINUSE") {
      throw new LockError(
        `Port ${port} on ${host} is already in use (another server?). Stop it, or pick another ` +
          "with --port.",
        { cause: error },
      );
    }
    // A port below 1024 without root or CAP_NET_BIND_SERVICE, a sandbox, ...:
    // a permission problem (77), as before the fallback below existed.
    if (["EACCES", "EPERM"].includes(errorCode(error) ?? "")) {
      throw new LockPermissionError(
        `Cannot listen on ${where}: ${(error as Error).message}. A port below 1024 needs ` +
          "root or CAP_NET_BIND_SERVICE; pick another with --port.",
        { cause: error },
      );
    }
    // Bun and Deno give an unknown --host (a failed lookup, ...) no error code.
    throw new LockError(
      `Cannot listen on ${where}: ${(error as Error).message}. Check --host and --port.`,
      { cause: error },
    );
  });
  // Signals are heard before the address is printed: whoever waits for that
  // line may stop the server right after it.
  const stopped = new Promise<string>((resolve) => {
    const stops = (["SIGTERM", "SIGINT"] as const).map((sig) =>
      runtime.onSignal(sig, () => {
        for (const stop of stops) stop();
        resolve(sig);
      })
    );
  });
  const { hostname, port: bound } = server.address;
  console.log(
    `socketlock server listening on ${
      hostname.includes(":") ? `[${hostname}]` : hostname
    }:${bound}`,
  );
  const signal = await stopped;
  log.log("info", "shutting down", { signal });
  await server.close();
  return 0;
}
