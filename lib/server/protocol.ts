/**
 * The lock server's line protocol: one request per line, each with a
 * client-chosen tag that its reply repeats, so replies to waiting acquires
 * can come later while other requests on the same connection go on.
 *
 * ```text
 * request  = tag SP COMMAND *(SP arg) LF        ; at most 4 KB by default
 * reply    = tag SP ("OK" | "QUEUED" | "BUSY" | "TIMEOUT" | "CANCELLED" | "ERR") *(SP field) LF
 * push     = "*" SP ("LOST" | "BYE" | "ERR") *(SP field) LF
 * ```
 *
 * Names are single tokens: a space, `%` or control character in a name is
 * written as `%XX` (UTF-8 bytes, as `encodeURIComponent` does).
 *
 * @module
 */

import { LockProtocolError } from "../errors.ts";

/** The protocol's name and version, sent in the reply to `HELLO`. */
export const PROTOCOL_VERSION = "socketlock/1";

/** The longest host a HELLO may give, in characters: a DNS name's length. */
export const MAX_HOST_LENGTH = 255;

/** Wait values at or above this mean "wait forever" (and `forever` does too). */
export const WAIT_FOREVER = 2 ** 31 - 1;

/** Error codes of `ERR` replies. */
export type ErrorCode =
  | "BAD_REQUEST"
  | "UNKNOWN_COMMAND"
  | "LINE_TOO_LONG"
  | "NAME_TOO_LONG"
  | "TOO_MANY_WAITERS"
  | "TOO_MANY_LOCKS"
  | "TOO_MANY_CONNECTIONS"
  | "AUTH_REQUIRED"
  | "AUTH_FAILED"
  | "NOT_HOLDER"
  | "NOT_WAITING";

/** A parsed request of the line protocol. */
export type Request =
  | { tag: string; command: "HELLO"; pid: number; host: string; isolate: string }
  | { tag: string; command: "AUTH"; mac: string; nonce: string }
  | { tag: string; command: "ACQUIRE"; name: string; wait: number; ttl?: number }
  | { tag: string; command: "RELEASE"; name: string; token?: number }
  | { tag: string; command: "RENEW"; name: string; token?: number; ttl?: number }
  | { tag: string; command: "CANCEL"; target: string }
  | { tag: string; command: "STATUS"; name: string }
  | { tag: string; command: "HEALTH" | "STATS" | "QUIT" };

/** A line that is not a request: the tag to answer with (`*` if none), and why. */
export interface RequestError {
  tag: string;
  error: ErrorCode;
  message: string;
}

const TAG = /^[A-Za-z0-9._:-]{1,32}$/;
// deno-lint-ignore no-control-regex
const UNSAFE_CHAR = /[\u0000-\u0020%\u007f]/;
// deno-lint-ignore no-control-regex
const UNSAFE_CHARS = /[\u0000-\u0020%\u007f]/g;
const escapeChar = (c: string) => `%${c.charCodeAt(0).toString(16).padStart(2, "0").toUpperCase()}`;
const INTEGER = /^\d{1,16}$/;

/** True if `tag` can tag a request (`*` is the server's). */
export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

/**
 * Writes a lock name as one protocol token.
 *
 * @param name Any non-empty string.
 * @returns The name with space, `%` and control characters percent-encoded.
 */
export function encodeName(name: string): string {
  return UNSAFE_CHAR.test(name) ? name.replace(UNSAFE_CHARS, escapeChar) : name;
}

/**
 * Reads a name token written by {@link encodeName} (or by any percent-encoder).
 *
 * @returns The name, or null if its escapes are malformed.
 */
export function decodeName(token: string): string | null {
  if (!token.includes("%")) return token;
  try {
    return decodeURIComponent(token);
  } catch {
    return null;
  }
}

function integer(text: string | undefined): number | undefined | null {
  if (text === undefined || text === "-") return undefined;
  if (!INTEGER.test(text)) return null;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : null;
}

