// Helpers for the lock server's socket tests: raw clients that speak the
// line protocol or raw bytes, time bounds, and servers started as processes
// of each runtime through the CLI.
import process from "node:process";
import { type Connection, runtime } from "../lib/runtime/mod.ts";
import { type Child, type RuntimeName, scriptCommand, spawnCommand } from "./_processes.ts";

/** Rejects after `ms` so that no wait in these tests can hang the runner. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves once `signal` has aborted (at once if it already has). */
export function abortedSignal(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A connection that collects whatever the server sends. */
export class RawConnection {
  readonly conn: Connection;
  /** Everything received, as text (binary replies: see `bytes`). */
  text = "";
  bytes: number[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  #watchers = new Set<() => void>();

  private constructor(conn: Connection) {
    this.conn = conn;
    conn.onData((chunk) => {
      this.text += new TextDecoder().decode(chunk);
      if (this.bytes.length < 1_000_000) this.bytes.push(...chunk);
      for (const watcher of [...this.#watchers]) watcher();
    });
    this.closed = new Promise((resolve) =>
      conn.onClose(() => {
        this.isClosed = true;
        for (const watcher of [...this.#watchers]) watcher();
        resolve();
      })
    );
  }

  /** Connects to a server on 127.0.0.1. */
  static async open(port: number): Promise<RawConnection> {
    return new RawConnection(
      await runtime.connect({ transport: "tcp", hostname: "127.0.0.1", port }, 5_000),
    );
  }

  /** Sends text or bytes. */
  send(data: string | Uint8Array): void {
    this.conn.write(typeof data === "string" ? new TextEncoder().encode(data) : data);
  }

  /** The complete lines received so far. */
  lines(): string[] {
    const lines = this.text.split("\n");
    lines.pop();
    return lines;
  }

  /** Resolves with the first received line matching `pattern`. */
  waitLine(pattern: RegExp, ms = 5_000): Promise<string> {
    return this.#until(
      () => this.lines().find((line) => pattern.test(line)),
      ms,
      `a line matching ${pattern}`,
    );
  }

  /** Resolves once at least `count` bytes have arrived. */
  waitBytes(count: number, ms = 5_000): Promise<number[]> {
    return this.#until(
      () => (this.bytes.length >= count ? this.bytes : undefined),
      ms,
      `${count} bytes`,
    );
  }

  /** Sends a request line and resolves with its reply line (tag `t<n>`). */
  async ask(request: string, ms = 5_000): Promise<string> {
    const tag = `q${++RawConnection.#asked}`;
    this.send(`${tag} ${request}\n`);
    return await this.waitLine(new RegExp(`^${tag} (?!QUEUED)`), ms);
  }
  static #asked = 0;

  /** Closes the connection. */
  close(): void {
    this.conn.close();
  }

  #until<T>(check: () => T | undefined, ms: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const done = () => {
        const value = check();
        if (value !== undefined) {
          finish();
          resolve(value);
        } else if (this.isClosed) {
          finish();
          reject(
            new Error(
              `connection closed while waiting for ${what}; received: ${this.text.slice(0, 500)}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out waiting for ${what}; received: ${this.text.slice(0, 500)}`));
      }, ms);
      const finish = () => {
        clearTimeout(timer);
        this.#watchers.delete(done);
      };
      this.#watchers.add(done);
      done();
    });
  }
}

const CLI = new URL("../lib/cli.ts", import.meta.url).pathname;

/** A lock server running as a process. */
export interface ServerProcess {
  child: Child;
  port: number;
  /** "127.0.0.1:<port>" */
  address: string;
}

/** Starts `socketlock serve` under runtime `rt` and waits for its address. */
export async function serveProcess(rt: RuntimeName, args: string[] = []): Promise<ServerProcess> {
  const [cmd, base] = scriptCommand(rt, CLI);
  const anyPort = args.includes("--port") ? [] : ["--port", "0"];
  const child = spawnCommand(cmd, [...base, "serve", ...anyPort, ...args]);
  await child.waitFor("listening on", 30_000);
  const port = Number(/listening on [^\s]+:(\d+)/.exec(child.stdout())![1]);
  return { child, port, address: `127.0.0.1:${port}` };
}

/** Runs the CLI under `rt` with `args`. */
export function runCli(rt: RuntimeName, args: string[], env: Record<string, string> = {}): Child {
  const [cmd, base] = scriptCommand(rt, CLI);
  return spawnCommand(cmd, [...base, ...args], env);
}

/** Resident memory of a process in KB (Linux), from /proc. */
export async function residentKb(pid: number): Promise<number> {
  const { readFile } = await import("node:fs/promises");
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

/** Sends a signal to a process, ignoring one already gone. */
export function signal(
  pid: number,
  sig: "SIGKILL" | "SIGTERM" | "SIGINT" | "SIGSTOP" | "SIGCONT",
): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}
