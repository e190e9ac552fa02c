/**
 * The one small logger of the CLI and the lock server (the library itself
 * never logs): plain `socketlock: ...` lines on stderr, or JSON lines.
 *
 * @module
 */

/** Severity of a log line. */
export type LogLevel = "error" | "warn" | "info" | "debug";

/** Writes log lines. */
export interface Logger {
  /** Logs at `level`; `debug` lines only when verbose. */
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
}

/**
 * Creates a logger writing to stderr (or to `write`).
 *
 * @example Log a line
 * ```ts
 * import { createLogger } from "./log.ts";
 * createLogger({ verbose: true }).log("info", "listening", { port: 8888 });
 * ```
 *
 * @param options `verbose` enables debug lines, `json` writes JSON lines,
 *   `write` replaces stderr.
 * @returns The logger.
 */
export function createLogger(
  options: { verbose?: boolean; json?: boolean; write?: (line: string) => void } = {},
): Logger {
  const write = options.write ?? ((line: string) => console.error(line));
  return {
    log(level, message, fields = {}) {
      if (level === "debug" && !options.verbose) return;
      if (options.json) {
        write(JSON.stringify({ time: new Date().toISOString(), level, message, ...fields }));
        return;
      }
      const extra = Object.entries(fields).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
      write(["socketlock:", message, ...extra].join(" "));
    },
  };
}
