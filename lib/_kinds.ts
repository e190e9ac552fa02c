// The one table of kinds. Each kind's driver registers here; lock() and the
// CLI look kinds up here and nowhere else.

import type { KindDriver } from "./_kind.ts";
import type { LockKind, LockOptions } from "./types.ts";
import { LockError } from "./errors.ts";
import { folderDriver } from "./folder/folder_target.ts";
import { portDriver } from "./port/port_target.ts";
import { redisDriver } from "./redis/redis_driver.ts";
import { socketDriver } from "./socket/socket_target.ts";
import { serverDriver } from "./server/server_target.ts";

/** The kind used when none is given. */
export const DEFAULT_KIND: LockKind = "socket";

const drivers: Record<LockKind, KindDriver> = {
  socket: socketDriver,
  folder: folderDriver,
  port: portDriver,
  redis: redisDriver,
  server: serverDriver,
};

/** The names of the kinds this version provides. */
export const KINDS: readonly LockKind[] = Object.keys(drivers) as LockKind[];

/**
 * The kind a call asks for: `options.kind`, else the kind its options imply
 * (a remote kind's connection option), else the default.
 */
export function kindOf(options: LockOptions): LockKind {
  const implied = options.redis !== undefined
    ? "redis"
    : options.server !== undefined
    ? "server"
    : undefined;
  // A lock that looks shared across hosts must not quietly be a local one.
  if (options.kind && implied && options.kind !== implied) {
    throw new LockError(
      `Option kind "${options.kind}" conflicts with option ${implied}, which is for the ` +
        `"${implied}" kind: drop one of them.`,
    );
  }
  return options.kind || implied || DEFAULT_KIND;
}

/** The driver for `kind`, or a LockError listing the kinds there are. */
export function driverFor(kind: string): KindDriver {
  // Own properties only: "constructor" or "__proto__" are no kinds.
  const driver = Object.hasOwn(drivers, kind)
    ? (drivers as Record<string, KindDriver | undefined>)[kind]
    : undefined;
  if (!driver) {
    throw new LockError(
      `Unknown lock kind "${kind}". Use one of: ${KINDS.join(", ")}.`,
    );
  }
  return driver;
}
