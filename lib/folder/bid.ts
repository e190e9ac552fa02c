/**
 * Bids: the `<uuid>.json` files of the check-bid-check procedure, in a
 * format Python's lockfolder reads (`PID`, `CREATED`) plus our own details.
 *
 * @module
 */

import { writeNewFile } from "../_write_new_file.ts";
import { removeOldTemp } from "../_old_temps.ts";
import { errorCode, type Runtime } from "../runtime/mod.ts";
import { joinPath } from "../dirs.ts";

/** The content of one bid file. */
export interface Bid {
  /** The bidder's pid. */
  PID: number;
  /** The bidder's process start time, whole epoch seconds (psutil's `int(create_time())`). */
  CREATED: number;
  /**
   * The bidder's start in clock ticks since boot: compared instead of
   * `CREATED` where both sides have it, as it does not move when the wall
   * clock is stepped (absent in Python bids).
   */
  TICKS?: number;
  /** The bidder's host (absent in bids written by Python's lockfolder). */
  host?: string;
  /**
   * The bidder's pid and network namespaces (`Runtime.namespaceId()`); a bid
   * from other namespaces cannot be checked here (absent in Python bids).
   */
  ns?: string;
  /** When the bid was made, epoch ms (absent in Python bids). */
  acquiredAt?: number;
  /** The bidding isolate's id (main thread or worker). */
  isolate?: string;
  /** The bidding isolate's beacon: gone once the isolate is (absent in Python bids). */
  beacon?: string;
}

/** A bid file found in a folder. */
export interface FoundBid {
  /** The bid's id: its file name without `.json`. */
  id: string;
  /** Its path. */
  path: string;
  /** Its content, or `null` if the file is not a readable bid. */
  bid: Bid | null;
}

/** Parses a bid file's text; `null` if it is not a bid (empty, truncated, garbage). */
export function parseBid(text: string): Bid | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const { PID, CREATED, TICKS, host, ns, acquiredAt, isolate, beacon } = value as Record<
    string,
    unknown
  >;
  if (!Number.isSafeInteger(PID) || (PID as number) <= 0) return null;
  if (typeof CREATED !== "number" || !Number.isFinite(CREATED)) return null;
  return {
    PID: PID as number,
    CREATED,
    ...(Number.isSafeInteger(TICKS) ? { TICKS: TICKS as number } : {}),
    ...(typeof host === "string" ? { host } : {}),
    ...(typeof ns === "string" ? { ns } : {}),
    ...(typeof acquiredAt === "number" ? { acquiredAt } : {}),
    ...(typeof isolate === "string" ? { isolate } : {}),
    ...(typeof beacon === "string" ? { beacon } : {}),
  };
}

/**
 * Writes a bid (`text`, a {@link Bid} in JSON) so that no reader ever sees it
 * half-written: the content goes
 * to a temp name without the `.json` suffix (invisible to checkers, ours and
 * Python's), then is renamed into place in one atomic step.
 */
export async function writeBid(
  runtime: Runtime,
  folder: string,
  id: string,
  text: string,
): Promise<string> {
  const path = joinPath(folder, `${id}.json`);
  const temp = joinPath(folder, `.${id}.tmp`);
  await writeNewFile(runtime, temp, text, 0o600);
  await runtime.rename(temp, path);
  return path;
}

/** Lists the bids in `folder` (files ending in `.json`), except `skipId`. */
export async function readBids(
  runtime: Runtime,
  folder: string,
  skipId: string | null,
): Promise<FoundBid[]> {
  const names = await runtime.readDir(folder);
  const found: FoundBid[] = [];
  for (const name of names) {
    if (!name.endsWith(".json")) {
      if (TEMP_FILE.test(name)) await removeOldTemp(runtime, joinPath(folder, name));
      continue;
    }
    const id = name.slice(0, -5);
    if (id === skipId) continue;
    const path = joinPath(folder, name);
    try {
      // Only regular files are read: reading a FIFO can block forever, a symlink
      // points elsewhere. Neither is a bid; a directory cannot even become one.
      const stat = await runtime.lstat(path);
      if (stat.isDirectory) continue;
      if (!stat.isFile) {
        found.push({ id, path, bid: null });
        continue;
      }
      found.push({ id, path, bid: parseBid(await runtime.readFile(path)) });
    } catch (error) {
      // Withdrawn between listing and reading: not a bid any more.
      if (errorCode(error) === "ENOENT") continue;
      // A directory, an unreadable entry or one too large (unread: over
      // 64 KiB) named *.json is not a bid.
      const code = errorCode(error);
      if (code === "EISDIR" || code === "EACCES" || code === "EFBIG") {
        found.push({ id, path, bid: null });
        continue;
      }
      throw error;
    }
  }
  return found;
}

// A file on its way: `writeBid`'s temp name, or the fencing counter's
// (`.token.<uuid>.tmp`, fencing_token.ts). A writer that crashed between
// writing one and renaming it into place left it; nothing else would ever
// remove it.
const TEMP_FILE = /^\.(token\.)?[0-9a-f-]{36}\.tmp$/;

/** Removes a bid file; a bid already gone is not an error. */
export function removeBid(runtime: Runtime, path: string): Promise<void> {
  return runtime.remove(path).catch(unlessGone);
}

function unlessGone(error: unknown): void {
  if (errorCode(error) !== "ENOENT") throw error;
}
