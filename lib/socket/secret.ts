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
import { errorCode, type Runtime } from "../runtime/mod.ts";
import { joinPath, ownedByAnother } from "../dirs.ts";
import { LockPermissionError } from "../errors.ts";
import { randomHex } from "./handshake.ts";
import { removeIfExists } from "./lock_file.ts";

/** The key file's name: not `*.lock`, so no lock name can collide with it. */
export const KEY_FILE = "socketlock.key";

const KEY_TEXT = /^([0-9a-f]{64})\n?$/;

const cache = new WeakMap<Runtime, Map<string, Promise<Uint8Array>>>();

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (pair) => Number.parseInt(pair, 16));
}

async function readKey(runtime: Runtime, path: string): Promise<Uint8Array | null> {
  let stat;
  try {
    stat = await runtime.lstat(path);
  } catch (error) {
    if (errorCode(error) === "ENOENT") return null;
    throw error;
  }
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
  return fromHex(match[1]);
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

async function loadOrCreate(runtime: Runtime, dir: string): Promise<Uint8Array> {
  const path = joinPath(dir, KEY_FILE);
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
 * per process: a key file replaced while locks are held would make their
 * holders look like imposters, so do not delete it while locks are held.
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
 * @param fresh Read the file again (it may have been replaced: the directory
 *   was removed and made again), and keep what it holds now.
 * @returns The 32 key bytes.
 * @throws {LockPermissionError} If the key file is not a private key file of this user.
 */
export function loadSecret(
  runtime: Runtime,
  dir: string,
  fresh = false,
): Promise<Uint8Array> {
  let byDir = cache.get(runtime);
  if (!byDir) cache.set(runtime, byDir = new Map());
  let key = fresh ? undefined : byDir.get(dir);
  if (!key) {
    key = loadOrCreate(runtime, dir);
    key.catch(() => byDir.delete(dir));
    byDir.set(dir, key);
  }
  return key;
}
