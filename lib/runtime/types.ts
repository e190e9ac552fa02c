/**
 * The one small interface the lock algorithms are written against. Each of
 * Deno, Bun and Node implements it with its native calls; tests drive the
 * algorithms through scripted implementations that force interleavings.
 *
 * Errors thrown by file and socket calls carry a Node-style `code` string
 * (`ENOENT`, `EEXIST`, `EADDRINUSE`, `ECONNREFUSED`, `ETIMEDOUT`, ...) on
 * every runtime, so the core can branch on it with {@link errorCode}.
 *
 * @module
 */

/**
 * What exec would make of a path: "yes" (an executable file), "no" (there,
 * but not a file or not executable), "missing", or "unknown" (this process
 * may not look: Deno without read permission for it, where asking would
 * prompt).
 */
export type ExecutableState = "yes" | "no" | "missing" | "unknown";

/** What `lstat` reports about a path, without following symlinks. */
export interface FileStat {
  /** A regular file. */
  isFile: boolean;
  /** A directory. */
  isDirectory: boolean;
  /** A symbolic link (never followed). */
  isSymlink: boolean;
  /** Permission bits (`mode & 0o7777`). */
  mode: number;
  /** Owner's user id, `null` where the platform has none. */
  uid: number | null;
  /** Size in bytes. */
  size: number;
  /** Last modification, epoch ms. */
  mtimeMs: number;
  /** The device it is on (0 where unknown). */
  dev: number;
  /** Its inode: with the rest, tells a file made again from the same one (0 where unknown). */
  ino: number;
}

/** Where to listen or connect. */
export type SocketAddress =
  | { transport: "tcp"; hostname: string; port: number }
  /** A unix socket path; a path starting with NUL is a Linux abstract name. */
  | { transport: "unix"; path: string };

/** One byte-stream connection, push-based so all runtimes map onto it cheaply. */
export interface Connection {
  /** Sets the handler for incoming chunks (chunks that came before are buffered and delivered). */
  onData(handler: (chunk: Uint8Array) => void): void;
  /**
   * Sets the handler called once when either side closes the connection:
   * ours, or the peer's FIN as soon as it arrives if no bytes of ours are
   * queued (a waiter must not wait for our side's close). With bytes queued,
   * once they have gone out and the connection closed, or it was aborted
   * (Bun drops them at the FIN): the owner keeps counting it until then.
   */
  onClose(handler: () => void): void;
  /** Queues bytes to send; ordering is kept. Errors close the connection. */
  write(data: Uint8Array): void;
  /**
   * Closes after queued writes are flushed. Idempotent. With nothing queued,
   * the peer sees the close at once, not when this process next yields: a
   * holder that lets go and then blocks must still wake its waiters.
   */
  close(): void;
  /** Lets the process exit while this connection is open. */
  unref(): void;
  /**
   * Bytes given to write() that the OS has not taken yet. It grows while the
   * peer reads slower than we write: a server watches it to stop reading
   * from a peer that does not read its replies (see pause()).
   */
  readonly bufferedAmount: number;
  /**
   * Sets the handler called each time bufferedAmount, having been above 0
   * when a write() returned, falls back to 0.
   */
  onDrain(handler: () => void): void;
  /**
   * Stops reading: onData is not called until resume(), and what the peer
   * sends meanwhile waits in the OS's buffers, then in the peer's (TCP flow
   * control slows the peer down instead of growing our memory). A peer's
   * close is noticed once reading resumes, or when a write fails. Idempotent.
   */
  pause(): void;
  /** Reads again after pause(); chunks read meanwhile are delivered first. Idempotent. */
  resume(): void;
  /** Closes at once, dropping writes the OS has not taken yet. Idempotent. */
  abort(): void;
}

/** A listening socket. */
export interface Listener {
  /** The bound TCP port (0 for unix sockets). */
  readonly port: number;
  /** Stops listening; resolves once the address is free. Idempotent. */
  close(): Promise<void>;
  /** Lets the process exit while still listening. */
  unref(): void;
}

/** A started child process with inherited stdio. */
export interface ChildProcess {
  /** The child's pid. */
  readonly pid: number;
  /**
   * Resolves when the child ends: its exit code, or the signal that ended it
   * (its name, `"SIGTERM"`, or for a signal without one, a real-time signal,
   * its number: `"34"`). Node reports a real-time signal as exit code 0:
   * libuv names no such signal.
   */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Sends a signal (e.g. `"SIGTERM"`). Does nothing if the child has ended. */
  kill(signal: string): void;
}

/** A watch on a directory's entries. */
export interface DirWatch {
  /** Stops watching. Idempotent. */
  close(): void;
}

/** A timer that can be cancelled and can be told not to keep the process alive. */
export interface Timer {
  /** Cancels the timer. */
  clear(): void;
  /** Lets the process exit while the timer is pending. */
  unref(): void;
}

/** When a process started, as Linux's /proc tells it. */
export interface ProcessStart {
  /** Whole epoch seconds, as psutil's `int(create_time())` gives it (Python's lockfolder bids). */
  created: number;
  /**
   * Clock ticks since boot: exact, and unlike `created` not moved when the
   * wall clock is stepped (the boot time in /proc/stat follows the wall clock).
   */
  ticks: number;
}

/** Everything the lock algorithms need from the platform. */
export interface Runtime {
  /** `"deno"`, `"bun"`, `"node"`, or a test runtime's name. */
  readonly name: string;

