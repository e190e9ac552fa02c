// The Deno adapter: native Deno.* calls only. Deno.listen binds and closes in
// microseconds where Deno's node:net takes ~2 ms per listen+close, and reports
// a port-0 listener's port synchronously.

import { readlinkSync } from "node:fs";
import process from "node:process";
import { clearImmediate, setImmediate } from "node:timers";
import type {
  ChildProcess,
  Connection,
  FileStat,
  Listener,
  Runtime,
  SocketAddress,
  Timer,
} from "./types.ts";
import { isLoopback } from "./types.ts";
import { fileInUseSync } from "./_open_files.ts";
import { namespaceIdOf, procStartTimeReader } from "./_proc_stat.ts";
import { timerDelay } from "./_timer_delay.ts";
import { guardedChild } from "./_guarded_child.ts";
// node:fs for reads and writes: Deno's passes open(2) flags through (Deno.open
// cannot) and raises NotCapable for a missing flag just as Deno.* does.
import { createExclusiveSync, readTextSync, updateSync } from "./_sync_files.ts";
import { executableStateByMode } from "./_executable.ts";
import { LockPermissionError } from "../errors.ts";

// Deno 2 already sets `code` on OS errors; this fills it in where a version
// or an error path does not, so the core can rely on it.
const CODES: Record<string, string> = {
  NotFound: "ENOENT",
  AlreadyExists: "EEXIST",
  AddrInUse: "EADDRINUSE",
  AddrNotAvailable: "EADDRNOTAVAIL",
  ConnectionRefused: "ECONNREFUSED",
  ConnectionReset: "ECONNRESET",
  ConnectionAborted: "ECONNABORTED",
  NotConnected: "ENOTCONN",
  BrokenPipe: "EPIPE",
  TimedOut: "ETIMEDOUT",
  PermissionDenied: "EACCES",
  NotADirectory: "ENOTDIR",
  IsADirectory: "EISDIR",
  FilesystemLoop: "ELOOP",
  Busy: "EBUSY",
  NetworkUnreachable: "ENETUNREACH",
  Interrupted: "EINTR",
  BadResource: "EBADF",
};

// Deno 2 raises NotCapable for a missing flag; an older permission system
// raised PermissionDenied without the OS's errno code.
function isPermissionError(error: unknown): error is Error {
  return error instanceof Deno.errors.NotCapable ||
    (error instanceof Deno.errors.PermissionDenied &&
      !("code" in error && error.code));
}

/** Gives `error` a Node-style code, or turns a missing flag into a LockPermissionError. */
function mapError(error: unknown, flags: string, purpose: string): unknown {
  if (isPermissionError(error)) {
    const how = flags === "-A" ? "-A" : `${flags} (or -A)`;
    return new LockPermissionError(
      `Deno needs ${flags} to ${purpose}. Add ${how} to the deno command.`,
      { cause: error },
    );
  }
  if (error instanceof Error && !("code" in error && error.code)) {
    const code = CODES[error.name];
    if (code) Object.assign(error, { code });
  }
  return error;
}

async function attempt<T>(
  op: () => Promise<T>,
  flags: string,
  purpose: string,
): Promise<T> {
  try {
    return await op();
  } catch (error) {
    throw mapError(error, flags, purpose);
  }
}

function attemptSync<T>(op: () => T, flags: string, purpose: string): T {
  try {
    return op();
  } catch (error) {
    throw mapError(error, flags, purpose);
  }
}

function parentDir(path: string): string {
  const cut = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return cut > 0 ? path.slice(0, cut) : cut === 0 ? path.slice(0, 1) : ".";
}

function fsFlags(...paths: string[]): string {
  const dirs = [...new Set(paths)].join(",");
  return `--allow-read=${dirs} --allow-write=${dirs}`;
}

// File operations are synchronous calls handed back as settled promises: a
// lock operation is a few metadata calls on small local files, microseconds
// each, cheaper than an async op's round trip (see _node_common.ts). The
// permission hint is only worked out when a call failed.
function fsSync<T>(op: () => T, ...paths: string[]): Promise<T> {
  try {
    return Promise.resolve(op());
  } catch (error) {
    const dirs = paths.map(parentDir);
    return Promise.reject(mapError(error, fsFlags(...dirs), `use lock files in ${dirs[0]}`));
  }
}

