// Waking waiters on release: one pub/sub connection per client, shared by
// every waiter in this process, opened on the first wait and closed when no
// one has waited for a while or when the user's client closes. Anything that
// goes wrong here only costs wake-ups: waiters also poll with backoff, and a
// queued waiter renews its place, which tells it of a grant it did not hear.
// A subscriber connection that drops (and may come back without its
// subscriptions, and missed messages meanwhile) makes every channel not
// live until it is subscribed again, and its listeners hear RESET.

import type { Runtime, Timer } from "../runtime/mod.ts";
import type { RedisAdapter, RedisSubscriber } from "./client_adapter.ts";
import { replyString } from "./key_layout.ts";

/** How long a channel stays subscribed after its last waiter left, in ms. */
export const LINGER_MS = 1_000;
/** How long to poll only after the subscriber connection failed, in ms. */
const RETRY_SUBSCRIBER_MS = 5_000;

/**
 * What listeners hear when the subscriber connection dropped: messages may
 * have been missed, and the channel is not live until subscribed again.
 * (Never published: it starts with a NUL.)
 */
export const RESET = "\u0000reset";

interface Channel {
  /** Hears this channel's messages (given to every subscribe of it). */
  onMessage: (message: unknown) => void;
  /** Bumped by each subscribe: only the latest one's outcome counts. */
  attempt: number;
  refs: number;
  /** Messages seen on this channel since it was subscribed. */
  count: number;
  /** Resolves true once subscribed, false if subscribing failed. */
  ready: Promise<boolean>;
  subscribed: boolean;
  wakers: Set<(message: string) => void>;
  /** The linger timer, if one is set. */
  idle: Timer | null;
  /** When the last watch left (monotonic ms). */
  leftAt: number;
}

/** One waiter's view of a channel. */
export interface Watch {
  /** Messages seen so far, or -1 while not yet subscribed. */
  seen(): number;
  /**
   * Resolves true once the subscription is live, false if it failed (never
   * for a left watch). Read it when needed: after a reset it is a new one.
   */
  readonly ready: Promise<boolean>;
  /**
   * Calls `handler` with every message on the channel from now on, until
   * the returned function is called or the watch is left.
   */
  listen(handler: (message: string) => void): () => void;
  /**
   * Resolves at the first release after `since` releases (at once if already
   * past), or — with `since` = -1 — as soon as the subscription is live, so
   * the waiter retries once to cover a release it could not have heard.
   * Never resolves if subscribing failed (the waiter polls).
   */
  wake(since: number): { promise: Promise<void>; cancel(): void };
  /** Ends this watch. */
  leave(): void;
}

class ReleaseListener {
  #adapter: RedisAdapter;
  #runtime: Runtime;
  #connection: Promise<RedisSubscriber | null> | null = null;
  #channels = new Map<string, Channel>();
  #failedAt = -Infinity;
  #closed = false;

