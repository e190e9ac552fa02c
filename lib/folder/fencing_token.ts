/**
 * The folder kind's fencing token: a counter file in the lock folder,
 * advanced only by the holder, so no two holders ever race on it.
 *
 * @module
 */

import { writeNewFile } from "../_write_new_file.ts";
import { errorCode, type Runtime } from "../runtime/mod.ts";
import { joinPath } from "../dirs.ts";

/** The counter's file name: not `*.json`, so lockfolder peers ignore it. */
export const TOKEN_FILE = "token";

/** The counter's width: zero-padded digits, enough for every safe integer. */
const WIDTH = 16;
const COUNTER = /^\d{1,16}$/;

/**
 * Advances the folder's counter and returns the new token. Call only while
 * holding the lock: only the holder writes, and the next holder reads after
 * this one's release, so nobody reads mid-write.
 *
 * The counter is rewritten in place, always 16 digits, so each write covers
 * every byte of the last one: a single 16-byte write that a crash cannot
 * tear, with no new inode and no rename over the file (which makes ext4
 * flush, ~0.3 ms). A file that is not such a counter (missing, garbage,
 * longer) is replaced whole through a temp name and a rename instead.
 */
export async function nextFencingToken(runtime: Runtime, folder: string): Promise<number> {
  const path = joinPath(folder, TOKEN_FILE);
  let text: string | null = null;
  let next = 0;
  try {
    await runtime.updateFile(path, (current) => {
      text = current;
      if (!COUNTER.test(current)) return null;
      next = nextAfter(current);
      return String(next).padStart(WIDTH, "0");
    });
    if (next > 0) return next;
  } catch (error) {
    // A counter read but not writable in place (a FIFO planted there, kept
    // full of digits: ESPIPE, which Deno reports without a code) is replaced
    // whole below, going on from what was read.
    if (errorCode(error) !== "ENOENT" && next === 0) throw error;
  }
  next = nextAfter(text);
  const temp = joinPath(folder, `.${TOKEN_FILE}.${crypto.randomUUID()}.tmp`);
  await writeNewFile(runtime, temp, String(next).padStart(WIDTH, "0"), 0o600);
  await runtime.rename(temp, path);
  return next;
}

// One above the counter `text` holds; 1 if it holds none.
function nextAfter(text: string | null): number {
  const parsed = text === null ? NaN : Number.parseInt(text, 10);
  return (Number.isSafeInteger(parsed) && parsed > 0 ? parsed : 0) + 1;
}
