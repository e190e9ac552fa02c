// Creating a new private file without leaving debris when the disk is full:
// open(O_CREAT | O_EXCL) can succeed and the write then fail with ENOSPC,
// which leaves an empty file behind. Our temp names are unique, so a file at
// `path` after a failure other than EEXIST is our own half-written one.

import { errorCode, type Runtime } from "./runtime/mod.ts";

/**
 * Creates `path` exclusively with `data`; on failure removes what the failed
 * write may have left, then rethrows.
 *
 * @param runtime The runtime adapter.
 * @param path A file name nobody else uses (a temp name with a random part).
 * @param data The file's text.
 * @param mode Its permission bits.
 * @throws The write's own error (`EEXIST`, `ENOSPC`, ...).
 */
export async function writeNewFile(
  runtime: Runtime,
  path: string,
  data: string,
  mode: number,
): Promise<void> {
  try {
    await runtime.writeFileExclusive(path, data, mode);
  } catch (error) {
    if (errorCode(error) !== "EEXIST") {
      await runtime.remove(path).catch(() => {});
    }
    throw error;
  }
}
