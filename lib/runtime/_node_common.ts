// The parts of the Node and Bun adapters that are the same: Bun implements
// node:fs, node:process and node:child_process natively, so both use them.

import * as fs from "node:fs";
import { spawn as spawnChild } from "node:child_process";
import { hostname as osHostname, tmpdir } from "node:os";
import process from "node:process";
import type { ChildProcess, FileStat, Runtime, Timer } from "./types.ts";
import { fileInUseSync } from "./_open_files.ts";
import { namespaceIdOf, procStartTimeReader } from "./_proc_stat.ts";
import { timerDelay } from "./_timer_delay.ts";
import { createExclusiveSync, mkdirTreeSync, readTextSync, updateSync } from "./_sync_files.ts";
import { executableStateSync } from "./_executable.ts";

// File operations are synchronous system calls handed back as settled
// promises. A lock operation is a handful of metadata calls on small files in
// a local directory, microseconds each; a thread-pool round trip per call
// (fs/promises) costs more than the call itself and made an acquisition ~13
// sequential hops. The Runtime interface stays promise-based, so the lock
// algorithms (and the scripted runtime that interleaves them) do not change.
function settled<T>(op: () => T): Promise<T> {
  try {
    return Promise.resolve(op());
  } catch (error) {
    return Promise.reject(error);
  }
}

// /proc/stat is a table the kernel hands out in pieces, past 64 KiB on
// large hosts: read to its end, unbounded (no user can plant it).
const readStartTime = procStartTimeReader(
  (path) => settled(() => readTextSync(path, path === "/proc/stat")),
  (error) => (error as { code?: string }).code === "ENOENT",
  process.pid,
);

// os.tmpdir(), asked again only when the variables it reads change: it asks
// the kernel five times per variable whether the process is privileged
// (and then reads none), fifteen system calls on every socket acquisition.
let temp: { vars: string; dir: string } | null = null;

function tempDir(): string {
  const { TMPDIR, TMP, TEMP } = process.env;
  const vars = [TMPDIR, TMP, TEMP].join("\0");
  if (temp?.vars !== vars) temp = { vars, dir: tmpdir() };
  return temp.dir;
}

function toFileStat(s: import("node:fs").Stats): FileStat {
  return {
    isFile: s.isFile(),
    isDirectory: s.isDirectory(),
    isSymlink: s.isSymbolicLink(),
    mode: s.mode & 0o7777,
    uid: s.uid,
    size: s.size,
    mtimeMs: s.mtimeMs,
    dev: s.dev,
    ino: s.ino,
  };
}

function nodeTimer(fn: () => void, ms: number): Timer {
  const handle = setTimeout(fn, timerDelay(ms));
  return {
    clear: () => clearTimeout(handle),
    unref: () => {
      handle.unref();
    },
  };
}

function nodeSpawn(command: string, args: string[], options?: { quiet?: boolean }): ChildProcess {
  const child = spawnChild(command, args, { stdio: options?.quiet ? "ignore" : "inherit" });
  const exited = new Promise<{ code: number | null; signal: string | null }>(
    (resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code, signal) => resolve({ code, signal }));
    },
  );
  return {
    pid: child.pid ?? 0,
    exited,
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal as NodeJS.Signals);
      }
    },
  };
}

let host: string | undefined;
let namespaces: string | null | undefined;

/** Files, processes and clock over node: built-ins, shared by node.ts and bun.ts. */
export const nodeCommon: Omit<Runtime, "name" | "listen" | "connect"> = {
  mkdir: (path, mode) => settled(() => mkdirTreeSync(path, mode)),
  writeFileExclusive: (path, data, mode) => settled(() => createExclusiveSync(path, data, mode)),
  writeFile: (path, data, mode) => settled(() => fs.writeFileSync(path, data, { mode })),
  updateFile: (path, update) => settled(() => updateSync(path, update)),
  readFile: (path) => settled(() => readTextSync(path)),
  readDir: (path) => settled(() => fs.readdirSync(path)),
  remove: (path) => settled(() => fs.unlinkSync(path)),
  rename: (from, to) => settled(() => fs.renameSync(from, to)),
  link: (from, to) => settled(() => fs.linkSync(from, to)),
  lstat: (path) => settled(() => toFileStat(fs.lstatSync(path))),
  realPath: (path) => settled(() => fs.realpathSync(path)),
  executableState: executableStateSync,
  searchPath: () => process.env.PATH ?? null,
  watchDir: (path, onChange) => {
    let watcher: fs.FSWatcher;
    try {
      watcher = fs.watch(path, { persistent: false }, (_event, name) => {
        if (name) onChange(String(name));
      });
    } catch {
      return null;
    }
    // A watch that fails later (the directory removed) just stops: callers poll.
    watcher.on("error", () => watcher.close());
    return { close: () => watcher.close() };
  },

  pid: process.pid,
  uid: () => (typeof process.getuid === "function" ? process.getuid() : null),
  hostname: () => host ??= osHostname(),
  platform: process.platform,
  tempDir,
  env: (name) => process.env[name],
  isAlive: (pid) => {
    // kill(0 or -n, 0) probes a process group, and would call garbage alive.
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch (error) {
      return (error as { code?: string }).code === "EPERM";
    }
  },
  startTime: (pid) => process.platform === "linux" ? readStartTime(pid) : Promise.resolve(null),
  fileInUse: (path) =>
    Promise.resolve(process.platform === "linux" ? fileInUseSync(path, process.pid) : null),
  namespaceId: () =>
    namespaces === undefined
      ? namespaces = process.platform === "linux" ? namespaceIdOf(fs.readlinkSync) : null
      : namespaces,
  args: () => process.argv.slice(2),
  spawn: nodeSpawn,
  onSignal: (signal, handler) => {
    process.on(signal, handler);
    return () => {
      process.off(signal, handler);
    };
  },
  exit: (code) => process.exit(code),

  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimer: nodeTimer,
};
