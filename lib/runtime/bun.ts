// The Bun adapter: node: built-ins (which Bun implements natively) for files
// and processes, Bun.listen/Bun.connect for sockets, Bun.spawn for children.

import {
  type Connection,
  errorCode,
  isLoopback,
  type Listener,
  type Runtime,
  type SocketAddress,
} from "./types.ts";
import { existsSync } from "node:fs";
import { nodeCommon } from "./_node_common.ts";
import { bunSpawn } from "./_bun_spawn.ts";
import { readTextSync } from "./_sync_files.ts";
import { timerDelay } from "./_timer_delay.ts";

interface BunSocket {
  data: BunConnection;
  /** Returns the bytes written, which may be fewer than given (or -1 when closed). */
  write(data: Uint8Array): number;
  end(): void;
  terminate(): void;
  unref(): void;
  setNoDelay(noDelay?: boolean): boolean;
  pause(): void;
  resume(): void;
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
  #onDrain: (() => void) | null = null;
  // Chunks held while nobody listens or reading is paused.
  #pending: Uint8Array[] = [];
  #paused = false;
  // Bytes Bun did not take yet; written in order from the drain handler.
  #unsent: Uint8Array[] = [];
  #unsentBytes = 0;
  #ending = false;
  #closed = false;

  received(chunk: Uint8Array): void {
    // Bun may hand over a chunk it read before pause() took effect.
    if (this.#onData && !this.#paused && this.#pending.length === 0) this.#onData(chunk);
    else this.#pending.push(chunk);
  }

  closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsent = [];
    this.#unsentBytes = 0;
    this.#onClose?.();
  }