function toFileStat(s: Deno.FileInfo): FileStat {
  return {
    isFile: s.isFile,
    isDirectory: s.isDirectory,
    isSymlink: s.isSymlink,
    mode: (s.mode ?? 0) & 0o7777,
    uid: s.uid,
    size: s.size,
    mtimeMs: s.mtime?.getTime() ?? 0,
    dev: s.dev,
    ino: s.ino ?? 0,
  };
}

function netFlags(address: SocketAddress): string {
  // Loopback is where the local kinds talk, and they also bind abstract
  // names (the breaker lock), which only a plain --allow-net permits.
  if (address.transport === "tcp" && isLoopback(address.hostname)) return "--allow-net";
  if (address.transport === "tcp") return `--allow-net=${address.hostname}`;
  // Deno cannot scope --allow-net to an abstract name ("path must be absolute").
  if (address.path.startsWith("\0")) return "--allow-net";
  const dir = parentDir(address.path);
  return `--allow-net=unix:${address.path} ${fsFlags(dir)}`;
}

function describe(address: SocketAddress): string {
  return address.transport === "tcp"
    ? `${address.hostname}:${address.port}`
    : `unix:${address.path.replace("\0", "@")}`;
}

function isClosedError(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted;
}

function wrapConn(conn: Deno.Conn): Connection {
  // Annotated with `as` so narrowing does not pin them to null in the read loop.
  let onData = null as ((chunk: Uint8Array) => void) | null;
  let onClose = null as (() => void) | null;
  let onDrain = null as (() => void) | null;
  // Chunks held while nobody listens or reading is paused.
  const pending: Uint8Array[] = [];
  let paused = false;
  let wake = null as (() => void) | null; // resumes the paused read loop
  let ending = false; // close() called or the read side ended: no new writes
  let closed = false; // the resource is closed
  let notified = false;
  // Writes wait behind the one in flight and then go out together, in one
  // call: a burst of replies costs one system call, not one each.
  let queue: Uint8Array[] = [];
  let buffered = 0;
  let writing = false;
  let flushing: Promise<void> | null = null;

  const shutdown = () => {
    if (closed) return;
    closed = true;
    queue = [];
    buffered = 0;
    // The FIN goes out now: close() alone leaves the socket open while a
    // read is pending, until Deno next gets round to cancelling it — 10 ms
    // and more in an idle process, all of it added to a waiter's hand-off.
    conn.closeWrite().catch(() => {});
    try {
      conn.close();
    } catch {
      // already closed by Deno (e.g. after a reset)
    }
    wake?.();
  };

  const deliver = () => {
    while (pending.length > 0 && onData && !paused) onData(pending.shift()!);
  };

  const flush = async () => {
    try {
      while (queue.length > 0 && !closed) {
        let data = queue[0];
        if (queue.length > 1) {
          data = new Uint8Array(buffered);
          let at = 0;
          for (const part of queue) {
            data.set(part, at);
            at += part.length;
          }
        }
        queue = [];
        // Deno.Conn.write may write fewer bytes than given.
        let offset = 0;
        while (offset < data.length && !closed) {
          const n = await conn.write(data.subarray(offset));
          offset += n;
          buffered -= n;
        }
      }
    } catch {
      shutdown();
    }
    writing = false;
    flushing = null;
    if (closed) return;
    if (ending) shutdown();
    else onDrain?.();
  };

  (async () => {
    // Each open connection keeps its buffer in a pending read: 16 KB, not
    // 64, halves what a server with thousands of connections holds (the
    // protocols spoken here send lines of at most a few KB).
    const buffer = new Uint8Array(16 * 1024);
    for (;;) {
      while (paused && !closed) await new Promise<void>((resolve) => wake = resolve);
      wake = null;
      if (closed) break;
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch {
        break; // reset, or closed under the pending read by shutdown()
      }
      if (n === null) break;
      const chunk = buffer.slice(0, n);
      if (onData && !paused && pending.length === 0) onData(chunk);
      else pending.push(chunk);
    }
    ending = true;
    if (!writing) {
      // The peer's FIN (or our own close) with nothing of ours queued is
      // news at once: a lock holder's waiters wake on it. Closing is an op
      // that costs 100 µs and more in a process that was idle, so it waits
      // for the next turn rather than delay what onClose began (a waiter's
      // acquisition, in microtasks queued just now).
      notified = true;
      onClose?.();
      if (!closed) setTimeout(shutdown, 0);
      return;
    }
    // Like Node without allowHalfOpen: our queued writes go out first, and
    // the close is reported once they have (or the connection was aborted),
    // so that its owner keeps counting it, and can time it out, until then.
    await flushing;
    shutdown();
    notified = true;
    onClose?.();
  })();

  return {
    onData(handler) {
      onData = handler;
      deliver();
    },
    onClose(handler) {
      onClose = handler;
      if (notified) handler();
    },
    write(data) {
      if (ending || closed) return;
      queue.push(data);
      buffered += data.length;
      if (!writing) {
        writing = true;
        flushing = flush();
      }
    },
    close() {
      if (ending) return;
      ending = true;
      if (!writing) shutdown();
    },
    unref() {
      conn.unref();
    },
    get bufferedAmount() {
      return buffered;
    },
    onDrain(handler) {
      onDrain = handler;
    },
    pause() {
      paused = true;
    },
    resume() {
      if (!paused) return;
      paused = false;
      deliver();
      if (!paused) wake?.();
    },
    abort() {
      ending = true;
      shutdown();
    },
  };
}

