// Replies are gathered and written once per turn of the event loop: a chunk
// of 50 pipelined requests costs one write, not 50, and no reply waits for
// another to be flushed. Each outbox says how much it holds and when it has
// written, for the connection's backpressure (see _throttle.ts).

import type { Connection } from "../runtime/mod.ts";

const encoder = new TextEncoder();

/** Text lines queued for one connection, flushed in one write per microtask. */
export class TextOutbox {
  #conn: Connection;
  #text = "";
  #scheduled = false;
  readonly #flush = () => this.flush();
  /** Called after each write to the connection. */
  afterFlush: (() => void) | null = null;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  /** Characters queued (bytes, for the ASCII that replies mostly are). */
  get queuedBytes(): number {
    return this.#text.length;
  }

  /** Queues `text` (whole lines, with their line ends). */
  write(text: string): void {
    this.#text += text;
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flush);
    }
  }

  /** Writes what is queued now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#text === "") return;
    const text = this.#text;
    this.#text = "";
    this.#conn.write(encoder.encode(text));
    this.afterFlush?.();
  }
}

/** Binary frames queued for one connection, flushed in one write per microtask. */
export class FrameOutbox {
  #conn: Connection;
  #frames: Uint8Array[] = [];
  #size = 0;
  #scheduled = false;
  readonly #flush = () => this.flush();
  /** Called after each write to the connection. */
  afterFlush: (() => void) | null = null;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  /** Bytes queued. */
  get queuedBytes(): number {
    return this.#size;
  }

  /** Queues one frame. */
  write(frame: Uint8Array): void {
    this.#frames.push(frame);
    this.#size += frame.length;
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flush);
    }
  }

  /** Writes what is queued now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#frames.length === 0) return;
    let data = this.#frames[0];
    if (this.#frames.length > 1) {
      data = new Uint8Array(this.#size);
      let at = 0;
      for (const frame of this.#frames) {
        data.set(frame, at);
        at += frame.length;
      }
    }
    this.#frames = [];
    this.#size = 0;
    this.#conn.write(data);
    this.afterFlush?.();
  }
}