  constructor(adapter: RedisAdapter, runtime: Runtime) {
    this.#adapter = adapter;
    this.#runtime = runtime;
    adapter.onClose?.(() => this.#closeAll());
  }

  /** True if `name` is subscribed right now (a watch taken now hears every later release). */
  live(name: string): boolean {
    return this.#channels.get(name)?.subscribed === true;
  }

  /** Messages `name` has seen if it is subscribed right now, else -1. */
  seen(name: string): number {
    const channel = this.#channels.get(name);
    return channel?.subscribed ? channel.count : -1;
  }

  watch(name: string): Watch {
    let channel = this.#channels.get(name);
    if (!channel) {
      const fresh: Channel = {
        onMessage: (message: unknown) => {
          fresh.count++;
          const text = replyString(message) ?? String(message);
          for (const waker of [...fresh.wakers]) waker(text);
        },
        attempt: 0,
        refs: 0,
        count: 0,
        ready: Promise.resolve(false),
        subscribed: false,
        wakers: new Set(),
        idle: null,
        leftAt: 0,
      };
      fresh.ready = this.#subscribe(name, fresh);
      this.#channels.set(name, fresh);
      channel = fresh;
    }
    const ch = channel;
    ch.refs++;
    let left = false;
    const handlers = new Set<(message: string) => void>();
    return {
      seen: () => (ch.subscribed ? ch.count : -1),
      get ready() {
        return ch.ready;
      },
      listen: (handler) => {
        const waker = (message: string) => handler(message);
        if (left) return () => {};
        handlers.add(waker);
        ch.wakers.add(waker);
        return () => {
          handlers.delete(waker);
          ch.wakers.delete(waker);
        };
      },
      wake: (since) => {
        let waker: (() => void) | null = null;
        const promise = new Promise<void>((resolve) => {
          if (since < 0) {
            ch.ready.then((ok) => ok && resolve());
            return;
          }
          if (ch.count > since) return resolve();
          waker = () => {
            if (ch.count > since) resolve();
          };
          ch.wakers.add(waker);
        });
        return { promise, cancel: () => waker && ch.wakers.delete(waker) };
      },
      leave: () => {
        if (left) return;
        left = true;
        for (const waker of handlers) ch.wakers.delete(waker);
        handlers.clear();
        if (--ch.refs === 0) this.#linger(name, ch);
      },
    };
  }

  #subscribe(name: string, channel: Channel): Promise<boolean> {
    const attempt = ++channel.attempt;
    return this.#open()
      .then(async (connection) => {
        if (!connection || this.#channels.get(name) !== channel) return false;
        await connection.subscribe(name, channel.onMessage);
        // A reset since: that subscribe's outcome is the one that counts.
        if (channel.attempt !== attempt) return channel.ready;
        channel.subscribed = true;
        return true;
      })
      .catch(() => channel.attempt === attempt ? false : channel.ready);
  }

  // The subscriber connection dropped (`ended`: for good). Channels are not
  // live until subscribed again, their listeners hear RESET (so a waiter
  // asks Redis instead of trusting what it would have heard), and each is
  // subscribed again: on the same connection once it is back, or on a new
  // one, after RETRY_SUBSCRIBER_MS, if it ended.
  #reset(connection: Promise<RedisSubscriber | null>, ended: boolean): void {
    if (this.#connection !== connection) return;
    if (ended) {
      // New waits open a new connection (after RETRY_SUBSCRIBER_MS); the
      // channels of this one are dropped, and their waiters poll.
      this.#connection = null;
      this.#failedAt = this.#runtime.monotonic();
    }
    for (const [name, channel] of [...this.#channels]) {
      channel.subscribed = false;
      channel.attempt++;
      if (ended) {
        channel.ready = Promise.resolve(false);
        this.#channels.delete(name);
        channel.idle?.clear();
      } else {
        channel.ready = this.#subscribe(name, channel);
      }
      for (const waker of [...channel.wakers]) waker(RESET);
    }
  }

  #open(): Promise<RedisSubscriber | null> {
    if (this.#connection) return this.#connection;
    const open = this.#adapter.openSubscriber;
    if (!open || this.#closed || this.#runtime.monotonic() - this.#failedAt < RETRY_SUBSCRIBER_MS) {
      return Promise.resolve(null);
    }
    const connection: Promise<RedisSubscriber | null> = open.call(this.#adapter).then(
      (subscriber) => {
        subscriber.onReset?.((ended) => this.#reset(connection, ended));
        return subscriber;
      },
      () => {
        this.#failedAt = this.#runtime.monotonic();
        this.#connection = null;
        return null;
      },
    );
    this.#connection = connection;
    return connection;
  }

  // Keeping the channel a little while lets back-to-back waits (a busy lock)
  // reuse the subscription instead of resubscribing every time. One timer
  // per channel at a time: a busy lock's waits come and go without setting
  // a timer each.
  #linger(name: string, channel: Channel): void {
    channel.leftAt = this.#runtime.monotonic();
    if (!channel.idle) this.#lingerFrom(name, channel, LINGER_MS);
  }

  #lingerFrom(name: string, channel: Channel, ms: number): void {
    const timer = this.#runtime.setTimer(() => {
      channel.idle = null;
      if (channel.refs > 0 || this.#channels.get(name) !== channel) return;
      const left = channel.leftAt + LINGER_MS - this.#runtime.monotonic();
      if (left > 0) return this.#lingerFrom(name, channel, left);
      this.#channels.delete(name);
      const connection = this.#connection;
      if (this.#channels.size === 0) {
        this.#connection = null;
        connection?.then((c) => c?.close()).catch(() => {});
      } else if (channel.subscribed) {
        connection?.then((c) => c?.unsubscribe(name)).catch(() => {});
      }
    }, ms);
    timer.unref();
    channel.idle = timer;
  }

  #closeAll(): void {
    // The user closed their client: opening a duplicate now would keep the
    // process alive behind their back. Waiters on it poll from here on.
    this.#closed = true;
    for (const channel of this.#channels.values()) channel.idle?.clear();
    this.#channels.clear();
    const connection = this.#connection;
    this.#connection = null;
    connection?.then((c) => c?.close()).catch(() => {});
  }
}

const listeners = new WeakMap<RedisAdapter, ReleaseListener>();

function listenerOf(adapter: RedisAdapter, runtime: Runtime): ReleaseListener {
  let listener = listeners.get(adapter);
  if (!listener) {
    listener = new ReleaseListener(adapter, runtime);
    listeners.set(adapter, listener);
  }
  return listener;
}

/**
 * Starts watching the release channel `channel` through `adapter`'s shared
 * subscriber connection (opening it if needed).
 */
export function watchReleases(adapter: RedisAdapter, runtime: Runtime, channel: string): Watch {
  return listenerOf(adapter, runtime).watch(channel);
}

/**
 * How many messages `channel` has seen, if it is subscribed right now, else
 * -1: a later watch whose `seen()` still says the same missed nothing.
 */
export function seenIfLive(adapter: RedisAdapter, channel: string): number {
  return listeners.get(adapter)?.seen(channel) ?? -1;
}

/**
 * A watch of `channel` if it is subscribed right now, else null. Taken
 * before an attempt, it hears every release that attempt could miss; an
 * uncontended lock never opens a subscriber this way.
 */
export function watchIfLive(adapter: RedisAdapter, channel: string): Watch | null {
  const listener = listeners.get(adapter);
  return listener?.live(channel) ? listener.watch(channel) : null;
}