function listen(
  address: SocketAddress,
  onConnection: (conn: Connection) => void,
): Promise<Listener> {
  try {
    return Promise.resolve(serve(address, onConnection));
  } catch (error) {
    return Promise.reject(error);
  }
}

function serve(
  address: SocketAddress,
  onConnection: (conn: Connection) => void,
): Listener {
  const listener = attemptSync(
    () =>
      address.transport === "tcp"
        ? Deno.listen({ transport: "tcp", hostname: address.hostname, port: address.port })
        : Deno.listen({ transport: "unix", path: address.path }),
    netFlags(address),
    `listen on ${describe(address)} (socketlock uses loopback sockets)`,
  );
  let closed = false;
  let refed = true;
  let accepting: Promise<Deno.Conn> | null = null;
  let closing: Promise<void> | null = null;
  // Accepting starts on the next turn of the event loop, not at once: a
  // pending accept keeps the socket open after close() until Deno cancels it
  // on a later turn (see close()), so a listener closed in the turn it was
  // opened in — a port lock taken and given back at once — frees its address
  // at once only if no accept was started. The kernel completes and queues
  // connections meanwhile; they are accepted a moment later. An immediate,
  // not a 0 ms timer: set and cleared it costs Deno ~0.5 µs against ~3, and
  // every socket release opens a listener (its breaker lock). It stays ref'd
  // even for an unref'd listener (it holds the process for one turn at
  // most): Deno runs an unref'd immediate only once something else wakes
  // its event loop, and a connection waiting to be accepted does not.
  let started = false;
  const starter = setImmediate(() => {
    started = true;
    acceptLoop();
  });
  const acceptLoop = async () => {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await (accepting = listener.accept());
      } catch (error) {
        if (closed || isClosedError(error)) return;
        accepting = null;
        // EMFILE and the like: a holder that stops accepting looks dead to
        // contenders, who would then break its lock. Keep trying.
        await new Promise((resolve) => {
          const id = setTimeout(resolve, 50);
          if (!refed) Deno.unrefTimer(id);
        });
        continue;
      }
      if (address.transport === "tcp") {
        try {
          // Like connect(): no Nagle delay on replies (see node.ts).
          (conn as Deno.TcpConn).setNoDelay(true);
        } catch {
          // reset already: the read loop will see it
        }
      }
      try {
        onConnection(wrapConn(conn));
      } catch (error) {
        reportError(error);
      }
    }
  };
  return {
    port: address.transport === "tcp" ? (listener.addr as Deno.NetAddr).port : 0,
    close() {
      if (closing) return closing;
      closed = true;
      try {
        listener.close();
      } catch {
        // already closed
      }
      if (!started) {
        clearImmediate(starter);
        return closing = Promise.resolve();
      }
      // A pending accept holds the socket open (a second bind fails, a
      // connect is reset rather than refused) until Deno cancels it on the
      // next turn of the event loop; only then is the address free. An
      // unref'd accept would not keep that turn coming (Deno ends the loop:
      // "promise resolution is still pending"), so a ref'd timer does until
      // it settles; it is cleared at once and never delays anything.
      const guard = setTimeout(() => {}, 60_000);
      return closing = (accepting ?? Promise.resolve()).then(() => {}, () => {})
        .finally(() => clearTimeout(guard));
    },
    unref() {
      refed = false;
      listener.unref();
    },
  };
}

