// The requests a client has in flight, as small objects rather than nests
// of closures: at tens of thousands of acquires a second, what each one
// allocates is what the client spends its time collecting.

import type { Runtime } from "../runtime/mod.ts";
import type { LockInfo } from "../types.ts";
import { LockError, LockProtocolError } from "../errors.ts";
import { encodeName, type Reply, WAIT_FOREVER } from "./protocol.ts";
import type { ClientConnection, ReplyHandler } from "./_client_connection.ts";
import { type Lease, leaseEnd, type LeaseKeeper } from "./_lease_keeper.ts";
import type { Listed } from "../_linked_list.ts";

/** A granted lease as the client knows it. */
export interface ClientLease extends Lease {
  /** This process's info as holder. */
  readonly info: LockInfo;
  keeper?: LeaseKeeper;
}

/** The answer to an acquire: the lease, or who holds the name. */
export type AcquireAnswer =
  | { status: "granted"; lease: ClientLease }
  | { status: "queued" | "busy" | "timeout" | "cancelled"; holder: LockInfo | null };

/** What requests need from the client that sends them. */
export interface OpHost {
  readonly runtime: Runtime;
  /** "host:port", for messages and holder info. */
  readonly server: string;
  /** Records a grant and returns its lease. */
  granted(name: string, token: number, ttl: number, validUntil: number): ClientLease;
  /** Releases a lease. */
  release(lease: ClientLease): Promise<boolean>;
  /** Sends a request in flight again (under a new tag). */
  resend(op: Op): void;
  /** The request is done: forget it. */
  settled(op: Op): void;
}

/** A request in flight: what to send, what to do with replies, and on a drop. */
export interface Op extends ReplyHandler, Listed<Op> {
  /** Monotonic ms after which the watchdog gives up on it. */
  deadline: number;
  conn: ClientConnection | null;
  tag: string;
  /** When it was last sent (monotonic ms). */
  sentAt: number;
  /** The request to send now, or null if there is nothing to send any more. */
  line(): string | null;
  /** The connection dropped: true to send it again on a new one. */
  dropped(): boolean;
  /** Ends it with an error. */
  fail(error: Error): void;
}

/**
 * A reply's JSON object (STATS, STATUS): anything else breaks the protocol.
 *
 * @example Read a STATS reply
 * ```ts
 * import { jsonReply } from "./_client_ops.ts";
 * console.log(jsonReply("127.0.0.1:8888", "STATS", '{"held":2}').held); // 2
 * ```
 *
 * @param server The server's address, for the message.
 * @param what The request answered.
 * @param json The reply's text after `OK`.
 * @returns The object.
 * @throws {LockProtocolError} If it is not a JSON object.
 */
export function jsonReply(server: string, what: string, json: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    value = undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new LockProtocolError(
      `The lock server at ${server} answered ${what} with something that is not a JSON ` +
        `object: ${json.slice(0, 80)}`,
    );
  }
  return value as Record<string, unknown>;
}

/** Parses the holder JSON of BUSY/QUEUED/TIMEOUT replies. */
export function holderInfo(name: string, server: string, json: string): LockInfo | null {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new LockProtocolError(
      `The lock server sent a holder that is not JSON: ${json.slice(0, 80)}`,
    );
  }
  return holderFrom(name, server, value);
}

/** A holder as the server sent it (parsed JSON; a STATUS reply's `holder`), or null if none. */
export function holderFrom(name: string, server: string, value: unknown): LockInfo | null {
  if (typeof value !== "object" || value === null) return null;
  const h = value as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === "number" ? v : 0);
  return {
    kind: "server",
    name,
    pid: num(h.pid),
    host: typeof h.host === "string" ? h.host : "",
    acquiredAt: num(h.acquiredAt),
    token: num(h.token),
    server,
    client: h.client,
    ...(typeof h.isolate === "string" ? { isolate: h.isolate } : {}),
    expiresIn: h.expiresIn,
    waiters: h.waiters,
  };
}

const DIGITS = /^\d{1,16}$/;

/**
 * Reads a whole-number field of an `OK` reply.
 *
 * @param field The field as sent.
 * @param what What it is, for the message.
 * @param min The least value allowed.
 * @throws {LockProtocolError} If it is not a safe integer >= `min`.
 */
export function replyInteger(field: string | undefined, what: string, min: number): number {
  const value = field !== undefined && DIGITS.test(field) ? Number(field) : NaN;
  if (Number.isSafeInteger(value) && value >= min) return value;
  throw new LockProtocolError(
    `The lock server sent ${what} ${
      JSON.stringify(field?.slice(0, 40) ?? "")
    }, not a whole number >= ${min}. Check that --server points at "socketlock serve", of the same version as this client.`,
  );
}

