// Runs every benchmark case in this runtime and writes the results as JSON
// (bench/report.ts merges the three runtimes' files into the table).
//
// Usage: <runtime> bench/main.ts [--full] [--out FILE] [--only case,case]
// Redis cases need SOCKETLOCK_BENCH_REDIS=host:port (bench/run.sh sets it).
// The private lock directory is made under SOCKETLOCK_BENCH_DIR, else
// $XDG_RUNTIME_DIR (where the library keeps locks by default), else the
// temp dir: its file system matters (ext4 vs tmpfs), so the report names it.

import process from "node:process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { detectRuntimeName } from "../lib/runtime/mod.ts";
import type { BenchCase, BenchContext, Result, RunFile } from "./_case.ts";
import { type ChildLink, startChild } from "./_children.ts";
import type { LockerSetup } from "./_lockers.ts";
import { FULL, SHORT } from "./_measure.ts";
import { floors } from "./cases/floors.ts";
import { socket } from "./cases/socket.ts";
import { folder } from "./cases/folder.ts";
import { port } from "./cases/port.ts";
import { properLockfile } from "./cases/proper_lockfile.ts";
import { handoff } from "./cases/handoff.ts";
import { server } from "./cases/server.ts";
import { redis } from "./cases/redis.ts";
import { redisPeers } from "./cases/redis_peers.ts";
import { python } from "./cases/python.ts";

const CASES: BenchCase[] = [
  floors,
  socket,
  folder,
  port,
  properLockfile,
  handoff,
  server,
  redis,
  redisPeers,
  python,
];

function option(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

function runtimeVersion(): string {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.bun) return `bun ${versions.bun}`;
  if (versions.deno) return `deno ${versions.deno} (v8 ${versions.v8})`;
  return `node ${process.version.replace(/^v/, "")}`;
}

function parseRedis(value: string | undefined): { host: string; port: number } | null {
  if (!value) return null;
  const at = value.lastIndexOf(":");
  return { host: value.slice(0, at), port: Number(value.slice(at + 1)) };
}

/** The type of the file system holding `path` (Linux), e.g. "ext4", "tmpfs". */
async function fileSystemOf(path: string): Promise<string> {
  try {
    let best = { mount: "", type: "unknown" };
    for (const line of (await readFile("/proc/self/mounts", "utf8")).split("\n")) {
      const [, mount, type] = line.split(" ");
      if (!mount || !type) continue;
      const within = path === mount || path.startsWith(mount.endsWith("/") ? mount : `${mount}/`);
      if (within && mount.length >= best.mount.length) best = { mount, type };
    }
    return `${best.type} (${best.mount})`;
  } catch {
    return "unknown";
  }
}

function fmt(us: number): string {
  return us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(1)} µs`;
}

const full = process.argv.includes("--full");
const only = option("--only")?.split(",");
// A mistyped case would otherwise measure nothing and pass.
const unknown = only?.filter((name) => !CASES.some((c) => c.name === name)) ?? [];
if (unknown.length > 0) {
  console.error(
    `Unknown case(s) for --only: ${unknown.join(", ")}. Cases: ${
      CASES.map((c) => c.name).join(", ")
    }.`,
  );
  process.exit(64);
}
const out = option("--out");
const name = detectRuntimeName();
const started = performance.now();
const loadAtStart = loadavg()[0];
const results: Result[] = [];
const deferred: (() => unknown)[] = [];
const base = process.env.SOCKETLOCK_BENCH_DIR || process.env.XDG_RUNTIME_DIR || tmpdir();
const dir = await mkdtemp(`${base}/socketlock-bench-`);
const lockDirFs = await fileSystemOf(dir);
const setup: LockerSetup = { dir, redis: parseRedis(process.env.SOCKETLOCK_BENCH_REDIS) };
const runId = `${process.pid.toString(36)}${Date.now().toString(36)}`;
let counter = 0;
let holder: Promise<ChildLink> | null = null;

const ctx: BenchContext = {
  runtime: name,
  budget: full ? FULL : SHORT,
  full,
  dir,
  redis: setup.redis ?? null,
  setup,
  unique: (prefix) => `${prefix}-${runId}-${counter++}`,
  async holder() {
    holder ??= startChild("holder").then((child) => {
      deferred.push(() => child.close());
      return child;
    });
    const child = await holder;
    await child.ask(`setup ${JSON.stringify(setup)}`);
    return child;
  },
  record(id, kind, operation, measured, note) {
    results.push({ status: "ok", id, kind, operation, ...measured, ...(note ? { note } : {}) });
    const rate = measured.opsPerSec === null ? "" : `  ${Math.round(measured.opsPerSec)} ops/s`;
    console.log(
      `[${name}] ${kind} ${operation}: p50 ${fmt(measured.p50Us)}  p99 ${fmt(measured.p99Us)}` +
        `${rate}  ±${measured.noisePct.toFixed(1)} %  (${measured.method})`,
    );
  },
  skip(id, kind, operation, reason) {
    results.push({ status: "skipped", id, kind, operation, reason });
    console.log(`[${name}] ${kind} ${operation}: not measured: ${reason}`);
  },
  defer(fn) {
    deferred.push(fn);
  },
};

console.log(
  `[${name}] ${runtimeVersion()}, ${full ? "full" : "short"} run, lock dir ${dir} on ${lockDirFs}`,
);
let failed = false;
try {
  for (const c of CASES) {
    if (only && !only.includes(c.name)) continue;
    try {
      await c.run(ctx);
    } catch (error) {
      failed = true;
      const message = String((error as Error)?.stack ?? error);
      console.error(`[${name}] case ${c.name} failed: ${message}`);
      results.push({
        status: "skipped",
        id: `${c.name}.failed`,
        kind: c.name,
        operation: "(case failed)",
        reason: `failed: ${(error as Error)?.message ?? error}`,
      });
    }
  }
} finally {
  for (const fn of deferred.reverse()) {
    try {
      await fn();
    } catch {
      // cleaning up anyway
    }
  }
  await rm(dir, { recursive: true, force: true });
}

const file: RunFile = {
  runtime: name,
  version: runtimeVersion(),
  full,
  startedAt: new Date(Date.now() - (performance.now() - started)).toISOString(),
  elapsedMs: performance.now() - started,
  load: [loadAtStart, loadavg()[0]],
  lockDir: `${base}/socketlock-bench-* on ${lockDirFs}`,
  results,
};
if (out) await writeFile(out, JSON.stringify(file, null, 2));
console.log(
  `[${name}] done in ${(file.elapsedMs / 1000).toFixed(1)} s${
    failed ? " (some cases failed)" : ""
  }`,
);
// Clients and lingering listeners must not keep the run open.
process.exit(failed ? 1 : 0);
