// The Node adapter: node:fs and node:net.

import * as net from "node:net";
import type { Connection, Listener, Runtime, SocketAddress } from "./types.ts";
import { nodeCommon } from "./_node_common.ts";

function wrapSocket(socket: net.Socket): Connection {
  let onData: ((chunk: Uint8Array) => void) | null = null;
  let onClose: (() => void) | null = null;
  let pending: Uint8Array[] = [];
  let closed = false;
  socket.on("data", (chunk: Uint8Array) => {
    if (onData) onData(chunk);
    else pending.push(chunk);
  });
  socket.on("error", () => socket.destroy());
  socket.once("close", () => {
    closed = true;
    onClose?.();
  });
  return {
    onData(handler) {
      onData = handler;
      const queued = pending;
      pending = [];
      for (const chunk of queued) handler(chunk);
    },
    onClose(handler) {
      onClose = handler;
      if (closed) handler();
    },
    write(data) {
      if (!socket.destroyed) socket.write(data);
    },
    close() {
      if (socket.destroyed) return;
      // end() flushes queued writes; destroy once flushed so the peer sees EOF
      // at once even if it keeps its side open.
      socket.end(() => socket.destroy());
    },
    unref() {
      socket.unref();
    },
  };
}

function toNetOptions(address: SocketAddress): net.ListenOptions & net.NetConnectOpts {
  return address.transport === "tcp"
    ? { host: address.hostname, port: address.port }
    : { path: address.path };
}

async function listen(
  address: SocketAddress,
  onConnection: (conn: Connection) => void,
): Promise<Listener> {
  // noDelay: a server that answers twice before the peer's delayed ACK
  // would otherwise hold its second reply back for up to 40 ms (Nagle).
  const server = net.createServer({ noDelay: true }, (socket) => onConnection(wrapSocket(socket)));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ ...toNetOptions(address), exclusive: true }, () => {
      server.off("error", reject);
      // Later errors are failed accepts (EMFILE): libuv keeps listening, and
      // crashing would drop every lock this process holds.
      server.on("error", () => {});
      resolve();
    });
  });
  const bound = server.address();
  let closing: Promise<void> | null = null;
  return {
    port: typeof bound === "object" && bound ? bound.port : 0,
    // server.close()'s callback waits for every accepted connection to end;
    // the address itself is free as soon as close() returns.
    close: () => closing ??= Promise.resolve(void server.close()),
    unref: () => {
      server.unref();
    },
  };
}

function connect(address: SocketAddress, timeout: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(toNetOptions(address));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`connect timed out after ${timeout} ms`), {
        code: "ETIMEDOUT",
      }));
    }, timeout);
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      socket.setNoDelay(true);
      resolve(wrapSocket(socket));
    });
  });
}

/** The Node implementation of {@link Runtime}. */
export const nodeRuntime: Runtime = {
  name: "node",
  ...nodeCommon,
  listen,
  connect,
};
