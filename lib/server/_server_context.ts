// What the lock server's sessions share: the table, the limits, the key,
// the logger, the counters, and the owners behind distlockd client ids.

import type { Runtime } from "../runtime/mod.ts";
import type { Logger } from "../log.ts";
import { type Lease, type LockTable, Owner } from "./lock_table.ts";

/** The server's limits, all configurable; each breach gets a clear error reply. */
export interface ServerLimits {
  /** Longest request line of our protocol, in bytes. Default 4096. */
  maxLineBytes?: number;
  /** Longest lock name, in UTF-8 bytes. Default 256. */
  maxNameBytes?: number;
  /** Most connections open at once. Default 10,000. */
  maxConnections?: number;
  /** Most waits one connection may have queued. Default 1,000. */
  maxWaitersPerConnection?: number;
  /** Most locks one connection (or distlockd client id) may hold and wait for. Default 10,000. */
  maxLocksPerConnection?: number;
  /**
   * A connection that sends no request for this long (ms), and holds and
   * waits for nothing, is closed. Default 300,000 (5 minutes).
   */
  idleTimeout?: number;
  /**
   * Bytes of replies queued for one connection (not yet taken by the OS)
   * beyond which the server stops reading its requests until they have
   * gone out: a client that sends without reading its replies is slowed
   * down by TCP instead of growing the server's memory. Default 262,144.
   */
  maxOutputBytes?: number;
}

/** The default lease length, ms (as distlockd). */
export const DEFAULT_TTL = 10_000;
/** The default longest lease granted, ms. */
export const DEFAULT_MAX_TTL = 3_600_000;

/** The defaults of {@link ServerLimits}. */
export const DEFAULT_LIMITS: Required<ServerLimits> = {
  maxLineBytes: 4096,
  maxNameBytes: 256,
  maxConnections: 10_000,
  maxWaitersPerConnection: 1_000,
  maxLocksPerConnection: 10_000,
  idleTimeout: 300_000,
  maxOutputBytes: 256 * 1024,
};

/** The longest distlockd client id accepted (distlockd sends a 36-byte uuid). */
export const MAX_CLIENT_ID_BYTES = 256;
/** How many distlockd client ids one connection may use. */
export const MAX_CLIENT_IDS_PER_CONNECTION = 16;

/** Operation counters for `STATS`. */
export interface Counters {
  /** Requests handled since start. */
  operations: number;
  /** Requests per second over the last full sampling second. */
  opsPerSecond: number;
  /** Connections open. */
  connections: number;
}

/** State shared by the server and its sessions. */
export interface ServerContext {
  readonly runtime: Runtime;
  readonly table: LockTable;
  readonly limits: Required<ServerLimits>;
  /** Default lease length, ms. */
  readonly ttl: number;
  /** Longest lease granted, ms; longer requests are cut to it (the reply says so). */
  readonly maxTtl: number;
  /** The HMAC key when a token is set. */
  readonly key: CryptoKey | null;
  readonly log: Logger;
  readonly verbose: boolean;
  readonly counters: Counters;
  readonly startedAt: number;
  /** distlockd client id → its owner and how many open connections use it. */
  readonly distlockdOwners: Map<string, { owner: Owner; connections: number }>;
  /** How many distlockd owners were made: each gets the next number as its public label. */
  distlockdLabels: number;
  closing: boolean;
}

const encoder = new TextEncoder();

/** UTF-8 length of `text`, computed only when it could matter. */
export function utf8Length(text: string, limit: number): number {
  return text.length * 3 <= limit ? text.length : encoder.encode(text).length;
}

/** The holder of a lease as our protocol reports it (a JSON object). */
export function holderJson(ctx: ServerContext, lease: Lease | null): string {
  if (!lease) return "null";
  const { info } = lease.owner;
  return JSON.stringify({
    token: lease.token,
    pid: info.pid,
    host: info.host,
    client: info.client,
    ...(info.isolate ? { isolate: info.isolate } : {}),
    acquiredAt: lease.acquiredAt,
    expiresIn: Math.round(ctx.table.remaining(lease)),
    waiters: ctx.table.queueLength(lease.name),
  });
}

/** The `STATS` figures. */
export function statsOf(ctx: ServerContext) {
  return {
    held: ctx.table.held,
    waiting: ctx.table.waiting,
    connections: ctx.counters.connections,
    opsPerSecond: ctx.counters.opsPerSecond,
    operations: ctx.counters.operations,
    names: ctx.table.names,
    uptime: Math.round(ctx.runtime.monotonic() - ctx.startedAt),
    graceLeft: ctx.table.graceLeft,
  };
}

/** With `-v`, logs `event` for `owner`'s lock `name`, with `fields`. */
export function logLease(
  ctx: ServerContext,
  event: string,
  owner: Owner,
  name: string,
  fields: Record<string, unknown> = {},
): void {
  if (ctx.verbose) ctx.log.log("debug", event, { client: owner.info.client, name, ...fields });
}

/** With `-v`, logs each lease of `owner` about to be released at once for `reason`. */
export function logReleasingAll(ctx: ServerContext, owner: Owner, reason: string): void {
  if (!ctx.verbose) return;
  for (const lease of owner.leases) {
    logLease(ctx, "released", owner, lease.name, { token: lease.token, reason });
  }
}

/**
 * The owner behind a distlockd client id, counting the connections using it.
 * Others see it as `distlockd#<n>`, never by its id: the id is all a
 * distlockd client shows to release its locks, so whoever read it in a
 * holder's JSON could release them.
 */
export function useDistlockdOwner(ctx: ServerContext, clientId: string): Owner {
  let entry = ctx.distlockdOwners.get(clientId);
  if (!entry) {
    const owner: Owner = new Owner(
      { pid: 0, host: "", client: `distlockd#${++ctx.distlockdLabels}` },
      // distlockd has no push to tell its client; the log is all there is.
      (lease) => logLease(ctx, "lease expired", owner, lease.name, { token: lease.token }),
    );
    entry = { owner, connections: 0 };
    ctx.distlockdOwners.set(clientId, entry);
  }
  entry.connections++;
  return entry.owner;
}

/**
 * A connection stops using a distlockd client id; when no open connection
 * uses it any more, its locks are released at once (distlockd itself kept
 * them until its stale sweep).
 */
export function leaveDistlockdOwner(ctx: ServerContext, clientId: string): void {
  const entry = ctx.distlockdOwners.get(clientId);
  if (!entry || --entry.connections > 0) return;
  ctx.distlockdOwners.delete(clientId);
  logReleasingAll(ctx, entry.owner, "distlockd client gone");
  const released = ctx.table.drop(entry.owner);
  if (released > 0 && ctx.verbose) {
    ctx.log.log("debug", "distlockd client gone; its locks released", {
      client: entry.owner.info.client,
      released,
    });
  }
}
