// The machinery behind LockClient and lock(name, { server }): one lazily
// opened connection per server, reconnected with backoff; requests in
// flight, with what each does if the connection drops; the leases held
// through it and their keepers.

import type { Runtime, Timer } from "../runtime/mod.ts";
import type { LockInfo } from "../types.ts";
import { LockError, LockProtocolError } from "../errors.ts";
import { backoff } from "../_backoff.ts";
import { decodeName, encodeName, type Reply } from "./protocol.ts";
import { importAuthKey } from "./auth.ts";
import { ClientConnection, describeServer, hostName } from "./_client_connection.ts";
import { type KeeperHost, type Lease, leaseEnd, LeaseKeeper } from "./_lease_keeper.ts";
import { LinkedList } from "../_linked_list.ts";
import { StableMap } from "../_stable_map.ts";
import { ISOLATE_ID } from "../_isolate.ts";
import {
  AcquireCall,
  type ClientLease,
  errorOf,
  type Op,
  type OpHost,
  renewedTtl,
  SimpleRequest,
} from "./_client_ops.ts";

export type { Lease } from "./_lease_keeper.ts";
export { type AcquireAnswer, AcquireCall, type ClientLease } from "./_client_ops.ts";

/** How a core reaches its server. */
export interface CoreOptions {
  hostname: string;
  port: number;
  token?: string;
  /** ms to (re)connect, retries included, before a request fails. */
  connectTimeout: number;
  runtime: Runtime;
}

const RETRYABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ECONNABORTED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  // Bun's word for a connect that failed while something listens there.
  "EAGAIN",
]);
/** How often in-flight requests are checked against their deadlines. */
const WATCH_MS = 100;
/**
 * After this long without a word from the server while requests wait (a
 * queued acquire may wait for hours), the client asks HEALTH; a server that
 * does not answer within as long again is taken for gone (a host powered
 * off, a partition: TCP would not notice), and once no lease on the
 * connection is still ours by our clock, the connection is dropped, so that
 * waits are sent again on a new one, or fail.
 */
export const PROBE_AFTER_MS = 5_000;

/** One client's connection, requests and leases. */
export class ClientCore implements KeeperHost, OpHost {
  readonly runtime: Runtime;
  /** "host:port", for holder info and messages. */
  readonly server: string;
  #options: CoreOptions;
  #key: Promise<CryptoKey | null> | null = null;
  #conn: ClientConnection | null = null;
  #connecting: Promise<ClientConnection> | null = null;
  // Why the last connect failed, while no connection has opened since.
  #connectError: Error | null = null;
  #inflight = new LinkedList<Op>();
  #watchdog: Timer | null = null;
  // A name is granted and released once per pair: see ../_stable_map.ts.
  #grants = new StableMap<string, ClientLease>();
  #closed = false;
  #probing: ClientConnection | null = null;

  constructor(options: CoreOptions) {
    this.#options = options;
    this.runtime = options.runtime;
    this.server = describeServer(options);
  }

  /** The lease this client holds on `name`, if any. */
  grantOf(name: string): ClientLease | undefined {
    return this.#grants.get(name);
  }

  /**
   * Asks for `name`, queueing on the server up to `wait` ms (`Infinity`:
   * no limit). The call's `first` settles with the first answer (granted,
   * busy, or queued); its `final` with the last.
   */
  acquire(name: string, wait: number, ttl: number | undefined): AcquireCall {
    const call = new AcquireCall(this, name, wait, ttl, this.#options.connectTimeout);
    this.#submit(call);
    return call;
  }

  /** Records a grant (OpHost). */
  granted(name: string, token: number, ttl: number, validUntil: number): ClientLease {
    const lease: ClientLease = {
      name,
      token,
      ttl,
      validUntil,
      active: true,
      info: this.#holderInfo(name, token),
    };
    this.#grants.set(name, lease);
    return lease;
  }

  /** Sends `op` again, as a new request (OpHost). */
  resend(op: Op): void {
    this.#dispatch(op);
  }

  /** Forgets a finished request (OpHost). */
  settled(op: Op): void {
    this.#inflight.delete(op);
  }

  /** Releases `lease`; resolves false if the server no longer had it. */
  release(lease: ClientLease): Promise<boolean> {
    lease.keeper?.stop();
    const wasActive = lease.active;
    lease.active = false;
    if (this.#grants.get(lease.name) === lease) this.#grants.delete(lease.name);
    if (!wasActive) return Promise.resolve(false);
    return this.#simple(`RELEASE ${encodeName(lease.name)} ${lease.token}`, false).then(
      (reply) => reply.kind === "OK",
      // The connection is gone, and with it the lease on the server.
      () => false,
    );
  }

  /**
   * Renews `lease` for its ttl.
   *
   * @returns true if the server confirmed; false if it no longer holds it for us.
   * @throws {LockError} If the server refused for another reason (the lease
   *   is not lost by that), or answered something malformed.
   */
  async renew(lease: Lease, ttl = lease.ttl): Promise<boolean> {
    if (!lease.active) return false;
    const sentAt = this.runtime.monotonic();
    // Checked as it is read too: a malformed answer drops the connection.
    const reply = await this.#simple(
      `RENEW ${encodeName(lease.name)} ${lease.token} ${Math.ceil(ttl)}`,
      false,
      renewedTtl,
    );
    // Lost or released while the RENEW was on its way (our keeper gave up
    // at the lease end and released it): the server's OK came too late.
    if (!lease.active) return false;
    const granted = renewedTtl(reply);
    if (granted === null) {
      if (reply.rest.split(" ", 1)[0] === "NOT_HOLDER") return false;
      throw errorOf(this.server, reply, `renew "${lease.name}"`);
    }
    lease.ttl = granted;
    // The server's lease now ends `granted` ms after it read this request
    // (renewals are answered in order, so the last answer is the end that
    // counts): a renewal to a shorter ttl moves our end earlier too.
    lease.validUntil = leaseEnd(sentAt, granted);
    return true;
  }

