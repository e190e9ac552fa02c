// The parts of the Node and Bun adapters that are the same: Bun implements
// node:fs, node:process and node:child_process natively, so both use them.

import * as fs from "node:fs/promises";
import { spawn as spawnChild } from "node:child_process";
import { hostname as osHostname, tmpdir } from "node:os";
import process from "node:process";
import type { ChildProcess, FileStat, Runtime, Timer } from "./types.ts";
import { procStartTimeReader } from "./_proc_stat.ts";

const readStartTime = procStartTimeReader(
  (path) => fs.readFile(path, "utf8"),
  (error) => (error as { code?: string }).code === "ENOENT",
);

function toFileStat(s: import("node:fs").Stats): FileStat {
  return {
    isFile: s.isFile(),
    isDirectory: s.isDirectory(),
    isSymlink: s.isSymbolicLink(),
    mode: s.mode & 0o7777,
    uid: s.uid,
    size: s.size,
    mtimeMs: s.mtimeMs,
  };
}

function nodeTimer(fn: () => void, ms: number): Timer {
  const handle = setTimeout(fn, ms);
  return {
    clear: () => clearTimeout(handle),
    unref: () => {
      handle.unref();
    },
  };
}

function nodeSpawn(command: string, args: string[]): ChildProcess {
  const child = spawnChild(command, args, { stdio: "inherit" });
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

/** Files, processes and clock over node: built-ins, shared by node.ts and bun.ts. */
export const nodeCommon: Omit<Runtime, "name" | "listen" | "connect"> = {
  mkdir: async (path, mode) => {
    await fs.mkdir(path, { recursive: true, mode });
  },
  writeFileExclusive: (path, data, mode) =>
    fs.writeFile(path, data, { flag: "wx", mode }),
  writeFile: (path, data, mode) => fs.writeFile(path, data, { mode }),
  readFile: (path) => fs.readFile(path, "utf8"),
  readDir: (path) => fs.readdir(path),
  remove: (path) => fs.unlink(path),
  rename: (from, to) => fs.rename(from, to),
  link: (from, to) => fs.link(from, to),
  lstat: async (path) => toFileStat(await fs.lstat(path)),

  pid: process.pid,
  uid: () => (typeof process.getuid === "function" ? process.getuid() : null),
  hostname: () => host ??= osHostname(),
  platform: process.platform,
  tempDir: () => tmpdir(),
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
  startTime: (pid) =>
    process.platform === "linux" ? readStartTime(pid) : Promise.resolve(null),
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
