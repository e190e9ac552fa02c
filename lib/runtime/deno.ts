// The Deno adapter: native Deno.* calls only. Deno.listen binds and closes in
// microseconds where Deno's node:net takes ~2 ms per listen+close, and reports
// a port-0 listener's port synchronously.

import process from "node:process";
import type {
  ChildProcess,
  Connection,
  FileStat,
  Listener,
  Runtime,
  SocketAddress,
  Timer,
} from "./types.ts";
import { procStartTimeReader } from "./_proc_stat.ts";
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

function fsCall<T>(op: () => Promise<T>, ...paths: string[]): Promise<T> {
  const dirs = paths.map(parentDir);
  return attempt(op, fsFlags(...dirs), `use lock files in ${dirs[0]}`);
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
  };
}

function netFlags(address: SocketAddress): string {
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
  let pending: Uint8Array[] = [];
  let ending = false; // close() called or the read side ended: no new writes
  let closed = false; // the resource is closed
  let notified = false;
  let writes: Promise<void> = Promise.resolve();

  const shutdown = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // already closed by Deno (e.g. after a reset)
    }
  };

  // Deno.Conn.write may write fewer bytes than given.
  const writeAll = async (data: Uint8Array) => {
    let offset = 0;
    while (offset < data.length && !closed) {
      offset += await conn.write(data.subarray(offset));
    }
  };

  (async () => {
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch {
        break; // reset, or closed under the pending read by shutdown()
      }
      if (n === null) break;
      const chunk = buffer.slice(0, n);
      if (onData) onData(chunk);
      else pending.push(chunk);
    }
    ending = true;
    // Like Node without allowHalfOpen: on EOF, flush our writes, then close.
    await writes;
    shutdown();
    notified = true;
    onClose?.();
  })();

  return {
    onData(handler) {
      onData = handler;
      const queued = pending;
      pending = [];
      for (const chunk of queued) handler(chunk);
    },
    onClose(handler) {
      onClose = handler;
      if (notified) handler();
    },
    write(data) {
      if (ending) return;
      writes = writes.then(() => writeAll(data)).catch(shutdown);
    },
    close() {
      if (ending) return;
      ending = true;
      writes = writes.then(shutdown);
    },
    unref() {
      conn.unref();
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
  (async () => {
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
  })();
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
  const connecting = attempt<Deno.Conn>(
    () =>
      address.transport === "tcp"
        ? Deno.connect({ transport: "tcp", hostname: address.hostname, port: address.port })
        : Deno.connect({ transport: "unix", path: address.path }),
    netFlags(address),
    purpose,
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(Object.assign(new Error(`connect to ${describe(address)} timed out after ${timeout} ms`), {
        code: "ETIMEDOUT",
      }));
    }, timeout);
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
      () => Deno.readTextFile(path),
      "-A",
      "read process start times from /proc (Deno refuses /proc even with --allow-read of the exact path)",
    ),
  (error) => error instanceof Deno.errors.NotFound,
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

function spawn(command: string, args: string[]): ChildProcess {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (error) {
    // Like Node, report a failed start through `exited`.
    const failed = mapError(error, `--allow-run=${command}`, `start ${command}`);
    return { pid: 0, exited: Promise.reject(failed), kill() {} };
  }
  let done = false;
  const exited = child.status.then(({ code, signal }) => {
    done = true;
    // Deno reports 128+n as the code of a signalled child; Node reports null.
    return signal === null ? { code, signal: null } : { code: null, signal };
  });
  return {
    pid: child.pid,
    exited,
    kill(signal) {
      if (done) return;
      try {
        child.kill(signal as Deno.Signal);
      } catch {
        // ended between the check and the kill
      }
    },
  };
}

function setTimer(fn: () => void, ms: number): Timer {
  const id = setTimeout(fn, ms);
  return {
    clear: () => clearTimeout(id),
    unref: () => Deno.unrefTimer(id),
  };
}

/** The Deno implementation of {@link Runtime}. */
let host: string | undefined;

export const denoRuntime: Runtime = {
  name: "deno",

  mkdir: (path, mode) =>
    attempt(
      () => Deno.mkdir(path, { recursive: true, mode }),
      fsFlags(path),
      `create the lock directory ${path}`,
    ),
  writeFileExclusive: (path, data, mode) =>
    fsCall(() => Deno.writeTextFile(path, data, { createNew: true, mode }), path),
  writeFile: (path, data, mode) =>
    fsCall(() => Deno.writeTextFile(path, data, { mode }), path),
  readFile: (path) => fsCall(() => Deno.readTextFile(path), path),
  readDir: (path) =>
    attempt(
      async () => (await Array.fromAsync(Deno.readDir(path))).map((e) => e.name),
      fsFlags(path),
      `list the lock directory ${path}`,
    ),
  remove: (path) => fsCall(() => Deno.remove(path), path),
  rename: (from, to) => fsCall(() => Deno.rename(from, to), from, to),
  link: (from, to) => fsCall(() => Deno.link(from, to), from, to),
  lstat: async (path) => toFileStat(await fsCall(() => Deno.lstat(path), path)),

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
  startTime: (pid) =>
    Deno.build.os === "linux" ? readStartTime(pid) : Promise.resolve(null),
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
