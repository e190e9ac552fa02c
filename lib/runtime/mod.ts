/**
 * The runtime adapter: the {@link Runtime} interface and the one place where
 * the current runtime is detected.
 *
 * @module
 */

import type { Runtime } from "./types.ts";

export type {
  ChildProcess,
  Connection,
  DirWatch,
  ExecutableState,
  FileStat,
  Listener,
  ProcessStart,
  Runtime,
  SocketAddress,
  Timer,
} from "./types.ts";
export { errorCode, isLoopback } from "./types.ts";

/** Which runtime this module is running in. */
export function detectRuntimeName(): "deno" | "bun" | "node" {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  if (typeof g.Bun !== "undefined") return "bun";
  if (typeof g.Deno !== "undefined") return "deno";
  return "node";
}

async function loadRuntime(): Promise<Runtime> {
  switch (detectRuntimeName()) {
    case "deno":
      return (await import("./deno.ts")).denoRuntime;
    case "bun":
      return (await import("./bun.ts")).bunRuntime;
    default:
      return (await import("./node.ts")).nodeRuntime;
  }
}

/** The adapter for the runtime this module runs in, chosen once at load. */
export const runtime: Runtime = await loadRuntime();