  /** A held lease that gives itself up on the server, best effort. */
  forget(lease: Lease): void {
    const held = this.#grants.get(lease.name);
    if (held && held.token === lease.token) this.#grants.delete(lease.name);
    // With the connection gone, the server has released it already.
    if (!this.#conn || this.#conn.closed) return;
    this.#simple(`RELEASE ${encodeName(lease.name)} ${lease.token}`, false).catch(() => {});
  }

  /** Starts renewing `lease` in the background; its `signal` aborts on loss. */
  keep(lease: ClientLease): LeaseKeeper {
    return lease.keeper = new LeaseKeeper(this, lease);
  }

  /** Sends a request and resolves with its reply; `retry` sends it again after a reconnect. */
  request(line: string): Promise<Reply> {
    return this.#simple(line, true);
  }

  /** Closes the connection; held leases are lost (the server releases them). */
  close(): void {
    this.#closed = true;
    // The server releases them the moment it reads our FIN, which can be
    // before this side sees its own close event: they are lost now.
    this.#loseAll("the LockClient was closed, and the server released it");
    for (const op of this.#inflight.toArray()) op.fail(new LockError("The LockClient was closed."));
    this.#conn?.close();
  }

  /** Sends `line`; `check` throws a LockProtocolError for a reply that breaks the protocol. */
  #simple(line: string, retry: boolean, check?: (reply: Reply) => unknown): Promise<Reply> {
    const request = new SimpleRequest(
      this,
      line,
      retry ? 1 : 0,
      this.#options.connectTimeout * 2,
      check,
    );
    this.#submit(request);
    return request.reply;
  }

  #holderInfo(name: string, token: number): LockInfo {
    return {
      kind: "server",
      name,
      pid: this.runtime.pid,
      host: hostName(this.runtime),
      isolate: ISOLATE_ID,
      acquiredAt: this.runtime.now(),
      token,
      server: this.server,
    };
  }

  #submit(op: Op): void {
    if (this.#closed) return op.fail(new LockError("The LockClient was closed; create a new one."));
    this.#inflight.add(op);
    this.#watch();
    this.#dispatch(op);
  }

  /**
   * Why the server cannot be reached: the last connect's error, while no
   * connection is open and the last try to open one failed; else null.
   */
  unreachable(): Error | null {
    return this.#conn && !this.#conn.closed ? null : this.#connectError;
  }