function bad(tag: string, message: string): RequestError {
  return { tag, error: "BAD_REQUEST", message };
}

const USAGE: Record<string, string> = {
  HELLO: "HELLO [PID [HOST [ISOLATE]]]",
  AUTH: "AUTH MAC NONCE",
  ACQUIRE: "ACQUIRE NAME [WAIT_MS|forever [TTL_MS]]",
  RELEASE: "RELEASE NAME [TOKEN]",
  RENEW: "RENEW NAME [TOKEN|- [TTL_MS]]",
  CANCEL: "CANCEL TAG_OF_ACQUIRE",
  STATUS: "STATUS NAME",
  HEALTH: "HEALTH",
  STATS: "STATS",
  QUIT: "QUIT",
};

/**
 * Parses one request line (without its line end).
 *
 * @example Parse an acquire
 * ```ts
 * import { parseRequest } from "./protocol.ts";
 * console.log(parseRequest("a1 ACQUIRE nightly 5000 10000"));
 * // { tag: "a1", command: "ACQUIRE", name: "nightly", wait: 5000, ttl: 10000 }
 * ```
 *
 * @param line The request line.
 * @returns The request, or what is wrong with it.
 */
export function parseRequest(line: string): Request | RequestError {
  const parts = line.split(" ");
  const [tag, rawCommand] = parts;
  if (!TAG.test(tag)) {
    return bad(
      "*",
      `Start each request with a tag of 1-32 letters, digits or ._:- then a command, e.g. "a1 HEALTH".`,
    );
  }
  if (rawCommand === undefined || rawCommand === "") {
    return bad(tag, 'Give a command after the tag, e.g. "a1 HEALTH".');
  }
  const command = rawCommand.toUpperCase();
  const usage = USAGE[command];
  if (!usage) {
    return {
      tag,
      error: "UNKNOWN_COMMAND",
      message: `Unknown command ${JSON.stringify(rawCommand.slice(0, 32))}. Use one of: ${
        Object.keys(USAGE).join(", ")
      }.`,
    };
  }
  const args = parts.slice(2);
  const wrong = () => bad(tag, `Use "${tag} ${usage}".`);
  switch (command) {
    case "HEALTH":
    case "STATS":
    case "QUIT":
      return args.length === 0 ? { tag, command } : wrong();
    case "HELLO": {
      if (args.length > 3) return wrong();
      const pid = integer(args[0]);
      const host = args[1] === undefined ? "" : decodeName(args[1]);
      // The isolate (main thread or worker) of the client, for STATUS.
      const isolate = args[2] ?? "";
      if (pid === null || host === null || !/^[0-9A-Za-z-]{0,64}$/.test(isolate)) return wrong();
      // Repeated in replies to other clients (who holds what): a host name's
      // length at most, printable, so no client can make those replies long.
      if (host.length > MAX_HOST_LENGTH || /\p{Cc}/u.test(host)) {
        return bad(tag, `A HELLO host is at most ${MAX_HOST_LENGTH} printable characters.`);
      }
      return { tag, command, pid: pid ?? 0, host, isolate };
    }
    case "AUTH":
      if (args.length !== 2 || !/^[0-9a-f]{64}$/.test(args[0]) || !/^[0-9a-f]{32}$/.test(args[1])) {
        return bad(
          tag,
          `Use "${tag} AUTH MAC NONCE" with a 64-digit hex HMAC-SHA256 and a 32-digit hex nonce.`,
        );
      }
      return { tag, command, mac: args[0], nonce: args[1] };
    case "CANCEL":
      return args.length === 1 && TAG.test(args[0]) ? { tag, command, target: args[0] } : wrong();
  }
  // The commands on a name.
  const name = args[0] === undefined || args[0] === "" ? null : decodeName(args[0]);
  if (name === null || name === "") return wrong();
  switch (command) {
    case "STATUS":
      return args.length === 1 ? { tag, command, name } : wrong();
    case "ACQUIRE": {
      if (args.length > 3) return wrong();
      const forever = args[1]?.toLowerCase() === "forever";
      const wait = forever ? WAIT_FOREVER : integer(args[1]);
      const ttl = integer(args[2]);
      if (wait === null || ttl === null || ttl === 0) return wrong();
      const acquire: Request = { tag, command, name, wait: wait ?? 0 };
      if (ttl !== undefined) acquire.ttl = ttl;
      return acquire;
    }
    case "RELEASE": {
      const token = integer(args[1]);
      if (args.length > 2 || token === null) return wrong();
      const release: Request = { tag, command, name };
      if (token !== undefined) release.token = token;
      return release;
    }
    default: { // RENEW
      const token = integer(args[1]);
      const ttl = integer(args[2]);
      if (args.length > 3 || token === null || ttl === null || ttl === 0) return wrong();
      return {
        tag,
        command: "RENEW",
        name,
        ...(token === undefined ? {} : { token }),
        ...(ttl === undefined ? {} : { ttl }),
      };
    }
  }
}

