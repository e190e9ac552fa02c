// Whether a path is a file this process may execute, as exec would find it:
// for `run`'s check of its command before it takes the lock.

import { accessSync, constants, statSync } from "node:fs";
import type { ExecutableState } from "./types.ts";

/**
 * What a failed stat or access says: EACCES (not executable, or a directory
 * on the way without search permission: exec goes on searching) is "no",
 * a missing path "missing", anything else "unknown".
 */
function stateOfError(error: unknown): ExecutableState {
  const code = (error as { code?: string }).code;
  if (code === "EACCES") return "no";
  if (code === "ENOENT" || code === "ENOTDIR") return "missing";
  return "unknown";
}

/** The state of `path` by stat and access(X_OK). */
export function executableStateSync(path: string): ExecutableState {
  try {
    if (!statSync(path).isFile()) return "no";
    accessSync(path, constants.X_OK);
    return "yes";
  } catch (error) {
    return stateOfError(error);
  }
}

/**
 * The state of `path` by stat and its mode bits alone, for Deno: its
 * node:fs accessSync is not access(2) but lstat and the owner's or the
 * others' bits (no groups, no root, and Deno.uid() asks for --allow-sys), so
 * a group-executable file would be refused that exec runs. Only what exec
 * refuses for everyone is "no"; whether this user may is left to exec.
 */
export function executableStateByMode(path: string): ExecutableState {
  try {
    const stat = statSync(path);
    return stat.isFile() && (stat.mode & 0o111) !== 0 ? "yes" : "no";
  } catch (error) {
    return stateOfError(error);
  }
}
