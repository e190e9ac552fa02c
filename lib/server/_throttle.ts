// Backpressure for one server connection. A peer that sends requests but
// does not read the replies (or reads slowly) would otherwise make the
// replies pile up in our memory without bound. Once more than the limit is
// queued, the connection stops being read: the peer's further requests wait
// in the OS's buffers and then in the peer's own (TCP flow control slows it
// down), and the few already read wait here. Reading resumes once every
// queued reply has gone to the OS. Well-behaved clients never notice.

import type { Connection } from "../runtime/mod.ts";

/** Something that queues replies before they are written. */
export interface ReplyQueue {
  /** About how many bytes are queued and not yet given to the connection. */
  readonly queuedBytes: number;
}

/** Hands requests to a handler while the connection's replies flow, holds them while they back up. */
export class Throttle<T> {
  readonly #conn: Connection;
  readonly #limit: number;
  readonly #out: ReplyQueue;
  readonly #handle: (item: T) => void;
  /** Requests read before reading stopped, in order; at most one chunk's worth. */
  #backlog: T[] = [];
  #next = 0;
  #blocked = false;

  /**
   * @param conn The connection (its drain events resume reading).
   * @param limit Bytes of replies queued beyond which reading stops.
   * @param out Where replies queue before they reach the connection.
   * @param handle Handles one request.
   */
  constructor(conn: Connection, limit: number, out: ReplyQueue, handle: (item: T) => void) {
    this.#conn = conn;
    this.#limit = limit;
    this.#out = out;
    this.#handle = handle;
    conn.onDrain(() => this.relieve());
  }

  /** True while reading is stopped. */
  get blocked(): boolean {
    return this.#blocked;
  }

  /** Handles `item` now, or after the queued replies have gone out. */
  offer(item: T): void {
    if (this.#blocked) {
      this.#backlog.push(item);
      return;
    }
    this.#handle(item);
    if (this.#out.queuedBytes + this.#conn.bufferedAmount > this.#limit) {
      this.#blocked = true;
      this.#conn.pause();
    }
  }

  /**
   * Replies were written or drained: once none is left queued, handles the
   * held requests and reads again (unless they fill the queue once more).
   */
  relieve(): void {
    if (!this.#blocked || this.#out.queuedBytes + this.#conn.bufferedAmount > 0) return;
    this.#blocked = false;
    const backlog = this.#backlog;
    while (this.#next < backlog.length && !this.#blocked) {
      const item = backlog[this.#next];
      this.#next++;
      this.offer(item);
    }
    if (this.#blocked) return;
    this.#backlog = [];
    this.#next = 0;
    this.#conn.resume();
  }

  /** Forgets held requests (the connection closed). */
  clear(): void {
    this.#backlog = [];
    this.#next = 0;
  }
}