/** The kinds of reply lines. */
export type ReplyKind = "OK" | "QUEUED" | "BUSY" | "TIMEOUT" | "CANCELLED" | "ERR" | "LOST" | "BYE";

const REPLY_KINDS = new Set<string>([
  "OK",
  "QUEUED",
  "BUSY",
  "TIMEOUT",
  "CANCELLED",
  "ERR",
  "LOST",
  "BYE",
]);

/** A reply line split into tag, kind and the rest. */
export interface Reply {
  tag: string;
  kind: ReplyKind;
  /** Everything after the kind (without the separating space). */
  rest: string;
}

/**
 * Splits a reply line from the server.
 *
 * @param line The line, without its line end.
 * @returns The reply.
 * @throws {LockProtocolError} If the line is not a reply of this protocol.
 */
export function parseReply(line: string): Reply {
  const first = line.indexOf(" ");
  const second = first < 0 ? -1 : line.indexOf(" ", first + 1);
  const tag = first < 0 ? line : line.slice(0, first);
  const kind = first < 0 ? "" : second < 0 ? line.slice(first + 1) : line.slice(first + 1, second);
  if (!REPLY_KINDS.has(kind) || !(tag === "*" || TAG.test(tag))) {
    throw new LockProtocolError(
      `The lock server sent ${
        JSON.stringify(line.slice(0, 80))
      }, which is not a socketlock reply. ` +
        `Check that --server points at "socketlock serve", not another service.`,
    );
  }
  return { tag, kind: kind as ReplyKind, rest: second < 0 ? "" : line.slice(second + 1) };
}

const encoder = new TextEncoder();
// One decoder for every connection: a streaming decoder per connection costs
// native memory in Deno until it is collected (10,000 connections showed it).
const decoder = new TextDecoder();

/**
 * How many bytes of `bytes` form whole UTF-8 characters: a character cut at
 * the chunk's end is held back for the next chunk.
 */
function wholeCharacters(bytes: Uint8Array): number {
  const end = bytes.length;
  for (let i = end - 1; i >= 0 && i >= end - 4; i--) {
    const byte = bytes[i];
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte
    const size = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return end - i >= size ? end : i;
  }
  return end;
}

/** How much of an over-long line's start is kept: a tag (at most 32 characters) and its space. */
const HEAD_CHARS = 33;

/**
 * The tag that starts `head` (the start of a line), or `*` if none can be read.
 *
 * @param head The first characters of a line.
 * @returns Its tag, if it is followed by a space; else `*`.
 */
export function tagOf(head: string): string {
  const space = head.indexOf(" ");
  const tag = space < 0 ? "" : head.slice(0, space);
  return TAG.test(tag) ? tag : "*";
}

