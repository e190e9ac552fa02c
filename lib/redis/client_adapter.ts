/**
 * The tiny interface the Redis kind needs from a client — send one command,
 * optionally open a second connection for pub/sub — and the adapters that
 * fit `ioredis`, `redis` (node-redis v4+) and Bun's built-in `RedisClient`
 * to it, recognised by shape so that no client is a dependency of this
 * module.
 *
 * @module
 */

import { LockError } from "../errors.ts";

/** A dedicated pub/sub connection (Redis takes a subscribed connection over). */
export interface RedisSubscriber {
  /** Subscribes to `channel`; `onMessage` gets each message published on it. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<void>;
  /** Unsubscribes from `channel`. */
  unsubscribe(channel: string): Promise<void>;
  /** Closes the connection at once. */
  close(): void;
  /**
   * Registers `listener`, called when the connection drops after it was up
   * (its subscriptions may be gone, and messages were missed meanwhile):
   * `ended` says it will not come back. Subscribing again then waits for
   * the connection to be back.
   */
  onReset?(listener: (ended: boolean) => void): void;
}

/**
 * What the Redis kind needs from a client. Pass one of your own to use a
 * client this module does not recognise.
 *
 * @example Adapt a client by hand
 * ```ts
 * import type { RedisAdapter } from "jsr:@x/socketlock/redis";
 * // Stands for a client whose command() sends one command and resolves its reply.
 * const myClient = { command: (args: string[]) => Promise.resolve<unknown>(args.length) };
 * const adapter: RedisAdapter = {
 *   name: "my-client",
 *   send: (args) => myClient.command([...args]),
 * };
 * ```
 */
export interface RedisAdapter {
  /** The client's name, for error messages. */
  readonly name: string;
  /**
   * Sends one command (e.g. `["EVALSHA", sha, "1", key, owner]`) and resolves
   * with its reply: numbers for integers, strings (or bytes) for bulk
   * strings, arrays, `null` for nil. Rejects on an error reply with an Error
   * whose message starts with Redis' error code (`NOSCRIPT ...`).
   */
  send(args: readonly string[]): Promise<unknown>;
  /**
   * Opens a pub/sub connection. Without it, waiters poll with backoff
   * instead of waking at once on release.
   */
  openSubscriber?(): Promise<RedisSubscriber>;
  /** Registers a callback run when the user's client is closed for good. */
  onClose?(listener: () => void): void;
}

/** The kinds of clients recognised, for error messages. */
export const SUPPORTED_CLIENTS =
  "an ioredis client (new Redis()), a connected node-redis client (createClient() " +
  "after await client.connect()), Bun's RedisClient, or an object implementing RedisAdapter";

// deno-lint-ignore no-explicit-any
type Loose = any;

const ignore = () => {};

function isFunction(value: unknown): boolean {
  return typeof value === "function";
}

function ioredisAdapter(client: Loose): RedisAdapter {
  return {
    name: "ioredis",
    send: (args) => client.call(...args),
    openSubscriber() {
      const sub = client.duplicate();
      // ioredis prefixes the scripts' keys, so releases are published on
      // prefixed channels; SUBSCRIBE is not prefixed: we add it.
      const prefix: string = client.options?.keyPrefix ?? "";
      // Errors on the subscriber only cost wake-ups (waiters also poll); an
      // "error" event without a listener would print or throw.
      sub.on("error", ignore);
      const handlers = new Map<string, (message: string) => void>();
      sub.on("message", (channel: string, message: string) => handlers.get(channel)?.(message));
      let ready = untilReady(sub);
      // A drop after the connection was ready: it comes back (without its
      // subscriptions if autoResubscribe is off), or ends.
      const resets: ((ended: boolean) => void)[] = [];
      let up = false;
      sub.on("ready", () => void (up = true));
      sub.on("close", () => {
        if (!up) return;
        up = false;
        ready = untilReady(sub);
        for (const reset of resets) reset(false);
      });
      sub.on("end", () => {
        for (const reset of resets) reset(true);
      });
      return Promise.resolve({
        async subscribe(channel, onMessage) {
          handlers.set(prefix + channel, onMessage);
          await ready;
          await sub.subscribe(prefix + channel);
        },
        async unsubscribe(channel) {
          handlers.delete(prefix + channel);
          await ready;
          await sub.unsubscribe(prefix + channel);
        },
        close: () => sub.disconnect(),
        onReset: (listener) => void resets.push(listener),
      });
    },
    onClose: (listener) => client.once("end", listener),
  };
}

// Resolves once an ioredis connection is ready; rejects if it ends first.
// SUBSCRIBE waits for it: sent while the connection is still being set up
// (a duplicate of a lazyConnect client connects on its first command), it
// can go out before ioredis's ready check, whose INFO the server refuses in
// subscriber mode; ioredis then drops the connection, and channels whose
// SUBSCRIBE was under way are never subscribed.
function untilReady(sub: Loose): Promise<void> {
  const ready = sub.status === "ready"
    ? Promise.resolve()
    : new Promise<void>((resolve, reject) => {
      const onReady = () => {
        sub.off("end", onEnd);
        resolve();
      };
      const onEnd = () => {
        sub.off("ready", onReady);
        reject(new Error("The subscriber connection ended before it was ready."));
      };
      sub.once("ready", onReady);
      sub.once("end", onEnd);
      if (sub.status === "wait") sub.connect().catch(ignore);
    });
  ready.catch(ignore); // nobody may subscribe before it settles
  return ready;
}

