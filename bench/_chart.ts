// The latency chart, hand-written SVG: one group of horizontal bars per
// kind/operation, one bar per runtime, p50 on a log scale.

import type { RunFile, RuntimeName } from "./_case.ts";
import { formatUs } from "./_goals.ts";

/** One group of bars. */
export interface ChartRow {
  label: string;
  /** p50 in µs per runtime; missing runtimes draw no bar. */
  p50Us: Partial<Record<RuntimeName, number>>;
  /** The goal per runtime, in µs, drawn as a red tick across its bar. */
  targetUs?: Partial<Record<RuntimeName, number>>;
}

const COLORS: Record<RuntimeName, string> = {
  deno: "#2b8a3e",
  bun: "#e8590c",
  node: "#1971c2",
};
const LABEL_W = 350;
const PLOT_W = 480;
const VALUE_W = 70;
const BAR_H = 7;
const BAR_GAP = 1;
const GROUP_GAP = 9;
const TOP = 58;

function decadeLabel(us: number): string {
  if (us >= 1e6) return `${us / 1e6} s`;
  if (us >= 1e3) return `${us / 1e3} ms`;
  return `${us} µs`;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * Draws the chart.
 *
 * @param rows The groups, top to bottom.
 * @param runtimes The runtimes, in bar order.
 * @param title The heading.
 * @returns The SVG document.
 */
export function latencyChart(
  rows: ChartRow[],
  runtimes: RunFile["runtime"][],
  title: string,
): string {
  const values = rows.flatMap((row) => Object.values(row.p50Us)).filter((v) => v > 0);
  const lo = Math.min(0, Math.floor(Math.log10(Math.min(...values, 1))));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...values, 10))));
  const x = (us: number) =>
    LABEL_W + ((Math.log10(Math.max(us, 10 ** lo)) - lo) / (hi - lo)) * PLOT_W;
  const groupH = runtimes.length * (BAR_H + BAR_GAP) + GROUP_GAP;
  const height = TOP + rows.length * groupH + 30;
  const width = LABEL_W + PLOT_W + VALUE_W;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  runtimes.forEach((runtime, i) => {
    const lx = LABEL_W + i * 90;
    out.push(
      `<rect x="${lx}" y="28" width="12" height="10" fill="${COLORS[runtime]}"/>`,
      `<text x="${lx + 16}" y="37">${runtime}</text>`,
    );
  });
  const goalX = LABEL_W + runtimes.length * 90;
  out.push(
    `<text x="10" y="37" fill="#555">p50 latency, log scale (shorter is faster)</text>`,
    `<line x1="${goalX + 6}" y1="27" x2="${goalX + 6}" y2="39" stroke="#c92a2a" stroke-width="2"/>`,
    `<text x="${goalX + 12}" y="37">goal</text>`,
  );
  for (let decade = lo; decade <= hi; decade++) {
    const gx = x(10 ** decade).toFixed(1);
    out.push(
      `<line x1="${gx}" y1="${TOP - 8}" x2="${gx}" y2="${height - 24}" stroke="#ddd"/>`,
      `<text x="${gx}" y="${height - 10}" text-anchor="middle" fill="#555">${
        decadeLabel(10 ** decade)
      }</text>`,
    );
  }
  rows.forEach((row, r) => {
    const gy = TOP + r * groupH;
    out.push(
      `<text x="${LABEL_W - 8}" y="${gy + (groupH - GROUP_GAP) / 2 + 4}" text-anchor="end">` +
        `${escapeXml(row.label)}</text>`,
    );
    runtimes.forEach((runtime, i) => {
      const us = row.p50Us[runtime];
      if (us === undefined) return;
      const y = gy + i * (BAR_H + BAR_GAP);
      const w = Math.max(1, x(us) - LABEL_W);
      out.push(
        `<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${
          COLORS[runtime]
        }">` +
          `<title>${runtime}: ${formatUs(us)}</title></rect>`,
        `<text x="${(LABEL_W + w + 4).toFixed(1)}" y="${
          y + BAR_H - 1
        }" font-size="8" fill="#333">` +
          `${formatUs(us)}</text>`,
      );
      const target = row.targetUs?.[runtime];
      if (target !== undefined) {
        const tx = x(target).toFixed(1);
        out.push(
          `<line x1="${tx}" y1="${y - 1}" x2="${tx}" y2="${y + BAR_H + 1}" stroke="#c92a2a" ` +
            `stroke-width="2"><title>goal: ${formatUs(target)}</title></line>`,
        );
      }
    });
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