/**
 * Splits a byte stream into lines of at most `maxLineBytes` bytes. An
 * over-long line is reported once and skipped up to its line end, so the
 * connection can go on; its first characters are kept, so that the error
 * can name its tag. An unfinished line is held only up to the limit.
 * Each chunk is decoded in one call (a multi-byte character split across
 * chunks is carried over, at most 3 bytes), not each line: at tens of
 * thousands of lines a second, per-line decoder calls add up.
 *
 * @example Split two chunks
 * ```ts
 * import { LineReader } from "./protocol.ts";
 * const reader = new LineReader(4096);
 * const bytes = new TextEncoder().encode("a1 HEALTH\r\na2 ST");
 * reader.push(bytes, (line) => console.log(line), () => {});
 * reader.push(new TextEncoder().encode("ATS\n"), (line) => console.log(line), () => {});
 * ```
 */
export class LineReader {
  #max: number;
  #carry: Uint8Array | null = null;
  #partial = "";
  #skipping = false;
  /** The start of the line being skipped, until reported (then null). */
  #head: string | null = null;

  /**
   * Creates a reader.
   *
   * @param maxLineBytes The longest line accepted, line end excluded.
   */
  constructor(maxLineBytes: number) {
    this.#max = maxLineBytes;
  }

  /** Characters held of an unfinished line (at most the limit). */
  get buffered(): number {
    return this.#partial.length;
  }

  /**
   * Feeds one chunk.
   *
   * @param chunk Bytes received (not kept: the runtime may reuse them).
   * @param onLine Called with each complete line, `\r\n` or `\n` removed.
   * @param onTooLong Called once for each line longer than the limit, with
   *   its first characters (up to 33: enough for a tag and its space), as
   *   soon as it has them or the line has ended.
   */
  push(
    chunk: Uint8Array,
    onLine: (line: string) => void,
    onTooLong: (head: string) => void,
  ): void {
    let bytes = chunk;
    if (this.#carry) {
      bytes = new Uint8Array(this.#carry.length + chunk.length);
      bytes.set(this.#carry);
      bytes.set(chunk, this.#carry.length);
      this.#carry = null;
    }
    const whole = wholeCharacters(bytes);
    if (whole < bytes.length) this.#carry = bytes.slice(whole);
    const text = decoder.decode(whole < bytes.length ? bytes.subarray(0, whole) : bytes);
    const max = this.#max;
    let start = 0;
    for (;;) {
      const end = text.indexOf("\n", start);
      if (end < 0) {
        if (start >= text.length) return;
        if (this.#skipping) {
          this.#keepHead(text.slice(start, start + HEAD_CHARS), onTooLong, false);
          return;
        }
        // Characters never outnumber bytes: more characters than the limit
        // is over it whatever they are.
        if (this.#partial.length + text.length - start > max) {
          const head = (this.#partial.slice(0, HEAD_CHARS) + text.slice(start, start + HEAD_CHARS))
            .slice(0, HEAD_CHARS);
          this.#partial = "";
          this.#skipping = true;
          this.#head = "";
          this.#keepHead(head, onTooLong, false);
          return;
        }
        this.#partial += text.slice(start);
        return;
      }
      if (this.#skipping) {
        this.#skipping = false;
        this.#keepHead(text.slice(start, Math.min(end, start + HEAD_CHARS)), onTooLong, true);
        start = end + 1;
        continue;
      }
      let line = text.slice(start, end);
      if (this.#partial) {
        line = this.#partial + line;
        this.#partial = "";
      }
      start = end + 1;
      if (line.length > max || (line.length * 3 > max && encoder.encode(line).length > max)) {
        onTooLong(line.slice(0, HEAD_CHARS));
        continue;
      }
      onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
    }
  }

  /** Adds to the skipped line's start; reports it once it is long enough, or the line ended. */
  #keepHead(more: string, onTooLong: (head: string) => void, ended: boolean): void {
    if (this.#head === null) return; // reported already
    const head = (this.#head + more).slice(0, HEAD_CHARS);
    if (head.length < HEAD_CHARS && !ended) {
      this.#head = head;
      return;
    }
    this.#head = null;
    onTooLong(head);
  }
}