async function connect(address: SocketAddress, timeout: number): Promise<Connection> {
  const purpose = `connect to ${describe(address)} (socketlock uses loopback sockets)`;
  // A connect given up on is cancelled: left pending (a peer dropping SYNs),
  // it would keep its socket, and the process alive, until the kernel gives
  // up, about two minutes later.
  const cancel = new AbortController();
  const connecting = attempt<Deno.Conn>(
    () =>
      address.transport === "tcp"
        ? Deno.connect({
          transport: "tcp",
          hostname: address.hostname,
          port: address.port,
          signal: cancel.signal,
        })
        : Deno.connect({ transport: "unix", path: address.path }),
    netFlags(address),
    purpose,
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      cancel.abort();
      reject(
        Object.assign(new Error(`connect to ${describe(address)} timed out after ${timeout} ms`), {
          code: "ETIMEDOUT",
        }),
      );
    }, timerDelay(timeout));
  });
  try {
    const conn = await Promise.race([connecting, timedOut]);
    if (address.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
    return wrapConn(conn);
  } catch (error) {
    // A connection completing after the timeout must not leak.
    connecting.then((conn) => conn.close(), () => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

const readStartTime = procStartTimeReader(
  (path) =>
    attempt(
      // deno-lint-ignore require-await
      async () => readTextSync(path, path === "/proc/stat"), // see _node_common.ts
      "-A",
      "read process start times from /proc (Deno refuses /proc even with --allow-read of the exact path)",
    ),
  (error) =>
    error instanceof Deno.errors.NotFound || (error as { code?: string }).code === "ENOENT",
  Deno.pid,
);

const PLATFORMS: Record<string, string> = {
  windows: "win32",
  solaris: "sunos",
  illumos: "sunos",
};

function env(name: string): string | undefined {
  return attemptSync(() => Deno.env.get(name), "--allow-env", `read $${name}`);
}

// The same rule as Node's os.tmpdir(), so that every runtime on one host
// agrees on where lock files live.
function tempDir(): string {
  if (Deno.build.os === "windows") {
    const path = env("TEMP") || env("TMP") ||
      `${env("SystemRoot") || env("windir")}\\temp`;
    return path.length > 1 && path.endsWith("\\") && !path.endsWith(":\\")
      ? path.slice(0, -1)
      : path;
  }
  const path = env("TMPDIR") || env("TMP") || env("TEMP") || "/tmp";
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
}

function spawn(command: string, args: string[], options?: { quiet?: boolean }): ChildProcess {
  let child: Deno.ChildProcess;
  const stdio = options?.quiet ? "null" : "inherit";
  try {
    child = new Deno.Command(command, { args, stdin: stdio, stdout: stdio, stderr: stdio })
      .spawn();
  } catch (error) {
    // Like Node, report a failed start through `exited`.
    const failed = mapError(error, `--allow-run=${command}`, `start ${command}`);
    return { pid: 0, exited: Promise.reject(failed), kill() {} };
  }
  const exited = child.status.then(({ code, signal }) => {
    // Deno reports 128+n as the code of a signalled child; Node reports null.
    return signal === null ? { code, signal: null } : { code: null, signal };
  }, (error) => {
    // A signal Deno has no name for (a real-time one) rejects the status of
    // a child that has ended all the same.
    const number = /^Invalid signal: ([1-9]\d?)$/.exec((error as Error)?.message ?? "")?.[1];
    if (number === undefined) throw error;
    return { code: null, signal: number };
  });
  return guardedChild(child.pid, exited, (signal) => child.kill(signal as Deno.Signal));
}

function setTimer(fn: () => void, ms: number): Timer {
  const id = setTimeout(fn, timerDelay(ms));
  return {
    clear: () => clearTimeout(id),
    unref: () => Deno.unrefTimer(id),
  };
}

/** The Deno implementation of {@link Runtime}. */
let host: string | undefined;
let namespaces: string | null | undefined;

// Deno reads /proc only with -A; without it (or with a prompt pending, which
// must not interrupt a lock), the namespaces are unknown.
function readNamespaceId(): string | null {
  if (Deno.build.os !== "linux") return null;
  const state = Deno.permissions.querySync({ name: "read", path: "/proc/self/ns" }).state;
  return state === "granted" ? namespaceIdOf(readlinkSync) : null;
}

export const denoRuntime: Runtime = {
  name: "deno",

  mkdir: (path, mode) => {
    try {
      Deno.mkdirSync(path, { recursive: true, mode });
      return Promise.resolve();
    } catch (error) {
      // A file or symlink in the way: for the caller's lstat to refuse, as
      // Node's and Bun's mkdir leave it.
      if (error instanceof Deno.errors.AlreadyExists) return Promise.resolve();
      return Promise.reject(mapError(error, fsFlags(path), `create the lock directory ${path}`));
    }
  },
  writeFileExclusive: (path, data, mode) =>
    fsSync(() => createExclusiveSync(path, data, mode), path),
  writeFile: (path, data, mode) => fsSync(() => Deno.writeTextFileSync(path, data, { mode }), path),
  updateFile: (path, update) => fsSync(() => updateSync(path, update), path),
  readFile: (path) => fsSync(() => readTextSync(path), path),
  readDir: (path) => {
    try {
      return Promise.resolve(Array.from(Deno.readDirSync(path), (e) => e.name));
    } catch (error) {
      return Promise.reject(mapError(error, fsFlags(path), `list the lock directory ${path}`));
    }
  },
  remove: (path) => fsSync(() => Deno.removeSync(path), path),
  rename: (from, to) => fsSync(() => Deno.renameSync(from, to), from, to),
  link: (from, to) => fsSync(() => Deno.linkSync(from, to), from, to),
  lstat: (path) => fsSync(() => toFileStat(Deno.lstatSync(path)), path),
  realPath: (path) => fsSync(() => Deno.realPathSync(path), path),
  // Without read permission for it, looking would prompt in a terminal.
  executableState: (path) =>
    Deno.permissions.querySync({ name: "read", path }).state === "granted"
      ? executableStateByMode(path)
      : "unknown",
  // Reading it without --allow-env for it would prompt in a terminal.
  searchPath: () =>
    Deno.permissions.querySync({ name: "env", variable: "PATH" }).state === "granted"
      ? Deno.env.get("PATH") ?? null
      : null,
  watchDir: (path, onChange) => {
    let watcher: Deno.FsWatcher;
    try {
      watcher = Deno.watchFs(path, { recursive: false });
    } catch {
      return null;
    }
    (async () => {
      try {
        for await (const event of watcher) {
          for (const changed of event.paths) onChange(changed.slice(changed.lastIndexOf("/") + 1));
        }
      } catch {
        // Closed, or the directory went away: callers poll.
      }
    })();
    let closed = false;
    return {
      close() {
        if (closed) return;
        closed = true;
        watcher.close();
      },
    };
  },

  listen,
  connect,

  pid: Deno.pid,
  uid: () => attemptSync(() => Deno.uid(), "--allow-sys=hostname,uid", "read the user id"),
  // Read once (a system call on every acquisition otherwise); a refusal is
  // not cached, so the missing flag is named each time.
  hostname: () =>
    host ??= attemptSync(() => Deno.hostname(), "--allow-sys=hostname,uid", "read the host name"),
  platform: PLATFORMS[Deno.build.os] ?? Deno.build.os,
  tempDir,
  env,
  isAlive: (pid) => {
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
      // Signal 0 checks existence; Deno.kill has no signal 0 in its types.
      process.kill(pid, 0);
      return true;
    } catch (error) {
      const mapped = mapError(error, "--allow-run", "check whether a lock holder is alive");
      if (mapped instanceof LockPermissionError) throw mapped;
      return (error as { code?: string }).code === "EPERM";
    }
  },
  startTime: (pid) => Deno.build.os === "linux" ? readStartTime(pid) : Promise.resolve(null),
  fileInUse: (path) =>
    Promise.resolve(Deno.build.os === "linux" ? fileInUseSync(path, Deno.pid) : null),
  namespaceId: () => namespaces === undefined ? namespaces = readNamespaceId() : namespaces,
  args: () => [...Deno.args],
  spawn,
  onSignal: (signal, handler) => {
    try {
      Deno.addSignalListener(signal, handler);
    } catch {
      // Windows supports only SIGINT and SIGBREAK; the others never arrive there.
      return () => {};
    }
    return () => Deno.removeSignalListener(signal, handler);
  },
  exit: (code) => Deno.exit(code),

  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimer,
};
