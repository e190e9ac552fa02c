// One connection speaking our line protocol. The connection is the owner:
// everything it holds is released, and everything it waits for withdrawn,
// the moment it closes.

import type { Connection } from "../runtime/mod.ts";
import { type Lease, Owner, type Waiter } from "./lock_table.ts";
import {
  encodeName,
  type ErrorCode,
  LineReader,
  parseRequest,
  PROTOCOL_VERSION,
  type Request,
  tagOf,
  WAIT_FOREVER,
} from "./protocol.ts";
import { newNonce, signChallenge, verifyChallenge } from "./auth.ts";
import {
  holderJson,
  logLease,
  logReleasingAll,
  type ServerContext,
  statsOf,
  utf8Length,
} from "./_server_context.ts";
import { TextOutbox } from "./_outbox.ts";
import { Throttle } from "./_throttle.ts";

/** Lines a client may send before its AUTH is checked; they are answered afterwards. */
const MAX_LINES_DURING_AUTH = 64;

/** "1 lock", "2 locks": for the limits' error messages. */
function locks(count: number): string {
  return `${count} lock${count === 1 ? "" : "s"}`;
}

/**
 * A line over the limit, by the tag it started with (`*` if none could be
 * read). It queues with the lines around it, so that its error reply comes
 * in the order of the requests: a client may match it to its request by
 * order when the tag is `*`.
 */
interface TooLong {
  tooLong: string;
}

/** A line-protocol connection on the server. */
export class LineSession {
  readonly owner: Owner;
  lastActivity: number;
  #ctx: ServerContext;
  #conn: Connection;
  #out: TextOutbox;
  #throttle: Throttle<string | TooLong>;
  #reader: LineReader;
  #waits = new Map<string, Waiter>();
  #authed: boolean;
  #nonce: string | null = null;
  /** Lines received while an AUTH is being verified, or null. */
  #held: (string | TooLong)[] | null = null;
  #ended = false;

  constructor(ctx: ServerContext, conn: Connection, id: number) {
    this.#ctx = ctx;
    this.#conn = conn;
    this.#out = new TextOutbox(conn);
    this.#throttle = new Throttle(conn, ctx.limits.maxOutputBytes, this.#out, this.#accept);
    this.#out.afterFlush = () => this.#throttle.relieve();
    this.#reader = new LineReader(ctx.limits.maxLineBytes);
    this.#authed = ctx.key === null;
    this.lastActivity = ctx.runtime.monotonic();
    this.owner = new Owner(
      { pid: 0, host: "", client: `conn-${id}` },
      (lease) => this.#lost(lease),
    );
  }

  /** False until the client authenticated, on a server with a token. */
  get authenticated(): boolean {
    return this.#authed;
  }

  /** True when closing it for idleness loses nothing. */
  get idle(): boolean {
    return this.owner.leases.size === 0 && this.owner.waiters.size === 0;
  }

