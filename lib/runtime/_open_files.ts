// Whether a process has a file open, read from /proc/<pid>/fd: the one proof
// that a file's writer is still at work. A writer stalled between creating a
// file and writing it leaves the same empty file as one that crashed there.

import * as fs from "node:fs";
import { isOwnProc } from "./_proc_stat.ts";
import { errorCode } from "./types.ts";

/**
 * True if a process has `path` open, false if none does, `null` where that
 * cannot be told: no `/proc`, a `/proc` of another pid namespace (its
 * entries are other processes), or a process that may have created the file
 * (it runs as the file's owner) whose descriptors we may not read.
 *
 * Descriptors are compared by the path their links name (`readlink`, which
 * never touches the file itself, so a dead network mount cannot hang us).
 */
export function fileInUseSync(path: string, ownPid: number): boolean | null {
  let target: string;
  let owner: number;
  try {
    target = fs.realpathSync(path);
    owner = fs.lstatSync(target).uid;
    if (!isOwnProc(fs.readFileSync("/proc/self/stat", "utf8"), ownPid)) return null;
  } catch (error) {
    if (errorCode(error) === "ENOENT" && fs.existsSync("/proc/self/fd")) return false;
    return null;
  }
  let pids: string[];
  try {
    pids = fs.readdirSync("/proc");
  } catch {
    return null;
  }
  for (const pid of pids) {
    if (!/^\d+$/.test(pid)) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch (error) {
      const code = errorCode(error);
      if (code === "ENOENT" || code === "ESRCH") continue; // it exited
      // Not ours to read. Whoever writes a file in place created it, so only
      // a process running as its owner can be its writer.
      try {
        if (fs.statSync(`/proc/${pid}`).uid !== owner) continue;
      } catch {
        continue;
      }
      return null;
    }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === target) return true;
      } catch {
        // closed meanwhile
      }
    }
  }
  return false;
}