function nodeRedisAdapter(client: Loose): RedisAdapter {
  return {
    name: "node-redis",
    send: (args) => client.sendCommand([...args]),
    openSubscriber() {
      const sub = client.duplicate();
      sub.on("error", ignore);
      // Handed out before it is connected: while Redis cannot be reached
      // connect() retries for ever, and a close must be able to stop it.
      const connected = Promise.resolve(sub.connect());
      connected.catch(ignore);
      return Promise.resolve({
        async subscribe(channel, onMessage) {
          await connected;
          await sub.subscribe(channel, onMessage);
        },
        async unsubscribe(channel) {
          await connected;
          await sub.unsubscribe(channel);
        },
        close() {
          // v5 has destroy(); v4 only disconnect(), which returns a promise.
          try {
            const closing = isFunction(sub.destroy) ? sub.destroy() : sub.disconnect();
            Promise.resolve(closing).catch(ignore);
          } catch {
            // Not connected yet (v4's disconnect() throws then): nothing to close.
          }
        },
      });
    },
    onClose: (listener) => client.once("end", listener),
  };
}

function bunAdapter(client: Loose): RedisAdapter {
  return {
    name: "Bun RedisClient",
    send: (args) => client.send(args[0], args.slice(1)),
    async openSubscriber() {
      const sub = await client.duplicate();
      // Bun reconnects a dropped connection without its subscriptions (and
      // without calling onclose): each connect after the first is a reset.
      const resets: ((ended: boolean) => void)[] = [];
      let connectedOnce = sub.connected === true;
      sub.onconnect = () => {
        if (!connectedOnce) return void (connectedOnce = true);
        for (const reset of resets) reset(false);
      };
      const subscribed = new Set<string>();
      return {
        async subscribe(channel, onMessage) {
          // Again after a reconnect: Bun still has the old listener, and
          // would call both.
          if (subscribed.has(channel)) await sub.unsubscribe(channel).catch(ignore);
          subscribed.add(channel);
          await sub.subscribe(channel, onMessage);
        },
        async unsubscribe(channel) {
          subscribed.delete(channel);
          await sub.unsubscribe(channel);
        },
        close: () => sub.close(),
        onReset: (listener) => void resets.push(listener),
      };
    },
    onClose(listener) {
      // Bun has one onclose slot: chain to whatever the user set.
      const previous = client.onclose;
      client.onclose = function (this: unknown, ...args: unknown[]) {
        listener();
        return isFunction(previous) ? previous.apply(this, args) : undefined;
      };
    },
  };
}

function recognise(client: Loose): RedisAdapter | null {
  // ioredis: call(command, ...args), an EventEmitter with a status string.
  if (
    isFunction(client.call) && isFunction(client.duplicate) && typeof client.status === "string"
  ) {
    return ioredisAdapter(client);
  }
  // node-redis v4+: sendCommand(args[]) and isOpen/isReady flags.
  if (isFunction(client.sendCommand) && isFunction(client.duplicate) && "isOpen" in client) {
    return nodeRedisAdapter(client);
  }
  // Bun's RedisClient: send(command, args[]), subscribe, a connected flag.
  if (
    isFunction(client.send) && isFunction(client.duplicate) && isFunction(client.subscribe) &&
    "connected" in client
  ) {
    return bunAdapter(client);
  }
  // Already an adapter.
  if (isFunction(client.send) && typeof client.name === "string") return client as RedisAdapter;
  return null;
}

const adapters = new WeakMap<object, RedisAdapter>();

/**
 * Wraps a Redis client in the {@link RedisAdapter} interface, recognising
 * ioredis, node-redis (v4 and later) and Bun's `RedisClient` by their shape.
 * The same client always gives the same adapter.
 *
 * @example Adapt an ioredis client
 * ```ts
 * import { Redis } from "ioredis";
 * import { adaptRedisClient } from "jsr:@x/socketlock/redis";
 * const adapter = adaptRedisClient(new Redis());
 * console.log(adapter.name); // "ioredis"
 * ```
 *
 * @param client A Redis client, or an object implementing {@link RedisAdapter}.
 * @returns The adapter.
 * @throws {LockError} If `client` is not a client this module recognises.
 */
export function adaptRedisClient(client: unknown): RedisAdapter {
  if (typeof client !== "object" || client === null) {
    throw new LockError(
      `The redis option must be a Redis client, got ${client === null ? "null" : typeof client}. ` +
        `Pass ${SUPPORTED_CLIENTS}.`,
    );
  }
  let adapter = adapters.get(client);
  if (!adapter) {
    adapter = recognise(client) ?? undefined;
    if (!adapter) {
      const shown = (client as { constructor?: { name?: string } }).constructor?.name ?? "object";
      throw new LockError(
        `The redis option is not a Redis client socketlock recognises (got ${shown}). ` +
          `Pass ${SUPPORTED_CLIENTS}.`,
      );
    }
    adapters.set(client, adapter);
  }
  return adapter;
}

let nextId = 1;
const ids = new WeakMap<RedisAdapter, number>();

/** A number identifying an adapter within this process (for in-process lock keys). */
export function adapterId(adapter: RedisAdapter): number {
  let id = ids.get(adapter);
  if (id === undefined) {
    id = nextId++;
    ids.set(adapter, id);
  }
  return id;
}
