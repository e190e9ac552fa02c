// Synchronous file reads and writes over node:fs, shared by the three
// adapters (Deno's node:fs passes open(2) flags through, which Deno.open
// cannot). Each is the fewest system calls for the job: open, one read into
// a reused buffer, close — where readFileSync adds an fstat, a seek and a
// second read to find the end — and open, write, close, without the
// truncate Bun's writeFileSync adds or the chmod Deno's adds.

import * as fs from "node:fs";
import { dirname } from "node:path";
import { errorCode } from "./types.ts";

// O_NONBLOCK: a FIFO planted where a lock file belongs reads as empty
// (garbage) instead of blocking the whole event loop in open(); it changes
// nothing for regular files.
const READ_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);
// Read, then written in place: no O_TRUNC (truncating, like renaming over a
// file, makes ext4 flush the new data at close), no new inode, and no
// O_CREAT (a missing file is the caller's to create). O_NOFOLLOW: a symlink
// fails with ELOOP instead of having its target overwritten.
const UPDATE_FLAGS = fs.constants.O_RDWR | (fs.constants.O_NONBLOCK ?? 0) |
  (fs.constants.O_NOFOLLOW ?? 0);
const EXCLUSIVE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;

// Lock files, bids, keys and /proc stat lines are far smaller: one read.
const scratch = new Uint8Array(16 * 1024);
// What writeAt writes, encoded: as far above what it writes.
const output = new Uint8Array(16 * 1024);
// ignoreBOM: keep a BOM as readFileSync does, so text compares byte for byte.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const encoder = new TextEncoder();

/**
 * The largest file {@link readTextSync} reads without `untilEnd`. Every
 * file it is for is under 1 KiB (a lock file, a bid, the key, a token file);
 * this is far above them all, yet reading it costs microseconds. A file past
 * it is not ours: another user can plant a sparse or growing one of any size
 * at a path in the shared temp dir, and reading it whole would take our
 * memory and time.
 */
const MAX_TEXT_BYTES = 64 * 1024;

/**
 * Reads a whole file as UTF-8 (a FIFO reads as whatever is there, without
 * blocking). `untilEnd`: read on until a read returns nothing, as a /proc
 * table needs (its reads come short before the end); a regular file ends at
 * its first short read. Throws `EFBIG` for a file over
 * {@link MAX_TEXT_BYTES}, having read one buffer past it at most, unless
 * `untilEnd` (only for the kernel's /proc tables, which no user can plant).
 */
export function readTextSync(path: string, untilEnd = false): string {
  const fd = fs.openSync(path, READ_FLAGS);
  try {
    let n = readOrEmpty(fd);
    if (n < scratch.length && (!untilEnd || n === 0)) {
      return decoder.decode(scratch.subarray(0, n));
    }
    const parts = [scratch.slice(0, n)];
    let size = n;
    while ((n = readOrEmpty(fd)) > 0) {
      size += n;
      if (size > MAX_TEXT_BYTES && !untilEnd) throw tooLarge(path);
      parts.push(scratch.slice(0, n));
    }
    const whole = new Uint8Array(size);
    let at = 0;
    for (const part of parts) {
      whole.set(part, at);
      at += part.length;
    }
    return decoder.decode(whole);
  } finally {
    fs.closeSync(fd);
  }
}

function tooLarge(path: string): Error {
  return Object.assign(
    new Error(
      `EFBIG: ${path} is over ${MAX_TEXT_BYTES} bytes, no small file as expected; not read`,
    ),
    { code: "EFBIG" },
  );
}

/**
 * Reads a small file (its first 16 KB) and, if `update` returns text, writes
 * that at its start without truncating it, all through one open (two system
 * calls fewer than a read and a write). Throws `ENOENT` if it is missing.
 * Returns the text read.
 */
export function updateSync(path: string, update: (text: string) => string | null): string {
  const fd = fs.openSync(path, UPDATE_FLAGS);
  let text: string;
  let next: string | null;
  try {
    text = decoder.decode(scratch.subarray(0, readOrEmpty(fd)));
    next = update(text);
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
  if (next === null) fs.closeSync(fd);
  else writeAt(fd, next); // and closes it
  return text;
}

// Bytes read from the fd (into `scratch`); a FIFO with nothing in it (held
// open for writing by us, or by whoever planted it) reads as its end
// rather than EAGAIN.
function readOrEmpty(fd: number): number {
  try {
    return fs.readSync(fd, scratch, 0, scratch.length, null);
  } catch (error) {
    if (errorCode(error) === "EAGAIN") return 0;
    throw error;
  }
}

/**
 * Creates `path` with `data`; throws `EEXIST` if it exists. The mode is
 * `mode` less the umask, which only ever takes bits away (0600 stays private).
 */
export function createExclusiveSync(path: string, data: string, mode: number): void {
  writeAt(fs.openSync(path, EXCLUSIVE_FLAGS, mode), data);
}

function writeAt(fd: number, data: string): void {
  try {
    // Into a reused buffer: encode() allocates one per call, which costs
    // more than the write. Only a text too long for it gets its own.
    const { read, written } = encoder.encodeInto(data, output);
    const whole = read === data.length;
    const bytes = whole ? output : encoder.encode(data);
    const length = whole ? written : bytes.length;
    let at = 0;
    while (at < length) at += fs.writeSync(fd, bytes, at, length - at, at);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Creates a directory and its missing parents (`mode` for each made), as
 * `mkdirSync(path, { recursive: true })` does, except that Node's loops
 * forever, blocking the process, where mkdir says ENOENT under a parent that
 * exists (a path under /proc). Here that ENOENT is thrown.
 */
export function mkdirTreeSync(path: string, mode: number): void {
  const missing: string[] = [];
  for (let at = path;;) {
    try {
      fs.mkdirSync(at, { mode });
    } catch (error) {
      const code = errorCode(error);
      // What is there (a directory, or a file the caller will refuse) ends the climb.
      if (code === "EEXIST") break;
      const parent = dirname(at);
      if (code !== "ENOENT" || parent === at) throw error;
      missing.push(at);
      at = parent;
      continue;
    }
    break;
  }
  for (const dir of missing.reverse()) {
    try {
      fs.mkdirSync(dir, { mode });
    } catch (error) {
      // Made meanwhile by another process: fine.
      if (errorCode(error) !== "EEXIST") throw error;
    }
  }
}
