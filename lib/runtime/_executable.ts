// Whether a path is a file this process may execute, as exec would find it:
// for `run`'s check of its command before it takes the lock.

import { accessSync, constants, statSync } from "node:fs";
import type { ExecutableState } from "./types.ts";

/** The state of `path` by stat and access(X_OK); "unknown" for any other failure. */
export function executableStateSync(path: string): ExecutableState {
  try {
    if (!statSync(path).isFile()) return "no";
    accessSync(path, constants.X_OK);
    return "yes";
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "EACCES") return "no";
    if (code === "ENOENT" || code === "ENOTDIR") return "missing";
    return "unknown";
  }
}
