// Merges the runtimes' JSON results into one Markdown report: the table
// (kind × operation × runtime: p50, p99, ops/s), the goals of issue 4 with
// ✅/❌, the ratios against each peer and floor, and the machine it ran on.
// Prints it, and writes bench/RESULTS.md and bench/chart.svg (not with
// --print-only: a partial run must not replace the full results).
//
// Usage: deno run -A bench/report.ts [--print-only] results/*.json

import process from "node:process";
import { readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import type { MeasuredResult, Result, RunFile, RuntimeName } from "./_case.ts";
import { type ChartRow, latencyChart } from "./_chart.ts";
import {
  compare,
  COMPARISONS,
  formatRate,
  formatUs,
  GOALS,
  type Lookup,
  P50_TARGETS_US,
  type Verdict,
} from "./_goals.ts";
import { median, TURN_EVERY } from "./_measure.ts";

const ORDER: RuntimeName[] = ["deno", "bun", "node"];
const TITLE: Record<RuntimeName, string> = { deno: "Deno", bun: "Bun", node: "Node" };

async function cpuModel(): Promise<string> {
  try {
    const text = await readFile("/proc/cpuinfo", "utf8");
    return text.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown";
  } catch {
    return os.cpus()[0]?.model ?? "unknown";
  }
}

function mark(verdict: Verdict): string {
  return verdict.met === null ? "—" : verdict.met ? "✅" : "❌";
}

function row(cells: string[]): string {
  return `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`;
}

const printOnly = process.argv.includes("--print-only");
const files: RunFile[] = [];
for (const path of process.argv.slice(2).filter((arg) => arg !== "--print-only")) {
  files.push(JSON.parse(await readFile(path, "utf8")) as RunFile);
}
if (files.length === 0) {
  console.error("usage: report.ts [--print-only] <results.json>...");
  process.exit(64);
}
files.sort((a, b) => ORDER.indexOf(a.runtime) - ORDER.indexOf(b.runtime));
const runtimes = files.map((f) => f.runtime);
const lookups = new Map<RuntimeName, Lookup>(files.map((f) => {
  const byId = new Map(
    f.results.flatMap((r) => (r.status === "ok" ? [[r.id, r] as const] : [])),
  );
  return [f.runtime, (id: string) => byId.get(id)];
}));

// Rows in the order the first runtime ran them; rows only others have, after.
const rows = new Map<string, Result>();
for (const f of files) for (const r of f.results) if (!rows.has(r.id)) rows.set(r.id, r);

const md: string[] = [];
const full = files.some((f) => f.full);
const date = files[0].startedAt.slice(0, 16).replace("T", " ");
md.push(
  "# socketlock benchmarks",
  "",
  `Measured by \`deno task bench\`${full ? " -- --full" : ""} (${
    full ? "full" : "short"
  } run), ${date} UTC,`,
  "one runtime after the other on the machine below. Every figure: warm-up, then repeats; the",
  "table shows the median of the repeats and ± half their spread (noise). Figures under 20 µs are",
  "batch means (timer cost would dominate single ops), so their p99 understates single-op tails.",
  `Back-to-back ops give the event loop a turn every ${TURN_EVERY} ops (timed with them), as a program does`,
  "between locks: Node finishes closing a socket only in such a turn.",
  "",
  "## Machine",
  "",
  `- CPU: ${await cpuModel()}, ${os.cpus().length} logical cores, ` +
    `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM`,
  `- OS: ${os.type()} ${os.release()} (${os.arch()})`,
  `- Runtimes: ${files.map((f) => f.version).join("; ")}`,
  `- Lock directory: ${[...new Set(files.map((f) => f.lockDir ?? "unknown"))].join("; ")}` +
    " (set SOCKETLOCK_BENCH_DIR to measure another file system)",
  `- Redis: redis-server ${
    process.env.SOCKETLOCK_BENCH_REDIS_VERSION ?? "(version not recorded)"
  }, ` +
    "loopback TCP, persistence off; clients: ioredis 5",
  `- Load average (1 min) at the start → end of each run: ` +
    files.map((f) =>
      `${f.runtime} ${f.load?.[0]?.toFixed(2) ?? "?"} → ${f.load?.[1]?.toFixed(2) ?? "?"}`
    )
      .join(", ") +
    " (the benchmark itself keeps one or two cores busy; well above 2, other work competed)",
  `- Run time: ${files.map((f) => `${f.runtime} ${(f.elapsedMs / 1000).toFixed(0)} s`).join(", ")}`,
  "",
  "![p50 latency per kind and operation, per runtime (log scale)](chart.svg)",
  "",
  "## Results",
  "",
);

const header = ["kind", "operation"];
for (const rt of runtimes) {
  header.push(`${TITLE[rt]} p50`, `${TITLE[rt]} p99`, `${TITLE[rt]} ops/s`);
}
header.push("goal");
md.push(row(header), row(header.map(() => "---")));
for (const [id, first] of rows) {
  const cells = [first.kind, first.operation];
  for (const rt of runtimes) {
    const r = lookups.get(rt)!(id);
    if (!r) cells.push("not measured", "", "");
    else {
      cells.push(
        `${formatUs(r.p50Us)} ±${r.noisePct.toFixed(0)}%`,
        formatUs(r.p99Us),
        formatRate(r.opsPerSec),
      );
    }
  }
  const goal = GOALS.find((g) => g.row === id);
  cells.push(
    goal
      ? `${goal.target}: ${runtimes.map((rt) => mark(goal.check(lookups.get(rt)!, rt))).join(" ")}`
      : "",
  );
  md.push(row(cells));
}

/** A Python tool's p50, median over the runtimes' runs (it is the same Python in each). */
function pythonHere(id: string | undefined): string {
  const p50s = id ? runtimes.flatMap((rt) => lookups.get(rt)!(id)?.p50Us ?? []) : [];
  return p50s.length ? formatUs(median(p50s)) : "";
}

md.push("", "## Goals (issue 4)", "");
const goalHeader = [
  "goal",
  "target",
  ...runtimes.map((rt) => TITLE[rt]),
  "reference (from the issue, not measured here)",
  "the Python tool here (stand-in, same run)",
];
md.push(row(goalHeader), row(goalHeader.map(() => "---")));
for (const goal of GOALS) {
  const cells = [goal.label, goal.target];
  for (const rt of runtimes) {
    const verdict = goal.check(lookups.get(rt)!, rt);
    cells.push(`${mark(verdict)} ${verdict.value}`);
  }
  cells.push(goal.reference, pythonHere(goal.python));
  md.push(row(cells));
}

md.push("", "## Ratios", "", "p50 against p50, same runtime, same run.", "");
const ratioHeader = ["comparison", ...runtimes.map((rt) => TITLE[rt])];
md.push(row(ratioHeader), row(ratioHeader.map(() => "---")));
for (const c of COMPARISONS) {
  const cells = [c.label, ...runtimes.map((rt) => compare(lookups.get(rt)!, c))];
  if (cells.slice(1).some((cell) => cell !== "—")) md.push(row(cells));
}

md.push("", "## Notes", "");
const notes = new Map<string, string>();
const skipped = new Map<string, string[]>();
for (const f of files) {
  for (const r of f.results) {
    const label = `${r.kind} ${r.operation}`;
    if (r.status === "ok") {
      const method = r.method === "per op" || r.method === "per event" ? "" : `${r.method}`;
      const text = [r.note, method].filter(Boolean).join("; ");
      if (text && !notes.has(label)) notes.set(label, text);
    } else {
      const list = skipped.get(label) ?? [];
      list.push(`${f.runtime}: ${r.reason}`);
      skipped.set(label, list);
    }
  }
}
for (const [label, text] of notes) md.push(`- **${label}**: ${text}`);
for (const [label, reasons] of skipped) {
  md.push(`- **${label}**: not measured (${reasons.join("; ")})`);
}
md.push(
  "- Peers are configured as users would: proper-lockfile `lock(file, { realpath: false })`;",
  "  redlock 4 with one client; redis-semaphore 5 `Mutex`; all Redis clients are ioredis 5.",
);

const text = md.join("\n") + "\n";
console.log(text);
if (printOnly) {
  console.log("a partial run (--only): bench/RESULTS.md and bench/chart.svg are left as they were");
  process.exit(0);
}
const here = new URL(".", import.meta.url).pathname;
await writeFile(`${here}RESULTS.md`, text);

const chartRows: ChartRow[] = [];
for (const [id, first] of rows) {
  const p50Us: ChartRow["p50Us"] = {};
  const targetUs: ChartRow["targetUs"] = {};
  for (const rt of runtimes) {
    const r: MeasuredResult | undefined = lookups.get(rt)!(id);
    if (r) p50Us[rt] = r.p50Us;
    const target = P50_TARGETS_US[id];
    if (target) targetUs[rt] = target(rt);
  }
  if (Object.keys(p50Us).length === 0) continue;
  // The table has the details; the chart keeps labels short.
  const operation = first.operation.replace(/^throughput, /, "").replace(
    / \((tryLock|lock\(\)|check\(\)).*\)$/,
    "",
  );
  const latency = id.includes("throughput") ? " (acquire)" : "";
  chartRows.push({ label: `${first.kind}: ${operation}${latency}`, p50Us, targetUs });
}
await writeFile(
  `${here}chart.svg`,
  latencyChart(
    chartRows,
    runtimes,
    `socketlock — p50 latency (${full ? "full" : "short"} run, ${date} UTC)`,
  ),
);
console.log(`wrote ${here}RESULTS.md and ${here}chart.svg`);
