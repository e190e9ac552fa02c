// The Bun adapter: node: built-ins (which Bun implements natively) for files
// and processes, Bun.listen/Bun.connect for sockets.

import type { Connection, Listener, Runtime, SocketAddress } from "./types.ts";
import { nodeCommon } from "./_node_common.ts";

interface BunSocket {
  data: BunConnection;
  /** Returns the bytes written, which may be fewer than given (or -1 when closed). */
  write(data: Uint8Array): number;
  end(): void;
  terminate(): void;
  unref(): void;
  setNoDelay(noDelay?: boolean): boolean;
}

interface BunSocketHandler {
  open?(socket: BunSocket): void;
  data(socket: BunSocket, chunk: Uint8Array): void;
  drain(socket: BunSocket): void;
  close(socket: BunSocket, error?: Error): void;
  error(socket: BunSocket, error: Error): void;
}

type BunAddress = { hostname: string; port: number; exclusive?: boolean } | {
  unix: string;
};

declare const Bun: {
  listen(options: BunAddress & { socket: BunSocketHandler }): {
    readonly port: number;
    stop(closeActiveConnections?: boolean): void;
    unref(): void;
  };
  connect(
    options: BunAddress & { socket: BunSocketHandler; data: BunConnection },
  ): Promise<BunSocket>;
};

class BunConnection implements Connection {
  socket: BunSocket | null = null;
  #onData: ((chunk: Uint8Array) => void) | null = null;
  #onClose: (() => void) | null = null;
  #pending: Uint8Array[] = [];
  // Bytes Bun did not take yet; written in order from the drain handler.
  #unsent: Uint8Array[] = [];
  #ending = false;
  #closed = false;

  received(chunk: Uint8Array): void {
    if (this.#onData) this.#onData(chunk);
    else this.#pending.push(chunk);
  }

  closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsent = [];
    this.#onClose?.();
  }

  drain(): void {
    const socket = this.socket;
    if (!socket || this.#closed) return;
    while (this.#unsent.length > 0) {
      const head = this.#unsent[0];
      const written = socket.write(head);
      if (written < head.length) {
        if (written > 0) this.#unsent[0] = head.subarray(written);
        return;
      }
      this.#unsent.shift();
    }
    // Bun's end() closes both directions once called, so it waits for the flush.
    if (this.#ending) socket.end();
  }

  onData(handler: (chunk: Uint8Array) => void): void {
    this.#onData = handler;
    const queued = this.#pending;
    this.#pending = [];
    for (const chunk of queued) handler(chunk);
  }

  onClose(handler: () => void): void {
    this.#onClose = handler;
    if (this.#closed) handler();
  }

  write(data: Uint8Array): void {
    if (this.#ending || this.#closed || !this.socket) return;
    if (this.#unsent.length > 0) {
      this.#unsent.push(data.slice());
      return;
    }
    const written = this.socket.write(data);
    if (written < data.length) this.#unsent.push(data.slice(Math.max(written, 0)));
  }

  close(): void {
    if (this.#ending || this.#closed) return;
    this.#ending = true;
    if (this.#unsent.length === 0) this.socket?.end();
  }

  unref(): void {
    this.socket?.unref();
  }
}

const handler: BunSocketHandler = {
  // Bun calls open() before Bun.connect resolves: binding here keeps the
  // wrapper usable whatever event comes first.
  open: (socket) => {
    socket.data.socket = socket;
  },
  data: (socket, chunk) => socket.data.received(chunk),
  drain: (socket) => socket.data.drain(),
  close: (socket) => socket.data.closed(),
  // Errors close the connection (the contract); close() then reports it.
  error: (socket) => socket.terminate(),
};

function toBunAddress(address: SocketAddress): BunAddress {
  return address.transport === "tcp"
    ? { hostname: address.hostname, port: address.port }
    : { unix: address.path };
}

function listen(
  address: SocketAddress,
  onConnection: (conn: Connection) => void,
): Promise<Listener> {
  try {
    const server = Bun.listen({
      // exclusive: never share a port through SO_REUSEPORT with another process.
      ...(address.transport === "tcp"
        ? { ...toBunAddress(address), exclusive: true }
        : toBunAddress(address)),
      socket: {
        ...handler,
        open: (socket) => {
          const conn = new BunConnection();
          conn.socket = socket;
          // Like connect(): no Nagle delay on replies (see node.ts).
          if (address.transport === "tcp") socket.setNoDelay(true);
          socket.data = conn;
          onConnection(conn);
        },
      },
    });
    let closing: Promise<void> | null = null;
    return Promise.resolve({
      port: address.transport === "tcp" ? server.port : 0,
      // stop(false) frees the address at once and keeps accepted connections.
      close: () => closing ??= Promise.resolve(server.stop(false)),
      unref: () => server.unref(),
    });
  } catch (error) {
    return Promise.reject(error);
  }
}

async function connect(address: SocketAddress, timeout: number): Promise<Connection> {
  const conn = new BunConnection();
  const connecting = Bun.connect({ ...toBunAddress(address), socket: handler, data: conn });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(Object.assign(new Error(`connect timed out after ${timeout} ms`), {
        code: "ETIMEDOUT",
      }));
    }, timeout);
  });
  try {
    const socket = await Promise.race([connecting, timedOut]);
    if (address.transport === "tcp") socket.setNoDelay(true);
    return conn;
  } catch (error) {
    // A connection completing after the timeout must not leak.
    connecting.then((socket) => socket.end(), () => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** The Bun implementation of {@link Runtime}. */
export const bunRuntime: Runtime = {
  name: "bun",
  ...nodeCommon,
  listen,
  connect,
};
