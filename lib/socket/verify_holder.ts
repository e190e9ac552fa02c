/**
 * The contender's side of the handshake: is the process on the recorded
 * port the live holder of this very lock file?
 *
 * Only a definite answer counts as dead: the port refuses, or whatever
 * answers gets it wrong (an imposter on a recycled port, another user's
 * server, a socketlock holder with another key). Silence is not an answer:
 * the kernel accepts connections for a holder whose event loop is busy, so a
 * handshake that times out (or a connect that times out on a full accept
 * backlog) is reported as `silent`, and the caller decides by the holder's
 * pid. So is a connection closed without an answer: a Node holder out of
 * file descriptors accepts and at once closes every connection. Anything else — too many open files, a missing permission —
 * is thrown, because guessing "dead" would break a live lock.
 *
 * @module
 */

import { type Connection, errorCode, type Runtime } from "../runtime/mod.ts";
import {
  CHECK,
  hmacAnswer,
  type HmacKey,
  hmacRequest,
  MAX_LINE,
  OK_PREFIX,
  randomHex,
  timingSafeEqual,
  WAIT,
  WAITING,
} from "./handshake.ts";
import type { LockRecord } from "./lock_file.ts";

/** The verdict on a recorded holder. */
export type Verdict =
  | {
    live: true;
    /** Kept open after a keyed handshake: it closes when the holder lets go. */
    conn: Connection | null;
  }
  | {
    live: false;
    reason: string;
    /** Nothing came back in time: maybe dead, maybe a live holder whose event loop is busy. */
    silent: boolean;
  };

/** How to verify. */
export interface VerifyOptions {
  /** The lock's name (part of what the holder signs). */
  name: string;
  /** The HMAC key, or null to use Python socketlock's probe. */
  key: HmacKey | null;
  /** The exact answer expected to Python's probe (compat mode). */
  probe: string;
  /** Bound on connecting plus answering, in ms. */
  timeout: number;
}

/** Errors that mean nobody (or nobody sane) is listening on the recorded port. */
const DEAD = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ECONNABORTED"]);

/** What readReply gives when the time ran out with the connection still open. */
const TIMED_OUT = Symbol("timed out");

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Reads from `conn` until `complete(text)` is true, or more than
 * {@link MAX_LINE} bytes came without it (a wrong answer either way);
 * resolves null on a close before that, and TIMED_OUT when the time runs
 * out first.
 */
function readReply(
  runtime: Runtime,
  conn: Connection,
  timeout: number,
  complete: (text: string) => boolean,
): Promise<string | null | typeof TIMED_OUT> {
  return new Promise((resolve) => {
    let text = "";
    const finish = (result: string | null | typeof TIMED_OUT) => {
      timer.clear();
      conn.onData(() => {});
      conn.onClose(() => {});
      resolve(result);
    };
    const timer = runtime.setTimer(() => finish(TIMED_OUT), Math.max(0, timeout));
    conn.onClose(() => finish(null));
    conn.onData((chunk) => {
      text += decoder.decode(chunk);
      if (complete(text)) finish(text);
      else if (text.length > MAX_LINE) finish(text);
    });
  });
}

async function open(
  runtime: Runtime,
  port: number,
  timeout: number,
): Promise<Connection | Extract<Verdict, { live: false }>> {
  try {
    return await runtime.connect({ transport: "tcp", hostname: "127.0.0.1", port }, timeout);
  } catch (error) {
    const code = errorCode(error);
    if (code === "ETIMEDOUT") {
      return {
        live: false,
        silent: true,
        reason: `port ${port} did not accept within ${timeout} ms`,
      };
    }
    if (code === "EAGAIN") {
      // Bun's word for a connect that failed while something listens (a full
      // backlog, no descriptors left): proves nothing either way.
      return { live: false, silent: true, reason: `port ${port} could not be reached (EAGAIN)` };
    }
    if (code && DEAD.has(code)) {
      return { live: false, silent: false, reason: `port ${port} answered ${code}` };
    }
    throw error;
  }
}

