// The parent's side of bench/_child.ts: start a helper process of the same
// runtime, ask it things line by line, estimate its clock offset, stop it.

import { spawn } from "node:child_process";
import process from "node:process";
import { detectRuntimeName } from "../lib/runtime/mod.ts";
import { wallMicros } from "./_measure.ts";

/** A running helper process. */
export interface ChildLink {
  readonly pid: number;
  /** What the child said when it started (`ready [payload]`), payload only. */
  readonly greeting: string;
  /** Sends one command; resolves with the payload of its answer. */
  ask(command: string): Promise<string>;
  /** Closes its stdin (it cleans up and exits); kills it after 3 s. */
  close(): Promise<void>;
}

const CHILD = new URL("./_child.ts", import.meta.url).pathname;
const START_TIMEOUT_MS = 30_000;

function payload(line: string): string {
  const space = line.indexOf(" ");
  return space < 0 ? "" : line.slice(space + 1);
}

/**
 * Starts `bench/_child.ts <role>` in this runtime.
 *
 * @param role `holder`, `load`, `echo` or `server`.
 * @returns The link, once the child is ready.
 * @throws {Error} If the child fails to start or says `error`.
 */
export async function startChild(role: string): Promise<ChildLink> {
  const args = detectRuntimeName() === "deno" ? ["run", "-A", CHILD, role] : [CHILD, role];
  const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] });
  const waiting: { resolve(line: string): void; reject(error: Error): void }[] = [];
  let buffer = "";
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true;
      for (const w of waiting.splice(0)) w.reject(new Error(`${role} child exited`));
      resolve();
    })
  );
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    buffer += chunk;
    for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      const next = waiting.shift();
      if (!next) continue;
      if (line.startsWith("error")) next.reject(new Error(`${role} child: ${payload(line)}`));
      else next.resolve(line);
    }
  });
  const nextLine = () =>
    new Promise<string>((resolve, reject) => {
      if (exited) reject(new Error(`${role} child exited`));
      else waiting.push({ resolve, reject });
    });
  const started = nextLine();
  const timer = setTimeout(() => child.kill("SIGKILL"), START_TIMEOUT_MS);
  let greeting: string;
  try {
    greeting = payload(await started);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return {
    pid: child.pid ?? 0,
    greeting,
    async ask(command) {
      const answer = nextLine();
      child.stdin!.write(`${command}\n`);
      return payload(await answer);
    },
    async close() {
      if (exited) return;
      child.stdin!.end();
      const killer = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exit;
      clearTimeout(killer);
    },
  };
}

/**
 * How far the child's wall clock is ahead of ours, in µs: the reading with
 * the shortest round trip, against the midpoint of that round trip.
 *
 * @param child A holder child.
 * @param pings How many readings to take.
 * @returns The offset and the best round trip (its uncertainty), µs.
 */
export async function clockOffset(
  child: ChildLink,
  pings = 15,
): Promise<{ offsetUs: number; uncertaintyUs: number }> {
  let best = { offsetUs: 0, uncertaintyUs: Infinity };
  for (let i = 0; i < pings; i++) {
    const t0 = wallMicros();
    const theirs = Number(await child.ask("clock"));
    const t1 = wallMicros();
    if (t1 - t0 < best.uncertaintyUs) {
      best = { offsetUs: theirs - (t0 + t1) / 2, uncertaintyUs: (t1 - t0) / 2 };
    }
  }
  return best;
}