  drain(): void {
    const socket = this.socket;
    if (!socket || this.#closed) return;
    const had = this.#unsentBytes;
    while (this.#unsent.length > 0) {
      const head = this.#unsent[0];
      const written = socket.write(head);
      if (written < head.length) {
        if (written > 0) {
          this.#unsent[0] = head.subarray(written);
          this.#unsentBytes -= written;
        }
        return;
      }
      this.#unsent.shift();
      this.#unsentBytes -= head.length;
    }
    // Bun's end() closes both directions once called, so it waits for the flush.
    if (this.#ending) socket.end();
    else if (had > 0) this.#onDrain?.();
  }

  onData(handler: (chunk: Uint8Array) => void): void {
    this.#onData = handler;
    this.#deliver();
  }

  onClose(handler: () => void): void {
    this.#onClose = handler;
    if (this.#closed) handler();
  }

  write(data: Uint8Array): void {
    if (this.#ending || this.#closed || !this.socket) return;
    if (this.#unsent.length > 0) {
      this.#unsent.push(data.slice());
      this.#unsentBytes += data.length;
      return;
    }
    const written = this.socket.write(data);
    if (written < data.length) {
      const rest = data.slice(Math.max(written, 0));
      this.#unsent.push(rest);
      this.#unsentBytes += rest.length;
    }
  }

  close(): void {
    if (this.#ending || this.#closed) return;
    this.#ending = true;
    if (this.#unsent.length === 0) this.socket?.end();
  }

  unref(): void {
    this.socket?.unref();
  }

  get bufferedAmount(): number {
    return this.#unsentBytes;
  }

  onDrain(handler: () => void): void {
    this.#onDrain = handler;
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.socket?.pause();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#deliver();
    if (!this.#paused) this.socket?.resume();
  }

  abort(): void {
    if (this.#closed) return;
    this.#ending = true;
    this.#unsent = [];
    this.#unsentBytes = 0;
    this.socket?.terminate();
  }

  #deliver(): void {
    while (this.#pending.length > 0 && this.#onData && !this.#paused) {
      this.#onData(this.#pending.shift()!);
    }
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
    }, timerDelay(timeout));
  });
  try {
    const socket = await Promise.race([connecting, timedOut]);
    if (address.transport === "tcp") socket.setNoDelay(true);
    return conn;
  } catch (error) {
    // A connection completing after the timeout must not leak. (Bun.connect
    // cannot be cancelled: one to a peer dropping SYNs keeps its socket
    // until the kernel gives up.)
    connecting.then((socket) => socket.end(), () => {});
    throw errorCode(error) === "ECONNREFUSED" ? await confirmRefused(address, error) : error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Bun reports every failed connect as ECONNREFUSED — a full backlog
 * (EAGAIN) and no descriptors left (EMFILE) too — while callers take
 * ECONNREFUSED on a loopback port or an abstract name as proof that nobody
 * listens, and break a lock on it. There it is checked: in Linux's socket
 * tables, or where they cannot be read, by binding the address (which holds
 * it for a moment). Only if nothing listens is it refused; otherwise it is
 * EAGAIN: busy, or cause unknown.
 */
async function confirmRefused(address: SocketAddress, refused: unknown): Promise<unknown> {
  const busy = (why: string) =>
    Object.assign(new Error(`connect failed, and ${why}`, { cause: refused }), { code: "EAGAIN" });
  if (address.transport === "tcp" && !isLoopback(address.hostname)) return refused;
  if (address.transport === "unix" && !address.path.startsWith("\0")) {
    // A socket file's row shows the path as bound (maybe relative), and none
    // at all from another network namespace: no telling; nor bound over.
    return existsSync(address.path)
      ? busy("a socket file is there")
      : Object.assign(new Error(`no socket at ${address.path}`, { cause: refused }), {
        code: "ENOENT",
      });
  }
  const listening = listensPerProc(address);
  if (listening !== null) return listening ? busy("something listens there") : refused;
  let probe: Listener;
  try {
    probe = await listen(address, (conn) => conn.abort());
  } catch (error) {
    // Bun gives no code for EMFILE here.
    return busy(
      errorCode(error) === "EADDRINUSE"
        ? "the address is bound"
        : `binding it to check failed too (${(error as Error).message})`,
    );
  }
  await probe.close();
  return refused;
}

// /proc/net/unix: "Num RefCount Protocol Flags Type St Inode Path", an
// abstract name's NULs shown as "@"; /proc/net/tcp{,6}: "sl local rem st ...",
// addresses as the kernel's 32-bit words in hex.
const UNIX_ROW = /^\s*[0-9a-fA-F]+: [0-9A-F]+ [0-9A-F]+ ([0-9A-F]+) [0-9A-F]+ [0-9A-F]+ +\d+ (.*)$/;
const TCP_ROW = /^\s*\d+: ([0-9A-F]+):([0-9A-F]{4}) [0-9A-F]+:[0-9A-F]{4} ([0-9A-F]{2}) /;
const ACCEPTING = 0x10000; // __SO_ACCEPTCON: a listening unix socket
const TCP_LISTEN = "0A";
const ANY_V4 = "00000000";
const ANY_V6 = "0".repeat(32);
const V4_MAPPED = "0000000000000000FFFF0000";

/**
 * The local addresses, as /proc/net/tcp{,6} show them, whose listeners take
 * a connection to IPv4 `hostname`: it, the wildcard, and both as IPv6; null
 * (any address) for a name that is no IPv4 literal — erring towards
 * "listening" only ever makes a refusal count as silence.
 */
function acceptingAddresses(hostname: string): Set<string> | null {
  const octets = hostname.split(".").map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) {
    return null;
  }
  const word = octets.map((o) => o.toString(16).toUpperCase().padStart(2, "0")).reverse().join("");
  return new Set([word, ANY_V4, ANY_V6, V4_MAPPED + word, V4_MAPPED + ANY_V4]);
}

/**
 * Whether a socket listens on `address` (a loopback port, an abstract name),
 * from Linux's tables of this network namespace, or null where they cannot
 * be read.
 */
function listensPerProc(address: SocketAddress): boolean | null {
  try {
    if (address.transport === "unix") {
      const path = address.path.replaceAll("\0", "@");
      return readProcTable("/proc/net/unix", "Num ").some((row) => {
        const match = UNIX_ROW.exec(row);
        return match !== null && match[2] === path &&
          (Number.parseInt(match[1], 16) & ACCEPTING) !== 0;
      });
    }
    const accepting = acceptingAddresses(address.hostname);
    return ["/proc/net/tcp", "/proc/net/tcp6"].some((table) =>
      readProcTable(table, "  sl ").some((row) => {
        const match = TCP_ROW.exec(row);
        return match !== null && match[3] === TCP_LISTEN &&
          Number.parseInt(match[2], 16) === address.port &&
          (accepting === null || accepting.has(match[1]));
      })
    );
  } catch {
    return null;
  }
}

/**
 * The rows of a /proc table (none if it is absent: IPv6 off). Its reads may
 * come short before the end. Without its `header` (an emulated /proc), it
 * tells nothing: that throws.
 */
function readProcTable(path: string, header: string): string[] {
  let text: string;
  try {
    text = readTextSync(path, true);
  } catch (error) {
    if (errorCode(error) === "ENOENT" && path.endsWith("6")) return [];
    throw error;
  }
  if (!text.startsWith(header)) throw new Error(`${path} has no table`);
  return text.split("\n");
}

/** The Bun implementation of {@link Runtime}. */
export const bunRuntime: Runtime = {
  name: "bun",
  ...nodeCommon,
  spawn: bunSpawn,
  listen,
  connect,
};
