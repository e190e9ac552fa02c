/**
 * Lock server addresses as users write them: `host:port`, `[v6]:port`, or a
 * bare `host` (port 8888).
 *
 * @module
 */

import { LockError } from "../errors.ts";

/** The lock server's default port (distlockd's README port). */
export const DEFAULT_PORT = 8888;

/**
 * Parses a lock server address.
 *
 * @example Parse addresses
 * ```ts
 * import { parseServerAddress } from "./server_address.ts";
 * console.log(parseServerAddress("locks.internal:7000")); // { hostname: "locks.internal", port: 7000 }
 * console.log(parseServerAddress("[::1]:8888")); // { hostname: "::1", port: 8888 }
 * ```
 *
 * @param address `host:port`, `[v6]:port` or `host`.
 * @returns The host name and port.
 * @throws {LockError} If the address cannot be read.
 */
export function parseServerAddress(address: string): { hostname: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+))(?::(\d{1,5}))?$/.exec(address.trim());
  const port = match?.[3] === undefined ? DEFAULT_PORT : Number(match[3]);
  if (!match || port < 1 || port > 65535) {
    throw new LockError(
      `Cannot read the lock server address ${
        JSON.stringify(address)
      }. Write it as host:port, e.g. "127.0.0.1:8888" or "[::1]:8888".`,
    );
  }
  return { hostname: match[1] ?? match[2], port };
}