  // -- files --
  /** Creates a directory (and missing parents) with `mode`; succeeds if it exists. */
  mkdir(path: string, mode: number): Promise<void>;
  /** Creates a new file with `data` and `mode`; throws `EEXIST` if it exists. */
  writeFileExclusive(path: string, data: string, mode: number): Promise<void>;
  /** Creates or truncates a file with `data` and `mode`. */
  writeFile(path: string, data: string, mode: number): Promise<void>;
  /**
   * Reads a small file (its first 16 KB) and, if `update` returns text,
   * writes that at its start in place, without truncating it (bytes past its
   * end stay), through one open: for fixed-width records that one writer
   * updates (no new inode, no rename). Throws `ENOENT` if the file is
   * missing, `ELOOP` if it is a symlink (never followed), `EISDIR` for a
   * directory. Resolves with the text read.
   */
  updateFile(path: string, update: (text: string) => string | null): Promise<string>;
  /**
   * Reads a whole file as UTF-8. Throws `EFBIG` for a file over 64 KiB,
   * having read no more of it: every file read so (lock files, bids, keys,
   * /proc lines) is far smaller, and one planted in a shared directory could
   * be any size.
   */
  readFile(path: string): Promise<string>;
  /** Lists the entry names of a directory. */
  readDir(path: string): Promise<string[]>;
  /** Removes a file; throws `ENOENT` if it is gone. */
  remove(path: string): Promise<void>;
  /** Renames atomically, replacing `to` if it exists. */
  rename(from: string, to: string): Promise<void>;
  /** Makes a hard link; throws `EEXIST` if `to` exists (atomic create-if-absent). */
  link(from: string, to: string): Promise<void>;
  /** Stats a path without following symlinks. */
  lstat(path: string): Promise<FileStat>;
  /** The path with every symlink, `.` and `..` resolved (it must exist). */
  realPath(path: string): Promise<string>;
  /**
   * Whether `path` is a file this process may execute (following symlinks),
   * without asking for any permission: "unknown" where it may not look.
   */
  executableState(path: string): ExecutableState;
  /**
   * $PATH, or null if it is unset or may not be read without asking for a
   * permission (Deno without --allow-env for it, where reading would prompt).
   */
  searchPath(): string | null;
  /**
   * Watches a directory (not its subdirectories): `onChange` gets the entry
   * name of each creation, removal or rename the OS reports. Best effort —
   * events may be merged or missed, so a caller also polls. Close it when
   * done: on Deno an open watch keeps the process alive. Returns null if the
   * directory cannot be watched (the caller then only polls). Optional: a
   * runtime without it only polls.
   */
  watchDir?(path: string, onChange: (name: string) => void): DirWatch | null;

  // -- sockets --
  /** Listens; throws `EADDRINUSE` if taken. `port: 0` picks a free port. */
  listen(
    address: SocketAddress,
    onConnection: (conn: Connection) => void,
  ): Promise<Listener>;
  /**
   * Connects; throws `ETIMEDOUT` after `timeout` ms, and `ECONNREFUSED` only
   * when nobody listens there (lock kinds take it as proof of death): a full
   * backlog (`EAGAIN`) or no descriptors left (`EMFILE`) must not read so.
   */
  connect(address: SocketAddress, timeout: number): Promise<Connection>;

  // -- processes --
  /** This process's id. */
  readonly pid: number;
  /** This process's user id, `null` where the platform has none. */
  uid(): number | null;
  /**
   * This host's name. Asked of the OS once (it is a system call, and every
   * acquisition records it), then taken as fixed for the process's life.
   */
  hostname(): string;
  /** The OS name, as Node's `process.platform` spells it (`"linux"`, `"darwin"`, ...). */
  readonly platform: string;
  /** The temp directory. */
  tempDir(): string;
  /** Reads an environment variable. */
  env(name: string): string | undefined;
  /** True if a process with this pid exists (a zombie counts as existing). */
  isAlive(pid: number): boolean;
  /**
   * When the process started; `null` if it is gone or the platform cannot
   * tell.
   */
  startTime(pid: number): Promise<ProcessStart | null>;
  /**
   * Whether any process has the file at `path` open (Linux: from
   * `/proc/<pid>/fd`); `null` where that cannot be told.
   */
  fileInUse(path: string): Promise<boolean | null>;
  /**
   * The pid and network namespaces this process lives in (Linux:
   * `"<pid ns inode>:<net ns inode>"`), or `null` where there are none or
   * they cannot be read. Pids, start times and loopback addresses recorded by
   * a process mean the same to another only if both have the same id.
   */
  namespaceId(): string | null;
  /** The command-line arguments after the script. */
  args(): string[];
  /** Starts a child with inherited stdio (none with `quiet`). */
  spawn(command: string, args: string[], options?: { quiet?: boolean }): ChildProcess;
  /** Listens for a signal; returns a function that stops listening. */
  onSignal(signal: "SIGINT" | "SIGTERM" | "SIGHUP", handler: () => void): () => void;
  /** Ends the process. */
  exit(code: number): never;

  // -- clock --
  /** Wall-clock time, epoch ms. */
  now(): number;
  /** Monotonic time in ms (fractional). */
  monotonic(): number;
  /**
   * Calls `fn` after `ms`, or after about 24.8 days if `ms` is longer (the
   * most every runtime keeps): a caller checks the clock when it fires.
   */
  setTimer(fn: () => void, ms: number): Timer;
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|\[::1\]|localhost)$/i;

/**
 * True if `host` names this machine's loopback: only it can connect there.
 *
 * @example Loopback or not
 * ```ts
 * import { isLoopback } from "./types.ts";
 * console.log(isLoopback("127.0.0.1"), isLoopback("0.0.0.0")); // true false
 * ```
 *
 * @param host A host name or address literal.
 * @returns Whether it is a loopback one.
 */
export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

/**
 * The Node-style error code of an error thrown by a {@link Runtime} call.
 *
 * @param error Anything thrown.
 * @returns The `code` string, or `undefined`.
 */
export function errorCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}
