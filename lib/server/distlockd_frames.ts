/**
 * distlockd's binary frames, byte for byte, so an existing distlockd client
 * can point at this server.
 *
 * ```text
 * request  = cmd:u8 name_len:u16be client_id_len:u16be name client_id
 * response = status:u8 msg_len:u16be message                 ; UTF-8
 * ```
 *
 * @module
 */

/** distlockd's commands: the first byte of every request frame. */
export const DistlockdCommand = { ACQUIRE: 0x01, RELEASE: 0x02, HEALTH: 0x03 } as const;

/** distlockd's reply statuses. */
export const DistlockdStatus = { OK: 0x00, ERROR: 0x01, TIMEOUT: 0x02, INVALID: 0x03 } as const;

/** The size of a request header. */
export const REQUEST_HEADER_BYTES = 5;
/** The size of a response header. */
export const RESPONSE_HEADER_BYTES = 3;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One decoded request frame. */
export interface DistlockdRequest {
  /** The command byte (any value: unknown ones are answered INVALID). */
  command: number;
  name: string;
  clientId: string;
}

/** One decoded response frame. */
export interface DistlockdResponse {
  status: number;
  message: string;
}

/**
 * Encodes a request as distlockd's client does.
 *
 * @example A distlockd ACQUIRE
 * ```ts
 * import { DistlockdCommand, encodeDistlockdRequest } from "./distlockd_frames.ts";
 * const frame = encodeDistlockdRequest(DistlockdCommand.ACQUIRE, "job", crypto.randomUUID());
 * console.log(frame.length); // 5 + 3 + 36
 * ```
 *
 * @param command A {@link DistlockdCommand}.
 * @param name The lock's name.
 * @param clientId The client's id (distlockd uses a uuid4).
 * @returns The frame.
 */
export function encodeDistlockdRequest(
  command: number,
  name: string,
  clientId: string,
): Uint8Array {
  const nameBytes = encoder.encode(name);
  const idBytes = encoder.encode(clientId);
  const frame = new Uint8Array(REQUEST_HEADER_BYTES + nameBytes.length + idBytes.length);
  const view = new DataView(frame.buffer);
  view.setUint8(0, command);
  view.setUint16(1, nameBytes.length);
  view.setUint16(3, idBytes.length);
  frame.set(nameBytes, REQUEST_HEADER_BYTES);
  frame.set(idBytes, REQUEST_HEADER_BYTES + nameBytes.length);
  return frame;
}

/**
 * Encodes a response as distlockd's server does.
 *
 * @param status A {@link DistlockdStatus}.
 * @param message The message ("" for none); cut to 65,535 bytes.
 * @returns The frame.
 */
export function encodeDistlockdResponse(status: number, message = ""): Uint8Array {
  const bytes = encoder.encode(message).subarray(0, 0xffff);
  const frame = new Uint8Array(RESPONSE_HEADER_BYTES + bytes.length);
  frame[0] = status;
  frame[1] = bytes.length >> 8;
  frame[2] = bytes.length & 0xff;
  frame.set(bytes, RESPONSE_HEADER_BYTES);
  return frame;
}

/** What a frame reader reports. */
export interface FrameHandlers<F> {
  /** A complete frame within the limits. */
  frame(frame: F): void;
  /** A request whose name or client id is over the limit; its body is skipped. */
  oversize?(command: number, nameBytes: number, clientIdBytes: number): void;
}

/** Buffers bytes across chunks for the frame readers. */
class ByteQueue {
  #bytes = new Uint8Array(0);
  #start = 0;

  get length(): number {
    return this.#bytes.length - this.#start;
  }