  /** Handles received bytes. */
  receive(chunk: Uint8Array): void {
    if (this.#ended) return;
    // Any byte counts as activity: a client sending a long line slowly is
    // not idle (only silence is).
    this.lastActivity = this.#ctx.runtime.monotonic();
    this.#reader.push(chunk, this.#onLine, this.#onTooLong);
  }

  /** The connection closed: release and withdraw everything at once. */
  closed(): void {
    this.#ended = true;
    this.#throttle.clear();
    const released = this.#giveUp("connection closed");
    if (this.#ctx.verbose) {
      this.#ctx.log.log("debug", "connection closed", { client: this.owner.info.client, released });
    }
  }

  /** Says goodbye with `reason`, gives up its locks and waits, and closes the connection. */
  end(reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#out.write(`* BYE ${reason}\n`);
    this.#out.flush();
    this.#giveUp(reason);
    this.#conn.close();
  }

  // Releases its locks and withdraws its waits. At once when the session
  // ends, not when the socket closes: a peer that reads nothing may keep it
  // open until it is aborted, and names must not be granted to it meanwhile.
  #giveUp(reason: string): number {
    this.#waits.clear();
    logReleasingAll(this.#ctx, this.owner, reason);
    return this.#ctx.table.drop(this.owner);
  }

  readonly #onLine = (line: string) => {
    if (!this.#ended) this.#throttle.offer(line);
  };

  /** A line the throttle let through. */
  readonly #accept = (line: string | TooLong) => {
    if (this.#ended) return;
    if (this.#held) {
      if (this.#held.length >= MAX_LINES_DURING_AUTH) {
        this.#error("*", "BAD_REQUEST", "Wait for the reply to AUTH before sending more requests.");
        this.end("too many requests before authentication");
        return;
      }
      this.#held.push(line);
      return;
    }
    if (typeof line === "string") this.#handle(line);
    else this.#tooLong(line.tooLong);
  };

  readonly #onTooLong = (head: string) => {
    if (!this.#ended) this.#throttle.offer({ tooLong: tagOf(head) });
  };

  /** Answers a line over the limit, with its own tag when it could be read. */
  #tooLong(tag: string): void {
    this.#ctx.counters.operations++;
    const max = this.#ctx.limits.maxLineBytes;
    this.#error(
      tag,
      "LINE_TOO_LONG",
      `A request line is longer than ${max} bytes; it was skipped. Keep requests under ${max} bytes (names under ${this.#ctx.limits.maxNameBytes}), or start the server with a larger --max-line.`,
    );
  }

  #handle(line: string): void {
    const ctx = this.#ctx;
    ctx.counters.operations++;
    if (line === "") return; // a stray line end from a person typing
    const request = parseRequest(line);
    if ("error" in request) return this.#error(request.tag, request.error, request.message);
    const { tag } = request;
    if (
      !this.#authed && request.command !== "HELLO" && request.command !== "AUTH" &&
      request.command !== "HEALTH" && request.command !== "QUIT"
    ) {
      return this.#error(
        tag,
        "AUTH_REQUIRED",
        "This server requires authentication: send HELLO, then AUTH with the HMAC of its nonce (LockClient does this when given the token).",
      );
    }
    switch (request.command) {
      case "ACQUIRE":
        return this.#acquire(request);
      case "RELEASE": {
        if (ctx.table.release(request.name, this.owner, request.token)) {
          if (ctx.verbose) logLease(ctx, "released", this.owner, request.name);
          return this.#write(`${tag} OK\n`);
        }
        return this.#notHolder(tag, request.name, request.token);
      }
      case "RENEW": {
        // Without a TTL, the lease keeps the length it has.
        const current = ctx.table.holderOf(request.name, this.owner, request.token);
        const ttl = Math.min(request.ttl ?? current?.ttl ?? ctx.ttl, ctx.maxTtl);
        const lease = current && ctx.table.renew(request.name, this.owner, ttl, request.token);
        if (!lease) return this.#notHolder(tag, request.name, request.token);
        return this.#write(`${tag} OK ${lease.token} ${ttl}\n`);
      }
      case "CANCEL": {
        const waiter = this.#waits.get(request.target);
        if (!waiter || !ctx.table.cancel(waiter)) {
          return this.#error(
            tag,
            "NOT_WAITING",
            `No acquire tagged "${request.target}" is waiting on this connection; it was granted, timed out or never queued.`,
          );
        }
        this.#waits.delete(request.target);
        return this.#write(`${request.target} CANCELLED\n${tag} OK\n`);
      }
      case "STATUS": {
        const holder = ctx.table.holderOf(request.name);
        const waiters = ctx.table.queueLength(request.name);
        return this.#write(
          `${tag} OK {"name":${JSON.stringify(request.name)},"held":${!!holder},"holder":${
            holderJson(ctx, holder)
          },"waiters":${waiters}}\n`,
        );
      }
      case "HEALTH":
        return this.#write(`${tag} OK\n`);
      case "STATS":
        return this.#write(`${tag} OK ${JSON.stringify(statsOf(ctx))}\n`);
      case "QUIT":
        this.#write(`${tag} OK bye\n`);
        this.#ended = true;
        this.#out.flush();
        this.#giveUp("QUIT");
        this.#conn.close();
        return;
      case "HELLO":
        this.owner.info = {
          ...this.owner.info,
          pid: request.pid,
          host: request.host,
          ...(request.isolate ? { isolate: request.isolate } : {}),
        };
        if (ctx.key && !this.#authed) this.#nonce = newNonce();
        return this.#write(`${tag} OK ${PROTOCOL_VERSION} ${this.#nonce ?? "-"}\n`);
      case "AUTH":
        void this.#auth(request);
        return;
    }
  }

  #acquire(request: Extract<Request, { command: "ACQUIRE" }>): void {
    const ctx = this.#ctx;
    const { tag, name } = request;
    const limits = ctx.limits;
    if (utf8Length(name, limits.maxNameBytes) > limits.maxNameBytes) {
      return this.#error(
        tag,
        "NAME_TOO_LONG",
        `Lock names may be at most ${limits.maxNameBytes} bytes; use a shorter name (or start the server with a larger --max-name).`,
      );
    }
    // Waits count too: each may be granted, and then it is held.
    if (this.owner.leases.size + this.owner.waiters.size >= limits.maxLocksPerConnection) {
      return this.#error(
        tag,
        "TOO_MANY_LOCKS",
        `This connection holds ${
          locks(this.owner.leases.size)
        } and waits for ${this.owner.waiters.size}, the most allowed; release some (or cancel some waits) first.`,
      );
    }
    if (this.#waits.has(tag)) {
      return this.#error(
        tag,
        "BAD_REQUEST",
        `An acquire tagged "${tag}" is already waiting on this connection; use a new tag for each request.`,
      );
    }
    const wait = request.wait >= WAIT_FOREVER ? Infinity : request.wait;
    if (
      wait > 0 && this.owner.waiters.size >= limits.maxWaitersPerConnection &&
      (ctx.table.holderOf(name) || ctx.table.holdingGrants)
    ) {
      return this.#error(
        tag,
        "TOO_MANY_WAITERS",
        `This connection already waits for ${
          locks(this.owner.waiters.size)
        }, the most allowed; cancel or finish some waits first.`,
      );
    }
    const ttl = Math.min(request.ttl ?? ctx.ttl, ctx.maxTtl);
    const outcome = ctx.table.acquire(name, this.owner, ttl, wait, {
      granted: (lease, waited) => {
        this.#waits.delete(tag);
        if (ctx.verbose) {
          logLease(ctx, "granted after waiting", this.owner, name, { token: lease.token, waited });
        }
        this.#write(`${tag} OK ${lease.token} ${lease.ttl} ${Math.floor(waited)}\n`);
      },
      timedOut: (holder) => {
        this.#waits.delete(tag);
        this.#write(`${tag} TIMEOUT ${holderJson(ctx, holder)}\n`);
      },
    });
    switch (outcome.status) {
      case "granted":
        if (ctx.verbose) logLease(ctx, "granted", this.owner, name, { token: outcome.lease.token });
        return this.#write(`${tag} OK ${outcome.lease.token} ${ttl} 0\n`);
      case "busy":
        return this.#write(`${tag} BUSY ${holderJson(ctx, outcome.holder)}\n`);
      case "withheld": // the restart grace: free, but nothing is granted yet
        return this.#write(`${tag} BUSY null\n`);
      case "queued":
        this.#waits.set(tag, outcome.waiter);
        return this.#write(
          `${tag} QUEUED ${outcome.position} ${holderJson(ctx, ctx.table.holderOf(name))}\n`,
        );
    }
  }

  async #auth(request: Extract<Request, { command: "AUTH" }>): Promise<void> {
    const ctx = this.#ctx;
    if (this.#authed || !ctx.key) return this.#write(`${request.tag} OK -\n`);
    const nonce = this.#nonce;
    if (!nonce) {
      return this.#error(
        request.tag,
        "BAD_REQUEST",
        "Send HELLO first: its reply carries the nonce to sign.",
      );
    }
    this.#nonce = null; // one try per nonce
    this.#held = [];
    let ok = false;
    let proof = "";
    try {
      ok = await verifyChallenge(ctx.key, "client", nonce, request.nonce, request.mac);
      if (ok) proof = await signChallenge(ctx.key, "server", nonce, request.nonce);
    } catch {
      ok = false;
    }
    if (this.#ended) return;
    if (!ok) {
      ctx.log.log("warn", "authentication failed", { client: this.owner.info.client });
      this.#error(
        request.tag,
        "AUTH_FAILED",
        "The HMAC does not match: the client's token differs from the server's --token-file.",
      );
      this.end("authentication failed");
      return;
    }
    this.#authed = true;
    this.#write(`${request.tag} OK ${proof}\n`);
    const held = this.#held;
    this.#held = null;
    for (const line of held) this.#accept(line);
  }

  #lost(lease: Lease): void {
    logLease(this.#ctx, "lease expired", this.owner, lease.name, { token: lease.token });
    if (!this.#ended) this.#write(`* LOST ${encodeName(lease.name)} ${lease.token} expired\n`);
  }

  #notHolder(tag: string, name: string, token: number | undefined): void {
    const which = token === undefined ? "" : ` with token ${token}`;
    this.#error(
      tag,
      "NOT_HOLDER",
      `This connection does not hold ${
        JSON.stringify(name.slice(0, 64))
      }${which}: it was released, its lease expired, or another client holds it. Acquire it again.`,
    );
  }

  #error(tag: string, code: ErrorCode, message: string): void {
    this.#write(`${tag} ERR ${code} ${message}\n`);
  }

  #write(text: string): void {
    if (!this.#ended) this.#out.write(text);
  }
}
