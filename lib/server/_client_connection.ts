// One client connection to the lock server: the handshake (HELLO, and the
// mutual HMAC when a token is set), tags, and replies routed to whoever
// asked. Writes are gathered per microtask, so requests issued together
// (a release and the next acquire) leave in one packet.

import { type Connection, errorCode, type Runtime } from "../runtime/mod.ts";
import { LockError, LockPermissionError, LockProtocolError } from "../errors.ts";
import { encodeName, LineReader, parseReply, PROTOCOL_VERSION, type Reply } from "./protocol.ts";
import { newNonce, signChallenge, verifyChallenge } from "./auth.ts";
import { TextOutbox } from "./_outbox.ts";
import { ISOLATE_ID } from "../_isolate.ts";

/** Longest reply line a client accepts (replies are small JSON at most). */
const MAX_REPLY_BYTES = 64 * 1024;

/** Told of each reply to one request. */
export interface ReplyHandler {
  /** Handles a reply; returns true once the request is done. */
  onReply(reply: Reply): boolean;
}

/** How to reach and greet a server. */
export interface ConnectOptions {
  runtime: Runtime;
  hostname: string;
  port: number;
  /** ms for the TCP connect and the handshake. */
  timeout: number;
  key: CryptoKey | null;
}

/** Where the server is, for messages. */
export function describeServer(options: { hostname: string; port: number }): string {
  return options.hostname.includes(":")
    ? `[${options.hostname}]:${options.port}`
    : `${options.hostname}:${options.port}`;
}

/** An open, greeted (and authenticated) connection. */
export class ClientConnection {
  #conn: Connection;
  #out: TextOutbox;
  #reader = new LineReader(MAX_REPLY_BYTES);
  // Requests without any reply yet, oldest first (tags and handlers side by
  // side), and those answered once that wait for more (a queued acquire).
  // The server answers every request first in the order they came, so a
  // reply is nearly always to the oldest. Not one Map of all: under V8, a
  // Map that gains and loses an entry per request keeps them all alive
  // until a full GC (see ../_linked_list.ts).
  #unansweredTags: string[] = [];
  #unansweredHandlers: ReplyHandler[] = [];
  #waiting = new Map<string, ReplyHandler>();
  #nextTag = 1;
  #closed = false;
  #rejectOnClose = new Set<(error: Error) => void>();
  /** Called with `* ...` lines (LOST, BYE). */
  onPush: (reply: Reply) => void = () => {};
  /**
   * Called once when the connection ends: with the error if it was dropped
   * for what the server sent (a protocol violation), else with null.
   */
  onClose: (violation: LockProtocolError | null) => void = () => {};
  /** When the server last sent anything, monotonic ms. */
  lastHeard: number;

