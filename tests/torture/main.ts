// The long torture run: `deno task torture` (100,000 sections per kind), or
// `deno run -A tests/torture/main.ts --sections N --kinds socket,port`.
// Prints one line per kind and a Markdown table for the README's reliability
// section; exits 1 if any kind had a violation or missed its target.
import process from "node:process";
import { rm } from "node:fs/promises";
import { tempDir } from "../_processes.ts";
import { findRedisServer } from "../_redis_server.ts";
import { describeResult, runTorture, type TortureResult } from "./_fleet.ts";
import { planFor } from "./_plan.ts";
import { lockServerService, redisService, type RunningService } from "./_services.ts";

type Kind = Parameters<typeof planFor>[0];

function flag(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] ? process.argv[at + 1] : fallback;
}

const sections = Number(flag("sections", "100000"));
const kinds = flag("kinds", "socket,folder,port,server,redis").split(",") as Kind[];
const dir = await tempDir("socketlock-torture-");
const runId = crypto.randomUUID().slice(0, 8);
const results: TortureResult[] = [];
let failed = false;

for (const kind of kinds) {
  if (kind === "redis" && !findRedisServer()) {
    console.log("!!!!! SKIPPED: redis-server not found — the redis kind was not tortured !!!!!");
    failed ||= process.env.CI === "true";
    continue;
  }
  let service: RunningService | undefined;
  if (kind === "server") service = await lockServerService();
  if (kind === "redis") service = await redisService();
  try {
    const plan = planFor(kind, { sections, timeLimitMs: 6 * 3600_000 }, {
      dir,
      runId,
      serverPort: kind === "server" ? service!.port : undefined,
      redisPort: kind === "redis" ? service!.port : undefined,
    });
    const result = await runTorture({ ...plan, service, log: console.log });
    results.push(result);
    console.log(describeResult(result));
    for (const violation of result.violations.slice(0, 20)) console.log(`  VIOLATION ${violation}`);
    for (const why of result.unexpectedLossReasons.slice(0, 20)) console.log(`  LOST ${why}`);
    if (Object.keys(result.errors).length) console.log("  errors:", result.errors);
    failed ||= result.violations.length > 0 || !result.reachedTarget || result.unexpectedLosses > 0;
  } finally {
    await service?.close();
  }
}
await rm(dir, { recursive: true, force: true });

console.log(
  "\n| kind | sections | SIGKILL (of holders) | SIGSTOP | restarts | takeovers | stale writes refused | violations | time |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of results) {
  console.log(
    `| ${r.kind} | ${r.sections} | ${r.faults.kill} (${r.faults.killInside}) | ${r.faults.stop} | ` +
      `${r.faults.restart} | ${r.takeovers} | ${r.staleWritesRejected} | ${r.violations.length} | ` +
      `${(r.seconds / 60).toFixed(1)} min |`,
  );
}
process.exit(failed ? 1 : 0);