  /** Sends `op` on the open connection, or once one is open. */
  #dispatch(op: Op): void {
    const conn = this.#conn;
    if (conn && !conn.closed) return this.#send(conn, op);
    this.#connect().then(
      (conn) => this.#inflight.has(op) && this.#send(conn, op),
      (error) => this.#inflight.has(op) && op.fail(error),
    );
  }

  #send(conn: ClientConnection, op: Op): void {
    if (conn.closed) return this.#dispatch(op); // closed between connect and send
    const line = op.line();
    if (line === null) return; // withdrawn before it was sent; the op has settled
    op.sentAt = this.runtime.monotonic();
    op.conn = conn;
    op.tag = conn.send(line, op);
  }

  #connect(): Promise<ClientConnection> {
    return this.#connecting ??= this.#open().finally(() => this.#connecting = null);
  }

  async #open(): Promise<ClientConnection> {
    const { runtime, connectTimeout } = this.#options;
    this.#key ??= this.#options.token === undefined
      ? Promise.resolve(null)
      : importAuthKey(this.#options.token);
    const key = await this.#key;
    const started = runtime.monotonic();
    const delay = backoff({ minDelay: 20, maxDelay: 1_000 });
    for (;;) {
      const left = connectTimeout - (runtime.monotonic() - started);
      // Only the latest try's failure tells that the server cannot be reached.
      this.#connectError = null;
      try {
        const conn = await ClientConnection.open({
          runtime,
          hostname: this.#options.hostname,
          port: this.#options.port,
          timeout: Math.max(100, left),
          key,
        });
        if (this.#closed) {
          conn.close();
          throw new LockError("The LockClient was closed.");
        }
        conn.onPush = (reply) => this.#push(reply);
        conn.onClose = (violation) => this.#dropped(conn, violation);
        this.#conn = conn;
        return conn;
      } catch (error) {
        this.#connectError = error as Error;
        const code = (error as { code?: string }).code;
        const pause = delay();
        if (
          this.#closed || !(code && RETRYABLE.has(code)) ||
          runtime.monotonic() - started + pause > connectTimeout
        ) throw error;
        await new Promise<void>((resolve) => runtime.setTimer(resolve, pause));
      }
    }
  }

  #push(reply: Reply): void {
    if (reply.kind !== "LOST") return; // BYE: the close that follows says it all
    const [encoded, token] = reply.rest.split(" ");
    const name = decodeName(encoded ?? "");
    const lease = name === null ? undefined : this.#grants.get(name);
    if (!lease || lease.token !== Number(token)) return;
    this.#grants.delete(lease.name);
    if (lease.keeper) {
      lease.keeper.lost("the server's lease on it expired before a renewal reached it");
    } else lease.active = false;
  }

  /**
   * The connection ended. Requests on it are sent again on a new one when
   * it was lost; when it was dropped for what the server sent, they fail:
   * sent again, they would most likely get the same answer, at once.
   */
  #dropped(conn: ClientConnection, violation: LockProtocolError | null): void {
    if (this.#conn === conn) this.#conn = null;
    // The server released everything this connection held.
    this.#loseAll("the connection to the lock server closed, and the server released it");
    for (const op of this.#inflight.toArray()) {
      if (op.conn !== conn) continue;
      op.conn = null;
      if (violation) op.fail(violation);
      else if (op.dropped()) this.#dispatch(op);
    }
  }

  /** Every lease held counts as lost (their signals abort), for `why`. */
  #loseAll(why: string): void {
    for (const lease of this.#grants.values()) {
      this.#grants.delete(lease.name);
      if (lease.keeper) lease.keeper.lost(why);
      else lease.active = false;
    }
  }

  /** Keeps the process alive while requests are in flight, and times out lost ones. */
  #watch(): void {
    if (this.#watchdog) return;
    this.#watchdog = this.runtime.setTimer(() => {
      this.#watchdog = null;
      const now = this.runtime.monotonic();
      for (const op of this.#inflight.toArray()) {
        if (op.deadline > now) continue;
        op.fail(
          new LockProtocolError(
            `The lock server at ${this.server} did not answer in time; check that it is running and not overloaded.`,
          ),
        );
      }
      this.#probe(now);
      if (this.#inflight.size > 0) this.#watch();
    }, WATCH_MS);
  }

  /** Asks a server that has been silent while requests wait whether it is still there. */
  #probe(now: number): void {
    const conn = this.#conn;
    if (!conn || conn.closed || this.#probing === conn) return;
    if (now - conn.lastHeard < PROBE_AFTER_MS || this.#inflight.size === 0) return;
    this.#probing = conn;
    const probe = new SimpleRequest(this, "HEALTH", 0, PROBE_AFTER_MS);
    this.#inflight.add(probe);
    this.#send(conn, probe);
    probe.reply.then(
      () => {},
      () => {
        // No answer in time. Leases still ours by our clock keep the
        // connection (a paused server may come back before they end: a
        // drop would lose them); once none is, it is dropped, and waits go
        // on over a new one. Meanwhile the next probe follows this one.
        const now = this.runtime.monotonic();
        const holding = this.#grants.values().some((l) => l.active && l.validUntil > now);
        if (!holding && !conn.closed) conn.close();
      },
    ).finally(() => {
      if (this.#probing === conn) this.#probing = null;
    });
  }
}
