// Temp files that writers killed between writing and renaming (or linking)
// them leave behind. Both local file kinds sweep theirs by one rule: a
// regular file older than a grace that no live writer takes, never followed.

import type { Runtime } from "./runtime/mod.ts";

/** How old a temp file must be to be a crashed writer's, not one still being written, ms. */
export const TEMP_GRACE_MS = 5_000;

/**
 * Removes `path` if it is a regular file older than {@link TEMP_GRACE_MS}.
 * Best effort: it never throws.
 *
 * @param runtime The runtime adapter.
 * @param path A temp file name of ours.
 */
export async function removeOldTemp(runtime: Runtime, path: string): Promise<void> {
  try {
    const stat = await runtime.lstat(path);
    if (stat.isFile && runtime.now() - stat.mtimeMs > TEMP_GRACE_MS) await runtime.remove(path);
  } catch {
    // Linked, renamed or removed meanwhile, or not ours to remove: nothing left to sweep.
  }
}