  private constructor(conn: Connection, runtime: Runtime) {
    this.#conn = conn;
    this.#out = new TextOutbox(conn);
    this.lastHeard = runtime.monotonic();
    conn.onData((chunk) => {
      this.lastHeard = runtime.monotonic();
      this.#reader.push(chunk, this.#onLine, this.#onTooLong);
    });
    conn.onClose(() => this.#ended(null));
    // Idle connections never keep the process alive; LockClient keeps it
    // alive with a timer while it waits for replies.
    conn.unref();
  }

  /** True once the connection has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Connects, says HELLO and, when the server asks, proves the token.
   *
   * @throws {LockPermissionError} If the token is missing or wrong.
   * @throws {LockError} If the server cannot be reached or speaks another protocol.
   */
  static async open(options: ConnectOptions): Promise<ClientConnection> {
    const where = describeServer(options);
    let conn: Connection;
    try {
      conn = await options.runtime.connect(
        { transport: "tcp", hostname: options.hostname, port: options.port },
        options.timeout,
      );
    } catch (error) {
      if (error instanceof LockPermissionError) throw error;
      const code = errorCode(error) ?? (error as Error)?.message;
      throw Object.assign(
        new LockError(
          `Cannot reach the lock server at ${where} (${code}). Start one with "socketlock serve --port ${options.port}" or fix the server address.`,
          { cause: error },
        ),
        { code: errorCode(error) },
      );
    }
    const client = new ClientConnection(conn, options.runtime);
    // A server at its connection limit says why before it closes.
    let refusal = "";
    client.onPush = (reply) => {
      if (reply.kind === "ERR") refusal = reply.rest;
    };
    let timer: { clear(): void } | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = options.runtime.setTimer(() => {
        reject(
          new LockProtocolError(
            `The lock server at ${where} did not answer HELLO within ${
              Math.round(options.timeout)
            } ms; check that it is "socketlock serve".`,
          ),
        );
      }, options.timeout);
    });
    try {
      await Promise.race([client.#greet(options, where), timedOut]);
      return client;
    } catch (error) {
      client.close();
      if (refusal) {
        throw Object.assign(
          new LockError(`The lock server at ${where} refused the connection: ${refusal}`, {
            cause: error,
          }),
          { code: "ECONNRESET" },
        );
      }
      throw error;
    } finally {
      timer?.clear();
    }
  }

  async #greet(options: ConnectOptions, where: string): Promise<void> {
    const host = encodeName(hostName(options.runtime));
    // The isolate follows the host (positional), so it is sent only with one.
    const hello = await this.ask(
      `HELLO ${options.runtime.pid}${host ? ` ${host} ${ISOLATE_ID}` : ""}`,
    );
    const [version, nonce] = hello.rest.split(" ");
    if (hello.kind !== "OK" || version !== PROTOCOL_VERSION || !nonce) {
      throw new LockProtocolError(
        `The lock server at ${where} answered HELLO with "${hello.kind} ${
          hello.rest.slice(0, 80)
        }"; upgrade the server or the client so both speak ${PROTOCOL_VERSION}.`,
      );
    }
    if (nonce === "-") {
      if (options.key) {
        throw new LockError(
          `The lock server at ${where} does not ask for the token, so it cannot prove it knows it either. Start it with the same --token-file, or connect without a token.`,
        );
      }
      return;
    }
    // A token missing or refused is a permission problem (CLI exit 77), not
    // a server that is down (69): retrying cannot help.
    if (!options.key) {
      throw new LockPermissionError(
        `The lock server at ${where} requires a token. Pass { token } (or --token-file) with the secret in the server's --token-file.`,
      );
    }
    const mine = newNonce();
    const mac = await signChallenge(options.key, "client", nonce, mine);
    const answer = await this.ask(`AUTH ${mac} ${mine}`);
    if (answer.kind !== "OK") {
      throw new LockPermissionError(
        `The lock server at ${where} refused our token (${
          answer.rest.slice(0, 120)
        }). Use the secret in the server's --token-file.`,
      );
    }
    if (!(await verifyChallenge(options.key, "server", nonce, mine, answer.rest))) {
      throw new LockError(
        `The lock server at ${where} could not prove it knows the token: it may be an imposter. Check the address and the token.`,
      );
    }
  }