/**
 * Runs the handshake against the holder recorded in `record`.
 *
 * @example Check a recorded holder
 * ```ts
 * import { verifyHolder } from "./verify_holder.ts";
 * import { probeAnswer } from "./handshake.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const record = { pid: 1, port: 9, acquiredAt: 0, host: "", name: "x", id: "" };
 * const verdict = await verifyHolder(runtime, record, {
 *   name: "x", key: null, probe: probeAnswer("x"), timeout: 200,
 * });
 * console.log(verdict.live); // false: nothing answers on port 9
 * ```
 *
 * @param runtime The runtime adapter.
 * @param record What the lock file says.
 * @param options Name, key, probe answer and timeout.
 * @returns Live (with the connection to wait on) or dead (with why).
 * @throws Whatever connecting throws other than refused/reset/timed out.
 */
export async function verifyHolder(
  runtime: Runtime,
  record: LockRecord,
  options: VerifyOptions,
): Promise<Verdict> {
  const started = runtime.monotonic();
  const left = () => options.timeout - (runtime.monotonic() - started);
  const conn = await open(runtime, record.port, options.timeout);
  if ("live" in conn) return conn;
  // Left ref'd: a contender's connection lives only while it verifies or
  // waits, and Deno will not wait for a read when both ends are unref'd.

  if (!options.key) {
    conn.write(encoder.encode(CHECK));
    const reply = await readReply(runtime, conn, left(), (t) => t.length >= options.probe.length);
    conn.close();
    if (reply === TIMED_OUT) return silence(record.port, options.timeout);
    if (reply === null) return closedSilent(record.port);
    // Python compares the whole reply with the expected one; so do we.
    return reply === options.probe
      ? { live: true, conn: null }
      : { live: false, silent: false, reason: `port ${record.port} gave a wrong probe answer` };
  }

  if (!record.id) {
    conn.close();
    return { live: false, silent: false, reason: "the lock file has no lock id" };
  }
  const challenge = randomHex(16);
  conn.write(encoder.encode(hmacRequest(record.id, challenge)));
  // Computed while the request travels: the handshake costs one round trip.
  const expected = hmacAnswer(options.key, options.name, record.id, challenge);
  const reply = await readReply(runtime, conn, left(), (t) => t.includes("\n"));
  if (reply === TIMED_OUT) {
    conn.close();
    return silence(record.port, options.timeout);
  }
  const line = reply?.slice(0, reply.indexOf("\n")) ?? "";
  if (
    line.startsWith(OK_PREFIX) &&
    timingSafeEqual(line.slice(OK_PREFIX.length), expected)
  ) {
    return { live: true, conn };
  }
  conn.close();
  if (reply === null) return closedSilent(record.port);
  return {
    live: false,
    silent: false,
    reason: `port ${record.port} answered the handshake wrongly`,
  };
}

function closedSilent(port: number): Extract<Verdict, { live: false }> {
  return { live: false, silent: true, reason: `port ${port} closed without answering` };
}

function silence(port: number, timeout: number): Extract<Verdict, { live: false }> {
  return {
    live: false,
    silent: true,
    reason: `port ${port} did not answer the handshake within ${timeout} ms`,
  };
}

/**
 * Asks a compat holder of ours to keep a connection open until it lets go.
 * Resolves when it does; never resolves if the holder does not acknowledge
 * (Python socketlock's holders do not): the waiter's backoff covers those.
 *
 * @example Wait for a compat holder on port 4000, at most a second
 * ```ts
 * import { watchCompatHolder } from "./verify_holder.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const watch = watchCompatHolder(runtime, 4000, 200);
 * await Promise.race([watch.wake, new Promise((r) => setTimeout(r, 1_000))]);
 * watch.cancel();
 * ```
 *
 * @param runtime The runtime adapter.
 * @param port The holder's port.
 * @param timeout Bound on connecting and acknowledging, in ms.
 * @returns The wake promise and a way to drop the connection.
 */
export function watchCompatHolder(
  runtime: Runtime,
  port: number,
  timeout: number,
): { wake: Promise<void>; cancel: () => void } {
  let cancelled = false;
  let conn: Connection | null = null;
  const wake = new Promise<void>((resolve) => {
    (async () => {
      const opened = await open(runtime, port, timeout);
      if ("live" in opened) return;
      conn = opened;
      if (cancelled) return conn.close();
      conn.write(encoder.encode(`${WAIT}\n`));
      const reply = await readReply(runtime, conn, timeout, (t) => t.includes("\n"));
      if (reply !== WAITING || cancelled) return conn.close();
      conn.onClose(resolve);
    })().catch(() => {});
  });
  return {
    wake,
    cancel() {
      cancelled = true;
      conn?.close();
    },
  };
}