/**
 * Reads the answer to RENEW.
 *
 * @returns The ttl the server renewed the lease for, or null for an `ERR`.
 * @throws {LockProtocolError} For any other answer, or an `OK` without a
 *   token and a ttl.
 */
export function renewedTtl(reply: Reply): number | null {
  if (reply.kind === "ERR") return null;
  if (reply.kind !== "OK") {
    throw new LockProtocolError(
      `The lock server answered RENEW with ${reply.kind}, which is not an answer to RENEW. Check that --server points at "socketlock serve".`,
    );
  }
  const [token, ttl] = reply.rest.split(" ");
  replyInteger(token, "a token", 0);
  return replyInteger(ttl, "a ttl", 1);
}

/** The error for an `ERR` reply. */
export function errorOf(server: string, reply: Reply, what: string): Error {
  const code = reply.rest.split(" ", 1)[0];
  const message = reply.rest.slice(code.length + 1);
  return new LockError(
    `The lock server at ${server} refused to ${what}: ${message || reply.rest} (${code}).`,
  );
}

/** A promise made only when someone asks for it, settled from outside. */
class Deferred<T> {
  promise: Promise<T> | null = null;
  resolve: ((value: T) => void) | null = null;
  reject: ((error: Error) => void) | null = null;

  /** The promise: settled already (`value`/`error`), or pending until settled. */
  get(value: T | null, error: Error | null): Promise<T> {
    if (this.promise) return this.promise;
    if (value !== null) return this.promise = Promise.resolve(value);
    if (error !== null) return this.promise = Promise.reject(error);
    return this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

/**
 * One ACQUIRE: `final` settles with the last answer; `first` with the first
 * — granted, busy, or queued. Both are made on demand: a hot loop of
 * uncontended acquires then makes one promise per call, and an error no one
 * asked about is not an unhandled rejection.
 */
export class AcquireCall implements Op {
  deadline: number;
  conn: ClientConnection | null = null;
  tag = "";
  sentAt = 0;
  prev: Op | null = null;
  next: Op | null = null;
  #host: OpHost;
  #name: string;
  #wait: number;
  #ttl: number | undefined;
  #start: number;
  #done = false;
  #cancelled = false;
  #answer: AcquireAnswer | null = null;
  #firstAnswer: AcquireAnswer | null = null;
  #error: Error | null = null;
  #final = new Deferred<AcquireAnswer>();
  #first = new Deferred<AcquireAnswer>();

  constructor(host: OpHost, name: string, wait: number, ttl: number | undefined, grace: number) {
    this.#host = host;
    this.#name = name;
    this.#wait = wait;
    this.#ttl = ttl;
    this.#start = host.runtime.monotonic();
    // The server answers TIMEOUT at the deadline; the watchdog only steps in if it does not.
    this.deadline = this.#start + wait + grace;
  }

  /** The last answer (granted, busy, timeout or cancelled), or an error. */
  get final(): Promise<AcquireAnswer> {
    return this.#final.get(this.#answer, this.#error);
  }

  /** The first answer: granted, busy, queued (then `final` tells the rest), or an error. */
  get first(): Promise<AcquireAnswer> {
    return this.#first.get(this.#firstAnswer, this.#error);
  }

  /** The holder named by the first answer (QUEUED: the one we wait for), if any. */
  get holder(): LockInfo | null {
    const answer = this.#firstAnswer;
    return answer && "holder" in answer ? answer.holder : null;
  }

  /**
   * Gives the call up: withdraws the wait, and releases a grant that came
   * before the withdrawal (one that crosses it is released by {@link cancel}).
   */
  abandon(): void {
    this.final.then((answer) => {
      if (answer.status === "granted") this.#host.release(answer.lease).catch(() => {});
    }, () => {});
    this.cancel();
  }

  /** Withdraws the wait; a grant that crosses the cancel is released at once. */
  cancel(): void {
    if (this.#done || this.#cancelled) return;
    this.#cancelled = true;
    const conn = this.conn;
    if (conn && !conn.closed && this.tag) conn.send(`CANCEL ${this.tag}`, IGNORE);
  }

  line(): string | null {
    if (this.#cancelled) {
      this.#finish({ status: "cancelled", holder: null });
      return null;
    }
    // A wait the server would read as forever, or could not read (past
    // 2^53), is sent as forever: our own deadline still ends it on time.
    const left = Math.floor(this.#start + this.#wait - this.#host.runtime.monotonic());
    const wait = left >= WAIT_FOREVER ? "forever" : Math.max(0, left);
    const ttl = this.#ttl === undefined ? "" : ` ${Math.ceil(this.#ttl)}`;
    return `ACQUIRE ${encodeName(this.#name)} ${wait}${ttl}`;
  }

  onReply(reply: Reply): boolean {
    const host = this.#host;
    switch (reply.kind) {
      case "OK": {
        // OK TOKEN TTL [WAITED]; a field that is not a number breaks the
        // protocol (the throw drops the connection and fails this call).
        const rest = reply.rest;
        const a = rest.indexOf(" ");
        const b = a < 0 ? -1 : rest.indexOf(" ", a + 1);
        const token = replyInteger(a < 0 ? rest : rest.slice(0, a), "a token", 0);
        const ttl = replyInteger(
          a < 0 ? undefined : b < 0 ? rest.slice(a + 1) : rest.slice(a + 1, b),
          "a ttl",
          1,
        );
        const waited = b < 0 ? 0 : replyInteger(rest.slice(b + 1), "a wait", 0);
        // The server queued us no earlier than sentAt, then waited `waited` ms.
        const validUntil = leaseEnd(this.sentAt, ttl, waited);
        const lease = host.granted(this.#name, token, ttl, validUntil);
        if (this.#cancelled || this.#done) {
          // Withdrawn (or given up on) while the grant was on its way.
          host.release(lease).catch(() => {});
          this.#finish({ status: "cancelled", holder: null });
        } else if (validUntil <= host.runtime.monotonic()) {
          // The grant took longer to reach us than its lease lasts: by our
          // clock it has ended, and the server may have granted the name
          // again. It is given back, and asked for again within what is left
          // of the wait (a link that is always that slow never grants).
          host.release(lease).catch(() => {});
          if (this.#start + this.#wait > host.runtime.monotonic()) host.resend(this);
          else this.#finish({ status: this.#wait === 0 ? "busy" : "timeout", holder: null });
        } else {
          this.#finish({ status: "granted", lease });
        }
        return true;
      }
      case "QUEUED": {
        const space = reply.rest.indexOf(" ");
        const holder = holderInfo(this.#name, host.server, reply.rest.slice(space + 1));
        if (!this.#firstAnswer) {
          this.#firstAnswer = { status: "queued", holder };
          this.#first.resolve?.(this.#firstAnswer);
        }
        return false;
      }
      case "BUSY":
      case "TIMEOUT": {
        const holder = holderInfo(this.#name, host.server, reply.rest);
        // A call that asked to wait, sent once its wait had run out (a slow
        // handshake, a reconnect), went as a try: it timed out.
        const busy = reply.kind === "BUSY" && this.#wait === 0;
        this.#finish({ status: busy ? "busy" : "timeout", holder });
        return true;
      }
      case "CANCELLED":
        this.#finish({ status: "cancelled", holder: null });
        return true;
      default:
        this.fail(errorOf(host.server, reply, `acquire "${this.#name}"`));
        return true;
    }
  }

  dropped(): boolean {
    return !this.#done;
  }

  fail(error: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    this.#host.settled(this);
    if (!this.#firstAnswer) this.#first.reject?.(error);
    this.#final.reject?.(error);
  }

  #finish(answer: AcquireAnswer): void {
    if (this.#done) return;
    this.#done = true;
    this.#answer = answer;
    this.#host.settled(this);
    if (!this.#firstAnswer) {
      this.#firstAnswer = answer;
      this.#first.resolve?.(answer);
    }
    this.#final.resolve?.(answer);
  }
}

const IGNORE: ReplyHandler = { onReply: () => true };

/** Any other request: resolves with its one reply. */
export class SimpleRequest implements Op {
  deadline: number;
  conn: ClientConnection | null = null;
  tag = "";
  sentAt = 0;
  prev: Op | null = null;
  next: Op | null = null;
  readonly reply: Promise<Reply>;
  #host: OpHost;
  #line: string;
  #retries: number;
  #check: ((reply: Reply) => unknown) | undefined;
  #resolve!: (reply: Reply) => void;
  #reject!: (error: Error) => void;

  /**
   * @param retries How often to send it again on a new connection if the
   *   connection drops first (0 for RELEASE and RENEW: the drop answers them).
   * @param check Throws a LockProtocolError for a reply that breaks the
   *   protocol, which drops the connection and fails the request.
   */
  constructor(
    host: OpHost,
    line: string,
    retries: number,
    timeout: number,
    check?: (reply: Reply) => unknown,
  ) {
    this.#host = host;
    this.#line = line;
    this.#retries = retries;
    this.#check = check;
    this.deadline = host.runtime.monotonic() + timeout;
    this.reply = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  line(): string {
    return this.#line;
  }

  onReply(reply: Reply): boolean {
    this.#check?.(reply);
    this.#host.settled(this);
    this.#resolve(reply);
    return true;
  }

  dropped(): boolean {
    if (this.#retries-- > 0) return true;
    const command = this.#line.slice(0, this.#line.indexOf(" ") >>> 0);
    this.fail(
      new LockProtocolError(
        `The connection to the lock server closed before it answered ${command}.`,
      ),
    );
    return false;
  }

  fail(error: Error): void {
    this.#host.settled(this);
    this.#reject(error);
  }
}
