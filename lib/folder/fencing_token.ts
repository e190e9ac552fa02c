/**
 * The folder kind's fencing token: a counter file in the lock folder,
 * advanced only by the holder, so no two holders ever race on it.
 *
 * @module
 */

import { errorCode, type Runtime } from "../runtime/mod.ts";
import { joinPath } from "../dirs.ts";

/** The counter's file name: not `*.json`, so lockfolder peers ignore it. */
export const TOKEN_FILE = "token";

/**
 * Advances the folder's counter and returns the new token. Call only while
 * holding the lock. Written to a temp name, then renamed, so a crash leaves
 * the old or the new value, never a torn one.
 */
export async function nextFencingToken(runtime: Runtime, folder: string): Promise<number> {
  const path = joinPath(folder, TOKEN_FILE);
  let current = 0;
  try {
    const parsed = Number.parseInt(await runtime.readFile(path), 10);
    if (Number.isSafeInteger(parsed) && parsed > 0) current = parsed;
  } catch (error) {
    if (errorCode(error) !== "ENOENT") throw error;
  }
  const next = current + 1;
  const temp = joinPath(folder, `.${TOKEN_FILE}.${crypto.randomUUID()}.tmp`);
  await runtime.writeFileExclusive(temp, String(next), 0o600);
  await runtime.rename(temp, path);
  return next;
}
