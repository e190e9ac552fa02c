// A scripted in-memory world for forcing interleavings: several simulated
// processes share one in-memory file system, each with its own pid and its
// own hook that runs before every file operation, so a test can pause one
// contender between two steps while another runs.

import type { FileStat, Runtime } from "../lib/runtime/mod.ts";
import { runtime as real } from "../lib/runtime/mod.ts";

type FileOp =
  | "mkdir"
  | "writeFileExclusive"
  | "writeFile"
  | "updateFile"
  | "readFile"
  | "readDir"
  | "remove"
  | "rename"
  | "link"
  | "lstat";

/** Runs before each file operation of one simulated process. */
export type Hook = (op: FileOp, path: string) => Promise<void> | void;

interface Entry {
  kind: "file" | "dir";
  data: string;
  mode: number;
  mtimeMs: number;
}

// Inode numbers, one per entry object: a file made anew (written, linked) is a new inode.
const inodes = new WeakMap<Entry, number>();
let lastInode = 0;

function inodeOf(entry: Entry): number {
  let ino = inodes.get(entry);
  if (ino === undefined) inodes.set(entry, ino = ++lastInode);
  return ino;
}

function fsError(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${path}`), { code });
}

function parent(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

/** A one-shot gate: `wait()` blocks until `open()`. */
export function gate(): { wait: () => Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { wait: () => opened, open };
}

/** The shared world: files, live processes, and a clock. */
export interface World {
  files: Map<string, Entry>;
  alive: Map<number, number>; // pid -> start time
  /** Makes a simulated process with `pid` (alive, started at `started`). */
  process(pid: number, started?: number): SimulatedProcess;
  /** Kills a simulated process. */
  kill(pid: number): void;
  /** Fails every file write with ENOSPC while true. */
  diskFull: boolean;
  /**
   * With `diskFull`: a failed write still leaves the file behind, empty, as a
   * real open(O_CREAT) followed by a failed write() does.
   */
  partialWrites: boolean;
}

/** One simulated process's view of the world. */
export interface SimulatedProcess {
  runtime: Runtime;
  /** Replace to intercept this process's file operations. */
  hook: Hook;
}

/** Creates an empty world with `/` present. */
export function createWorld(): World {
  const files = new Map<string, Entry>([["/", {
    kind: "dir",
    data: "",
    mode: 0o755,
    mtimeMs: 0,
  }]]);
  const world: World = {
    files,
    alive: new Map(),
    diskFull: false,
    partialWrites: false,
    process(pid, started = 1_000_000 + pid) {
      world.alive.set(pid, started);
      const sim: SimulatedProcess = { hook: () => {}, runtime: undefined! };
      const get = (path: string) => {
        const entry = files.get(path);
        if (!entry) throw fsError("ENOENT", path);
        return entry;
      };
      const put = (path: string, data: string, mode: number) => {
        if (get(parent(path)).kind !== "dir") throw fsError("ENOTDIR", path);
        if (world.diskFull) {
          if (world.partialWrites) {
            files.set(path, { kind: "file", data: "", mode, mtimeMs: sim.runtime.now() });
          }
          throw fsError("ENOSPC", path);
        }
        files.set(path, { kind: "file", data, mode, mtimeMs: sim.runtime.now() });
      };
      const step = async (op: FileOp, path: string) => {
        await sim.hook(op, path);
      };
      sim.runtime = {
        ...real,
        name: `scripted-${pid}`,
        pid,
        hostname: () => "scripted-host",
        uid: () => 1000,
        isAlive: (p) => world.alive.has(p),
        startTime: (p) => {
          const started = world.alive.get(p);
          return Promise.resolve(
            started === undefined ? null : { created: started, ticks: started * 100 },
          );
        },
        namespaceId: () => "1:1",
        // Simulated files are never held open by anyone.
        fileInUse: () => Promise.resolve(false),
        async mkdir(path, mode) {
          await step("mkdir", path);
          const parts = path.split("/").filter(Boolean);
          let at = "";
          for (const part of parts) {
            at += `/${part}`;
            const entry = files.get(at);
            if (entry && entry.kind !== "dir") throw fsError("EEXIST", at);
            if (!entry) files.set(at, { kind: "dir", data: "", mode, mtimeMs: 0 });
          }
        },
        async writeFileExclusive(path, data, mode) {
          await step("writeFileExclusive", path);
          if (files.has(path)) throw fsError("EEXIST", path);
          put(path, data, mode);
        },
        async writeFile(path, data, mode) {
          await step("writeFile", path);
          put(path, data, mode);
        },
        async updateFile(path, update) {
          await step("updateFile", path);
          const entry = get(path);
          if (entry.kind === "dir") throw fsError("EISDIR", path);
          const next = update(entry.data);
          if (next !== null) put(path, next + entry.data.slice(next.length), entry.mode);
          return entry.data;
        },
        async readFile(path) {
          await step("readFile", path);
          const entry = get(path);
          if (entry.kind === "dir") throw fsError("EISDIR", path);
          return entry.data;
        },
        async readDir(path) {
          await step("readDir", path);
          if (get(path).kind !== "dir") throw fsError("ENOTDIR", path);
          const prefix = path.endsWith("/") ? path : `${path}/`;
          return [...files.keys()]
            .filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes("/"))
            .map((p) => p.slice(prefix.length))
            .filter(Boolean);
        },
        async remove(path) {
          await step("remove", path);
          get(path);
          files.delete(path);
        },
        async rename(from, to) {
          await step("rename", from);
          const entry = get(from);
          files.delete(from);
          files.set(to, entry);
        },
        async link(from, to) {
          await step("link", to);
          const entry = get(from);
          if (files.has(to)) throw fsError("EEXIST", to);
          files.set(to, { ...entry });
        },
        // Simulated paths are spelled canonically and have no symlinks.
        realPath(path) {
          get(path);
          return Promise.resolve(path);
        },
        async lstat(path): Promise<FileStat> {
          await step("lstat", path);
          const entry = get(path);
          return {
            isFile: entry.kind === "file",
            isDirectory: entry.kind === "dir",
            isSymlink: false,
            mode: entry.mode,
            uid: 1000,
            size: entry.data.length,
            mtimeMs: entry.mtimeMs,
            dev: 1,
            ino: inodeOf(entry),
          };
        },
      };
      return sim;
    },
    kill(pid) {
      world.alive.delete(pid);
    },
  };
  return world;
}
