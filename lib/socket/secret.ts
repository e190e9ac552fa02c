/**
 * The per-user key holders prove they know: 32 random bytes in
 * `<lock dir>/socketlock.key`, mode 0600 in the 0700 lock directory, made by
 * whichever process needs it first. Every process of the user reads the same
 * key, so they can verify each other; other users cannot read it, so they
 * cannot forge an answer.
 *
 * @module
 */

import { writeNewFile } from "../_write_new_file.ts";
import { errorCode, type FileStat, type Runtime } from "../runtime/mod.ts";
import { joinPath, lstatIfExists, ownedByAnother } from "../dirs.ts";
import { LockPermissionError } from "../errors.ts";
import { randomHex } from "./handshake.ts";
import { removeIfExists } from "./lock_file.ts";

/** The key file's name: not `*.lock`, so no lock name can collide with it. */
export const KEY_FILE = "socketlock.key";

const KEY_TEXT = /^([0-9a-f]{64})\n?$/;

/** A key as read, and the identity of the file it was read from. */
interface LoadedKey {
  key: Uint8Array;
  file: FileStat;
  /** Read over {@link MTIME_GRAIN_MS} after the file's mtime: see `unchanged`. */
  settled: boolean;
}

/** A directory's key: its file, its loading, and what that loaded once it has. */
interface CachedKey {
  path: string;
  loading: Promise<LoadedKey>;
  loaded: LoadedKey | null;
}

/**
 * Far above any file system's timestamp granularity (Deno reports whole
 * ms; ext4 without fine-grained timestamps, a few ms; FAT, 2 s), in ms.
 */
const MTIME_GRAIN_MS = 2_500;

const cache = new WeakMap<Runtime, Map<string, CachedKey>>();

// Compares everything a replacement (a new file, a chmod, a chown, a
// rewrite) changes, field by field: spelling them as one string (a
// fractional mtime among them) took Node ~0.5 us on every release.
function sameFile(a: FileStat, b: FileStat): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size &&
    a.mtimeMs === b.mtimeMs && a.mode === b.mode && a.uid === b.uid;
}

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (pair) => Number.parseInt(pair, 16));
}

// The file's identity is taken before its text is read: a key replaced in
// between is read with the older identity, which the next check then finds
// changed. Never a new identity with an old key.
async function readKey(runtime: Runtime, path: string): Promise<LoadedKey | null> {
  const stat = await lstatIfExists(runtime, path);
  if (!stat) return null;
  if (
    stat.isSymlink || !stat.isFile || (stat.mode & 0o077) !== 0 || ownedByAnother(runtime, stat)
  ) {
    throw new LockPermissionError(
      `Key file ${path} is not a private file of yours (it must be a regular file, ` +
        `mode 0600, owned by you). Stop every process using this lock directory, ` +
        `then remove the file; a new key is made on next use.`,
    );
  }
  const match = KEY_TEXT.exec(await readKeyText(runtime, path));
  if (!match) {
    throw new LockPermissionError(
      `Key file ${path} does not hold a socketlock key. Stop every process using ` +
        `this lock directory, then remove the file; a new key is made on next use.`,
    );
  }
  return {
    key: fromHex(match[1]),
    file: stat,
    settled: runtime.now() - stat.mtimeMs > MTIME_GRAIN_MS,
  };
}

// A file too large to be a key (EFBIG: not read) holds no key either.
async function readKeyText(runtime: Runtime, path: string): Promise<string> {
  try {
    return await runtime.readFile(path);
  } catch (error) {
    if (errorCode(error) === "EFBIG") return "";
    throw error;
  }
}

async function loadOrCreate(runtime: Runtime, path: string): Promise<LoadedKey> {
  const existing = await readKey(runtime, path);
  if (existing) return existing;
  // Two first users race here: each writes a complete candidate under a
  // private name, and link() lets exactly one become the key. The loser
  // reads the winner's; nobody ever reads a half-written key.
  const temp = `${path}.${randomHex(16)}.tmp`;
  await writeNewFile(runtime, temp, `${randomHex(32)}\n`, 0o600);
  try {
    await runtime.link(temp, path);
  } catch (error) {
    if (errorCode(error) !== "EEXIST") throw error;
  } finally {
    await removeIfExists(runtime, temp);
  }
  const key = await readKey(runtime, path);
  if (!key) {
    throw new LockPermissionError(
      `Key file ${path} vanished while being created; something removes files ` +
        `in the lock directory. Stop it, or pass another { dir }.`,
    );
  }
  return key;
}

/**
 * The per-user key of lock directory `dir`, created on first use. Read once
 * per process (and checked where it must be current, see `fresh`): a key
 * file replaced while locks are held would make their holders look like
 * imposters, so do not delete it while locks are held.
 *
 * @example Load the key of a lock directory
 * ```ts
 * import { loadSecret } from "./secret.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const dir = await Deno.makeTempDir();
 * console.log((await loadSecret(runtime, dir)).length); // 32
 * ```
 *
 * @param runtime The runtime adapter.
 * @param dir The lock directory (0700, checked by the caller).
 * @param fresh Make sure the key is the file's current one (it may have been
 *   replaced: the directory was removed and made again): one lstat confirms
 *   the file read before; a changed file is read again, and kept.
 * @returns The 32 key bytes.
 * @throws {LockPermissionError} If the key file is not a private key file of this user.
 */
export async function loadSecret(
  runtime: Runtime,
  dir: string,
  fresh = false,
): Promise<Uint8Array> {
  let byDir = cache.get(runtime);
  if (!byDir) cache.set(runtime, byDir = new Map());
  const known = byDir.get(dir);
  if (known && !fresh) return (await known.loading).key;
  const loaded = known && (known.loaded ?? await known.loading.catch(() => null));
  if (loaded && await unchanged(runtime, known.path, loaded)) return loaded.key;
  const path = known?.path ?? joinPath(dir, KEY_FILE);
  const entry: CachedKey = {
    path,
    loading: loadOrCreate(runtime, path).then((fresh) => sameKeyAs(loaded, fresh)),
    loaded: null,
  };
  entry.loading.then((key) => {
    entry.loaded = key;
  }, () => {
    if (byDir.get(dir) === entry) byDir.delete(dir);
  });
  byDir.set(dir, entry);
  return (await entry.loading).key;
}

// A key read again (its file not yet settled, or changed) that holds the
// same bytes keeps the array it had: what is cached by that array (the
// breaker locks' keys, made by a SHA-1 in the thread pool) is found again.
function sameKeyAs(previous: LoadedKey | null | undefined, fresh: LoadedKey): LoadedKey {
  if (!previous || previous.key.length !== fresh.key.length) return fresh;
  for (let i = 0; i < fresh.key.length; i++) {
    if (previous.key[i] !== fresh.key[i]) return fresh;
  }
  return { ...fresh, key: previous.key };
}

// Whether the key file is still the one `loaded` was read from. Any error
// but a missing file is thrown: a key that cannot be confirmed is not used.
// A file made again (its directory removed and made again) mostly gets the
// inode just freed, the same size, mode and owner: only its mtime differs,
// and only if it was made at least one timestamp grain after the one read.
// That holds for any file made after a read that came a grain or more after
// its file's mtime (`settled`); a key read sooner is read again.
async function unchanged(runtime: Runtime, path: string, loaded: LoadedKey): Promise<boolean> {
  if (!loaded.settled) return false;
  const stat = await lstatIfExists(runtime, path);
  return stat !== null && sameFile(stat, loaded.file);
}
