// The Node adapter: node:fs and node:net.

import * as net from "node:net";
import { setImmediate } from "node:timers";
import type { Connection, Listener, Runtime, SocketAddress } from "./types.ts";
import { nodeCommon } from "./_node_common.ts";
import { timerDelay } from "./_timer_delay.ts";

function wrapSocket(socket: net.Socket): Connection {
  let onData: ((chunk: Uint8Array) => void) | null = null;
  let onClose: (() => void) | null = null;
  let onDrain: (() => void) | null = null;
  // Chunks held while nobody listens or reading is paused.
  const pending: Uint8Array[] = [];
  let paused = false;
  let closed = false;
  let draining = false; // a write() left bytes queued
  const deliver = () => {
    while (pending.length > 0 && onData && !paused) onData(pending.shift()!);
  };
  socket.on("data", (chunk: Uint8Array) => {
    if (onData && !paused && pending.length === 0) onData(chunk);
    else pending.push(chunk);
  });
  socket.on("error", () => socket.destroy());
  const notifyClose = () => {
    if (closed) return;
    closed = true;
    onClose?.();
  };
  // The peer's FIN is the news a lock holder's waiters wake on: reported as
  // it arrives, not a libuv turn or two later once Node has shut down and
  // closed our side too. Unless bytes of ours are still queued: then only
  // once they went out and the socket closed (or it was aborted), so that
  // its owner keeps counting it, and can time it out, until then.
  socket.once("end", () => {
    if (socket.writableLength === 0) notifyClose();
  });
  socket.once("close", notifyClose);
  // One callback for every write (Node batches same-callback completions):
  // it runs after the bytes went to the OS, so it can tell when all have.
  const written = () => {
    if (draining && socket.writableLength === 0) {
      draining = false;
      onDrain?.();
    }
  };
  return {
    onData(handler) {
      onData = handler;
      deliver();
    },
    onClose(handler) {
      onClose = handler;
      if (closed) handler();
    },
    write(data) {
      // After close(): a write into end()'s flush would fail, and the error
      // handler's destroy() would drop what was still to go out.
      if (socket.destroyed || socket.writableEnded) return;
      socket.write(data, written);
      if (socket.writableLength > 0) draining = true;
    },
    close() {
      if (socket.destroyed) return;
      // With everything written handed to the OS, close now: end() sends the
      // FIN only on libuv's next turn, so a holder that lets go and then runs
      // (or blocks) woke its waiters only once it next yielded. destroy()
      // closes the descriptor at once, and the OS sends what it holds, then
      // the FIN (as end() then destroy() below does, one turn later).
      if (socket.writableLength === 0 && !socket.connecting) return void socket.destroy();
      // end() flushes queued writes; destroy once flushed so the peer sees EOF
      // at once even if it keeps its side open.
      socket.end(() => socket.destroy());
    },
    unref() {
      socket.unref();
    },
    get bufferedAmount() {
      return socket.writableLength;
    },
    onDrain(handler) {
      onDrain = handler;
    },
    pause() {
      if (paused) return;
      paused = true;
      socket.pause();
    },
    resume() {
      if (!paused) return;
      paused = false;
      deliver();
      if (!paused) socket.resume();
    },
    abort() {
      socket.destroy();
    },
  };
}

function toNetOptions(address: SocketAddress): net.ListenOptions & net.NetConnectOpts {
  return address.transport === "tcp"
    ? { host: address.hostname, port: address.port }
    : { path: address.path };
}

// Listeners closed whose handles libuv has not freed yet: it frees them only
// in a turn of the event loop, so a loop that awaits nothing but promises
// (lock, release, lock ...) would keep every one alive. Past this many, a
// close() waits for one turn, which frees them all.
const MAX_UNFREED_LISTENERS = 1024;
let unfreedListeners = 0;

function closeListener(server: net.Server): Promise<void> {
  unfreedListeners++;
  server.close(() => unfreedListeners--);
  if (unfreedListeners <= MAX_UNFREED_LISTENERS) return Promise.resolve();
  return new Promise((resolve) => setImmediate(resolve));
}

function listen(
  address: SocketAddress,
  onConnection: (conn: Connection) => void,
): Promise<Listener> {
  // noDelay: a server that answers twice before the peer's delayed ACK
  // would otherwise hold its second reply back for up to 40 ms (Nagle).
  const server = net.createServer({ noDelay: true }, (socket) => onConnection(wrapSocket(socket)));
  const opened = (): Listener => {
    // Later errors are failed accepts (EMFILE): libuv keeps listening, and
    // crashing would drop every lock this process holds.
    server.on("error", () => {});
    const bound = server.address();
    let closing: Promise<void> | null = null;
    return {
      port: typeof bound === "object" && bound ? bound.port : 0,
      // server.close()'s callback waits for every accepted connection to end;
      // the address itself is free as soon as close() returns.
      close: () => closing ??= closeListener(server),
      unref: () => {
        server.unref();
      },
    };
  };
  server.listen({ ...toNetOptions(address), exclusive: true });
  // A unix path (the port kind's abstract name) is bound within listen();
  // waiting for the "listening" event would only cost a tick. A failure
  // (reported on the next tick), a host name to resolve, or a cluster
  // worker's listen (done by the primary) is waited for.
  if (server.listening) return Promise.resolve(opened());
  return new Promise<Listener>((resolve, reject) => {
    server.once("error", reject);
    server.once("listening", () => {
      server.off("error", reject);
      resolve(opened());
    });
  });
}

function connect(address: SocketAddress, timeout: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(toNetOptions(address));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`connect timed out after ${timeout} ms`), {
        code: "ETIMEDOUT",
      }));
    }, timerDelay(timeout));
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