  append(chunk: Uint8Array): void {
    if (this.length === 0) {
      this.#bytes = chunk.slice();
      this.#start = 0;
      return;
    }
    const joined = new Uint8Array(this.length + chunk.length);
    joined.set(this.#bytes.subarray(this.#start));
    joined.set(chunk, this.length);
    this.#bytes = joined;
    this.#start = 0;
  }

  peek(offset: number): number {
    return this.#bytes[this.#start + offset];
  }

  take(count: number): Uint8Array {
    const taken = this.#bytes.subarray(this.#start, this.#start + count);
    this.#start += count;
    return taken;
  }

  drop(count: number): number {
    const dropped = Math.min(count, this.length);
    this.#start += dropped;
    return dropped;
  }
}

/**
 * Decodes request frames from a byte stream, holding at most one frame
 * within the limits between chunks; frames over the limits are reported and
 * skipped without being buffered.
 *
 * @example Read a frame split over two chunks
 * ```ts
 * import { DistlockdCommand, DistlockdRequestReader, encodeDistlockdRequest } from "./distlockd_frames.ts";
 * const reader = new DistlockdRequestReader(256, 256);
 * const frame = encodeDistlockdRequest(DistlockdCommand.HEALTH, "health", "id-1");
 * const handlers = { frame: (f: { name: string }) => console.log(f.name) };
 * reader.push(frame.subarray(0, 3), handlers);
 * reader.push(frame.subarray(3), handlers);
 * ```
 */
export class DistlockdRequestReader {
  #queue = new ByteQueue();
  #skip = 0;
  #maxName: number;
  #maxClientId: number;

  /**
   * Creates a reader.
   *
   * @param maxNameBytes The longest name accepted.
   * @param maxClientIdBytes The longest client id accepted.
   */
  constructor(maxNameBytes: number, maxClientIdBytes: number) {
    this.#maxName = maxNameBytes;
    this.#maxClientId = maxClientIdBytes;
  }

  /** Bytes held of an unfinished frame. */
  get buffered(): number {
    return this.#queue.length;
  }

  /**
   * Feeds one chunk.
   *
   * @param chunk Bytes received (copied if kept).
   * @param handlers Told of each frame.
   */
  push(chunk: Uint8Array, handlers: FrameHandlers<DistlockdRequest>): void {
    const queue = this.#queue;
    queue.append(chunk);
    for (;;) {
      if (this.#skip > 0) {
        this.#skip -= queue.drop(this.#skip);
        if (this.#skip > 0) return;
      }
      if (queue.length < REQUEST_HEADER_BYTES) return;
      const command = queue.peek(0);
      const nameLength = (queue.peek(1) << 8) | queue.peek(2);
      const idLength = (queue.peek(3) << 8) | queue.peek(4);
      if (nameLength > this.#maxName || idLength > this.#maxClientId) {
        queue.take(REQUEST_HEADER_BYTES);
        this.#skip = nameLength + idLength;
        handlers.oversize?.(command, nameLength, idLength);
        continue;
      }
      if (queue.length < REQUEST_HEADER_BYTES + nameLength + idLength) return;
      queue.take(REQUEST_HEADER_BYTES);
      const name = decoder.decode(queue.take(nameLength));
      const clientId = decoder.decode(queue.take(idLength));
      handlers.frame({ command, name, clientId });
    }
  }
}

/** Decodes response frames from a byte stream (what a distlockd client reads). */
export class DistlockdResponseReader {
  #queue = new ByteQueue();

  /**
   * Feeds one chunk.
   *
   * @param chunk Bytes received.
   * @param onResponse Called with each complete response.
   */
  push(chunk: Uint8Array, onResponse: (response: DistlockdResponse) => void): void {
    const queue = this.#queue;
    queue.append(chunk);
    while (queue.length >= RESPONSE_HEADER_BYTES) {
      const length = (queue.peek(1) << 8) | queue.peek(2);
      if (queue.length < RESPONSE_HEADER_BYTES + length) return;
      const status = queue.take(RESPONSE_HEADER_BYTES)[0];
      onResponse({ status, message: decoder.decode(queue.take(length)) });
    }
  }
}