  /**
   * Sends a request (`COMMAND args`, without tag or line end).
   *
   * @returns The tag it was sent with.
   */
  send(request: string, handler: ReplyHandler): string {
    const tag = (this.#nextTag++).toString(36);
    if (this.#closed) return tag;
    this.#unansweredTags.push(tag);
    this.#unansweredHandlers.push(handler);
    this.#out.write(`${tag} ${request}\n`);
    return tag;
  }

  /** Sends a request and resolves with its first reply. */
  ask(request: string): Promise<Reply> {
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        return reject(new LockProtocolError("The connection to the lock server is closed."));
      }
      this.#rejectOnClose.add(reject);
      this.send(request, {
        onReply: (reply) => {
          this.#rejectOnClose.delete(reject);
          resolve(reply);
          return true;
        },
      });
    });
  }

  /**
   * Closes the connection (queued requests are flushed first). It counts as
   * ended at once, not when the close event comes: the server releases our
   * leases the moment it reads the FIN, while this process may be too busy
   * to see its own close event for a while.
   */
  close(): void {
    if (this.#closed) return;
    this.#out.flush();
    this.#conn.close();
    this.#ended(null);
  }

  /**
   * Drops the connection without sending what is queued, for a reply that
   * breaks the protocol: nothing the server says after it can be trusted.
   */
  #violated(error: unknown): void {
    // Ended first: Bun reports the close from within close(), which would
    // count as a lost connection, and its requests would be sent again.
    this.#ended(
      error instanceof LockProtocolError ? error : new LockProtocolError(
        `The lock server sent a reply this client cannot read (${
          (error as Error)?.message
        }). Check that the server and the client are the same socketlock version.`,
        { cause: error },
      ),
    );
    this.#conn.close();
  }

  readonly #onLine = (line: string) => {
    if (this.#closed) return; // the rest of a chunk that held a line we could not trust
    let reply: Reply;
    try {
      reply = parseReply(line);
    } catch (error) {
      return this.#violated(error); // not our server
    }
    if (reply.tag === "*") {
      if (reply.kind !== "ERR" || !reply.rest.startsWith("LINE_TOO_LONG ")) {
        this.onPush(reply);
        return;
      }
      // A line over the server's --max-line whose tag it could not read (a
      // server of this version reads it whenever the line starts with one;
      // older ones never did). The server answers every request first in
      // the order they came, and this error in its place among them, so it
      // belongs to the oldest request not answered yet: fail that one rather
      // than leave it waiting forever.
      const oldest = this.#unansweredTags[0];
      if (oldest === undefined) return this.onPush(reply);
      reply = { ...reply, tag: oldest };
    }
    const first = this.#takeUnanswered(reply.tag);
    const handler = first ?? this.#waiting.get(reply.tag);
    if (!handler) return;
    try {
      if (handler.onReply(reply)) {
        if (!first) this.#waiting.delete(reply.tag);
      } else if (first) this.#waiting.set(reply.tag, handler);
    } catch (error) {
      this.#violated(error);
    }
  };

  /** Takes the handler of `tag` if it has had no reply yet (nearly always the oldest's). */
  #takeUnanswered(tag: string): ReplyHandler | undefined {
    const tags = this.#unansweredTags;
    const handlers = this.#unansweredHandlers;
    if (tags[0] === tag) {
      tags.shift();
      return handlers.shift();
    }
    // A later reply to a queued acquire, or (from a server that answers
    // out of order) a first reply to a newer request.
    if (this.#waiting.has(tag)) return undefined;
    const at = tags.indexOf(tag);
    if (at < 0) return undefined;
    tags.splice(at, 1);
    return handlers.splice(at, 1)[0];
  }

  readonly #onTooLong = () =>
    this.#violated(
      new LockProtocolError(
        `The lock server sent a reply line longer than ${MAX_REPLY_BYTES} bytes. Check that --server points at "socketlock serve", not another service.`,
      ),
    );

  #ended(violation: LockProtocolError | null): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unansweredTags.length = 0;
    this.#unansweredHandlers.length = 0;
    this.#waiting.clear();
    // A lost connection may be retried (the code says so); a violation may not.
    const error = violation ?? Object.assign(
      new LockProtocolError("The connection to the lock server closed."),
      { code: "ECONNRESET" },
    );
    for (const reject of this.#rejectOnClose) reject(error);
    this.#rejectOnClose.clear();
    this.onClose(violation);
  }
}

/** This host's name for others to see, or "" if the runtime may not read it. */
export function hostName(runtime: Runtime): string {
  try {
    return runtime.hostname();
  } catch {
    return ""; // only shown to others as who holds a lock
  }
}
