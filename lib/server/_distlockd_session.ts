// One connection speaking distlockd's binary frames. distlockd's client pools
// connections under one client id, so a lock belongs to the client id (as in
// distlockd); it is released at once when the last connection using that id
// closes, and otherwise when its lease (the server's default TTL) runs out.

import type { Connection } from "../runtime/mod.ts";
import type { Owner } from "./lock_table.ts";
import {
  DistlockdCommand,
  type DistlockdRequest,
  DistlockdRequestReader,
  DistlockdStatus,
  encodeDistlockdResponse,
} from "./distlockd_frames.ts";
import {
  leaveDistlockdOwner,
  logLease,
  MAX_CLIENT_ID_BYTES,
  MAX_CLIENT_IDS_PER_CONNECTION,
  type ServerContext,
  useDistlockdOwner,
} from "./_server_context.ts";
import { FrameOutbox } from "./_outbox.ts";
import { Throttle } from "./_throttle.ts";

const OK = encodeDistlockdResponse(DistlockdStatus.OK);
const BUSY = encodeDistlockdResponse(DistlockdStatus.TIMEOUT, "Lock is busy");
const INVALID_RELEASE = encodeDistlockdResponse(DistlockdStatus.ERROR, "Invalid release");
const INVALID_COMMAND = encodeDistlockdResponse(DistlockdStatus.INVALID, "Invalid command");

/** A frame over the limits: its header only (the body is skipped unread). */
interface Oversize {
  oversize: true;
  command: number;
  nameBytes: number;
  idBytes: number;
}

/** A distlockd-protocol connection on the server. */
export class DistlockdSession {
  lastActivity: number;
  #ctx: ServerContext;
  #conn: Connection;
  #out: FrameOutbox;
  #throttle: Throttle<DistlockdRequest | Oversize>;
  #reader: DistlockdRequestReader;
  /** The client ids this connection used, with their owners. */
  #owners = new Map<string, Owner>();
  #ended = false;

  constructor(ctx: ServerContext, conn: Connection) {
    this.#ctx = ctx;
    this.#conn = conn;
    this.#out = new FrameOutbox(conn);
    this.#throttle = new Throttle(
      conn,
      ctx.limits.maxOutputBytes,
      this.#out,
      (item) => "oversize" in item ? this.#tooLong(item) : this.#handle(item),
    );
    this.#out.afterFlush = () => this.#throttle.relieve();
    this.#reader = new DistlockdRequestReader(ctx.limits.maxNameBytes, MAX_CLIENT_ID_BYTES);
    this.lastActivity = ctx.runtime.monotonic();
  }

  /** True when closing it for idleness loses nothing. */
  get idle(): boolean {
    for (const owner of this.#owners.values()) if (owner.leases.size > 0) return false;
    return true;
  }

  /** Handles received bytes. */
  receive(chunk: Uint8Array): void {
    if (this.#ended) return;
    this.lastActivity = this.#ctx.runtime.monotonic(); // any byte counts as activity
    this.#reader.push(chunk, this.#handlers);
  }

  /** The connection closed: client ids no other connection uses lose their locks. */
  closed(): void {
    this.#ended = true;
    this.#throttle.clear();
    for (const clientId of this.#owners.keys()) leaveDistlockdOwner(this.#ctx, clientId);
    this.#owners.clear();
  }

  /** Closes the connection (distlockd has no goodbye frame). */
  end(_reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#out.flush();
    this.#conn.close();
  }

  readonly #handlers = {
    frame: (request: DistlockdRequest) => {
      if (!this.#ended) this.#throttle.offer(request);
    },
    oversize: (command: number, nameBytes: number, idBytes: number) => {
      if (!this.#ended) this.#throttle.offer({ oversize: true, command, nameBytes, idBytes });
    },
  };

  #tooLong({ nameBytes, idBytes }: Oversize): void {
    if (this.#ended) return;
    this.#ctx.counters.operations++;
    if (this.#ctx.key) return this.#refuse();
    const what = nameBytes > this.#ctx.limits.maxNameBytes
      ? `Lock name too long (${nameBytes} bytes, at most ${this.#ctx.limits.maxNameBytes})`
      : `Client id too long (${idBytes} bytes, at most ${MAX_CLIENT_ID_BYTES})`;
    this.#reply(encodeDistlockdResponse(DistlockdStatus.ERROR, what));
  }

  #handle({ command, name, clientId }: DistlockdRequest): void {
    if (this.#ended) return;
    const ctx = this.#ctx;
    ctx.counters.operations++;
    if (ctx.key) return this.#refuse();
    if (command === DistlockdCommand.HEALTH) return this.#reply(OK);
    if (command !== DistlockdCommand.ACQUIRE && command !== DistlockdCommand.RELEASE) {
      return this.#reply(INVALID_COMMAND);
    }
    if (name === "") {
      return this.#reply(
        encodeDistlockdResponse(DistlockdStatus.ERROR, "Lock name cannot be empty"),
      );
    }
    const owner = this.#ownerOf(clientId);
    if (!owner) return;
    if (command === DistlockdCommand.RELEASE) {
      const lease = ctx.verbose ? ctx.table.holderOf(name, owner) : null;
      if (!ctx.table.release(name, owner)) return this.#reply(INVALID_RELEASE);
      if (lease) logLease(ctx, "released", owner, name, { token: lease.token });
      return this.#reply(OK);
    }
    // distlockd's ACQUIRE by the holder's own id succeeds again and refreshes it.
    if (ctx.table.renew(name, owner, ctx.ttl)) return this.#reply(OK);
    if (owner.leases.size >= ctx.limits.maxLocksPerConnection) {
      return this.#reply(
        encodeDistlockdResponse(DistlockdStatus.ERROR, "Too many locks held by this client"),
      );
    }
    const outcome = ctx.table.acquire(name, owner, ctx.ttl, 0);
    if (outcome.status === "granted" && ctx.verbose) {
      logLease(ctx, "granted", owner, name, { token: outcome.lease.token });
    }
    this.#reply(outcome.status === "granted" ? OK : BUSY);
  }

  // Every frame, well-formed or not, ends the session on a server with a
  // token: none can authenticate, so none may keep a connection slot.
  #refuse(): void {
    this.#reply(encodeDistlockdResponse(
      DistlockdStatus.ERROR,
      "This lock server requires authentication, which distlockd clients cannot do. " +
        "Use socketlock's LockClient with the token, or run the server without --token-file on a trusted network.",
    ));
    this.end("authentication required");
  }

  #ownerOf(clientId: string): Owner | null {
    let owner = this.#owners.get(clientId);
    if (owner) return owner;
    if (this.#owners.size >= MAX_CLIENT_IDS_PER_CONNECTION) {
      this.#reply(encodeDistlockdResponse(
        DistlockdStatus.ERROR,
        `Too many client ids on one connection (at most ${MAX_CLIENT_IDS_PER_CONNECTION})`,
      ));
      return null;
    }
    owner = useDistlockdOwner(this.#ctx, clientId);
    this.#owners.set(clientId, owner);
    return owner;
  }

  #reply(frame: Uint8Array): void {
    if (!this.#ended) this.#out.write(frame);
  }
}
