// Spawning test processes of each runtime. Binaries come from the
// environment the test runner sets (SOCKETLOCK_DENO/BUN/NODE), else from npx.
// Every child is tracked and killed when the test process ends, so a failing
// test never leaves processes behind.

import { after } from "node:test";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import process from "node:process";

/** The runtimes every multi-process test runs across. */
export const RUNTIMES = ["deno", "bun", "node"] as const;
/** One of {@link RUNTIMES}. */
export type RuntimeName = (typeof RUNTIMES)[number];

// tests/run.sh runs every test file under each runtime. A multi-process
// test whose parent only spawns and watches children would repeat the same
// work three times; these spread it over the three runners instead.
// SOCKETLOCK_ALL_RUNTIMES=1 runs everything in every runner.
const allInEachRunner = process.env.SOCKETLOCK_ALL_RUNTIMES === "1";
const self: number = Math.max(
  0,
  RUNTIMES.indexOf(
    ("Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node") as RuntimeName,
  ),
);

/**
 * The child runtimes of one group of per-runtime tests: one per runner,
 * shifted by `group`, so the three runners between them still pair the
 * group with every child runtime, at a third of the cost.
 */
export function childRuntimes(group: number): RuntimeName[] {
  return allInEachRunner ? [...RUNTIMES] : [RUNTIMES[(self + group) % RUNTIMES.length]];
}

/**
 * True in one runner of the three, chosen by `group`: for a test whose
 * children already span every runtime, so its parent's runtime adds nothing.
 */
export function inOneRunner(group: number): boolean {
  return allInEachRunner || self === group % RUNTIMES.length;
}

const npxPackage: Record<RuntimeName, string> = {
  deno: "deno@2",
  bun: "bun@1",
  node: "node@24",
};
const probe: Record<RuntimeName, string[]> = {
  deno: ["eval", "console.log(Deno.execPath())"],
  bun: ["-e", "console.log(process.execPath)"],
  node: ["-e", "console.log(process.execPath)"],
};
const resolved = new Map<RuntimeName, string>();

/** The absolute path of a runtime's binary. */
export function runtimeBinary(name: RuntimeName): string {
  const known = resolved.get(name) ?? process.env[`SOCKETLOCK_${name.toUpperCase()}`];
  if (known) return known;
  const out = spawnSync("npx", ["-y", npxPackage[name], ...probe[name]], {
    encoding: "utf8",
  });
  const path = out.stdout.trim().split("\n").pop() ?? "";
  if (out.status !== 0 || !path) {
    throw new Error(`cannot find ${name}: ${out.stderr}`);
  }
  resolved.set(name, path);
  return path;
}

/** The command line that runs a .ts script in `name`. */
export function scriptCommand(name: RuntimeName, script: string): [string, string[]] {
  const bin = runtimeBinary(name);
  return name === "deno" ? [bin, ["run", "-A", script]] : [bin, [script]];
}

/** A running test child. */
export interface Child {
  readonly process: ChildProcess;
  readonly pid: number;
  /** Everything the child printed on stdout so far. */
  stdout(): string;
  /** Resolves with the exit code (or signal) and both outputs. */
  readonly done: Promise<
    { code: number | null; signal: string | null; stdout: string; stderr: string }
  >;
  /** Resolves when stdout contains `text`, rejects after `timeout` ms. */
  waitFor(text: string, timeout?: number): Promise<void>;
}

const children = new Set<ChildProcess>();
function killAll() {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }
}
process.on("exit", killAll);
// A test process stopped by a signal (run.sh's timeout) takes them along too.
for (const [signal, number] of [["SIGTERM", 15], ["SIGHUP", 1]] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(128 + number);
  });
}

/** unshare(1) flags for a user namespace, unless root (which needs none). */
const AS_ROOT = process.getuid?.() === 0 ? [] : ["-r"];

/** unshare(1) flags for a network namespace of its own (and a user namespace unless root). */
export const NEW_NET_NAMESPACE = [...AS_ROOT, "-n"];

/** unshare(1) flags for a private mount namespace, where bind mounts stay (user namespace unless root). */
export const NEW_MOUNT_NAMESPACE = [...AS_ROOT, "-m", "--propagation", "private"];

/** Why `unshare flags` cannot run here, or null if it can. */
export function unshareUnavailable(flags: string[]): string | null {
  const probe = spawnSync("unshare", [...flags, "true"], { encoding: "utf8", timeout: 10_000 });
  if (probe.error) return `unshare: ${probe.error.message}`;
  return probe.status === 0 ? null : `unshare ${flags.join(" ")}: ${probe.stderr.trim()}`;
}

/** Starts `script` (a .ts file) under runtime `name` with `args`. */
export function spawnScript(name: RuntimeName, script: string, args: string[] = []): Child {
  const [cmd, base] = scriptCommand(name, script);
  return spawnCommand(cmd, [...base, ...args]);
}

/** Starts any command with piped output, tracked for cleanup. */
export function spawnCommand(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Child {
  const child = spawn(cmd, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  const watchers = new Set<() => void>();
  // Set at "close", not "exit": a child's last output can arrive after its exit.
  let closed = false;
  child.stdout!.on("data", (chunk) => {
    stdout += chunk;
    for (const watcher of watchers) watcher();
  });
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const done = new Promise<
    { code: number | null; signal: string | null; stdout: string; stderr: string }
  >(
    (resolve) => {
      child.once("close", (code, signal) => {
        closed = true;
        children.delete(child);
        for (const watcher of watchers) watcher();
        resolve({ code, signal, stdout, stderr });
      });
    },
  );
  return {
    process: child,
    pid: child.pid ?? 0,
    stdout: () => stdout,
    done,
    waitFor(text, timeout = 20_000) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(
            new Error(
              `timed out waiting for ${JSON.stringify(text)}; stdout: ${stdout}; stderr: ${stderr}`,
            ),
          );
        }, timeout);
        function check() {
          if (stdout.includes(text)) {
            clearTimeout(timer);
            watchers.delete(check);
            resolve();
          } else if (closed) {
            clearTimeout(timer);
            watchers.delete(check);
            reject(
              new Error(
                `child exited (code ${child.exitCode}, signal ${child.signalCode}) before printing ${
                  JSON.stringify(text)
                }; stdout: ${stdout}; stderr: ${stderr}`,
              ),
            );
          }
        }
        watchers.add(check);
        check();
      });
    },
  };
}

/** A fresh private temp dir for one test. */
export async function tempDir(prefix = "socketlock-test-"): Promise<string> {
  const { mkdtemp } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  return await mkdtemp(`${tmpdir()}/${prefix}`);
}

/**
 * A maker of temp dirs that are removed once the calling file's tests are
 * done. Call it at a test file's top level.
 */
export function tempDirsRemovedAfter(): () => Promise<string> {
  const made: string[] = [];
  after(() => {
    for (const dir of made) rmSync(dir, { recursive: true, force: true });
  });
  return async () => {
    const dir = await tempDir();
    made.push(dir);
    return dir;
  };
}

/** Absolute path of a fixture script. */
export function fixture(name: string): string {
  return new URL(`./fixtures/${name}`, import.meta.url).pathname;
}

/** A loopback TCP port that was free a moment ago (nothing listens on it now). */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
