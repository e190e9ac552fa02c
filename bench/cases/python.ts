// Python's lock tools, measured in the same run: issue 4 quotes their
// figures from some machine, and these say what they cost on this one.
// bench/python_peers.py holds protocol-faithful stand-ins (PyPI is not
// reachable here); it is skipped when python3 is missing.

import { spawn } from "node:child_process";
import process from "node:process";
import type { BenchCase, BenchContext } from "../_case.ts";
import type { Measured } from "../_measure.ts";

const SCRIPT = new URL("../python_peers.py", import.meta.url).pathname;
const ROWS: [string, string][] = [
  ["python.k3portlock", "k3portlock acquire+release"],
  ["python.lockfolder", "lockfolder acquire+release"],
  ["python.socketlock", "socketlock acquire+release"],
  ["python.socketlock_check", "socketlock contended check (read + handshake)"],
];
const NOTE = "stand-in with the same system calls (PyPI is unreachable here)";

interface PythonFigure extends Measured {
  id: string;
  operation: string;
}

/** Runs the script; resolves with its stdout, or null if python3 is missing. */
function runPython(args: string[]): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.env.SOCKETLOCK_BENCH_PYTHON || "python3", [SCRIPT, ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => out += chunk);
    child.on(
      "error",
      (error: Error & { code?: string }) => error.code === "ENOENT" ? resolve(null) : reject(error),
    );
    child.on(
      "close",
      (code) =>
        code === 0 ? resolve(out) : reject(new Error(`python_peers.py exited with ${code}`)),
    );
  });
}

export const python: BenchCase = {
  name: "python",
  async run(ctx: BenchContext) {
    const { warmupMs, repeats, repeatMs } = ctx.budget;
    const out = await runPython([ctx.dir, String(warmupMs), String(repeats), String(repeatMs)]);
    if (out === null) {
      for (const [id, operation] of ROWS) ctx.skip(id, "Python", operation, "no python3");
      return;
    }
    const figures = JSON.parse(out) as PythonFigure[];
    for (const { id, operation, ...measured } of figures) {
      ctx.record(id, "Python", operation, measured, NOTE);
    }
  },
};
