/**
 * The socket kind as a lock target. One try: create the lock file
 * exclusively; if one exists, verify its holder by handshake; if the holder
 * is gone, break the file safely and try again. A verified holder's
 * connection is kept open, so a waiter wakes the moment it closes.
 *
 * @module
 */

import {
  type Connection,
  errorCode,
  type ProcessStart,
  type Runtime,
  type Timer,
} from "../runtime/mod.ts";
import { LockPermissionError } from "../errors.ts";
import type { Attempt, Grant, KindDriver, LockTarget } from "../_kind.ts";
import type { LockInfo } from "../types.ts";
import { ISOLATE_ID } from "../_isolate.ts";
import { foreignNamespaces } from "../_namespaces.ts";
import { FencingTokens } from "../_fencing_tokens.ts";
import { preciseWallClock } from "../_precise_wall_clock.ts";
import { cannotWriteIn, checkLockFile, ensureLockDir, forgetLockDir } from "../dirs.ts";
import { validateLockName } from "../names.ts";
import {
  type HmacKey,
  importHmacKey,
  keyFingerprint,
  probeAnswer,
  randomHex,
} from "./handshake.ts";
import {
  createLockFile,
  formatLockFile,
  lastToken,
  type LockPaths,
  lockPaths,
  type LockRecord,
  type OwnLockFile,
  parseLockFile,
  readIfExists,
  removeIfExists,
  retireLockFile,
  rewriteLockFile,
  sweepOldTemps,
} from "./lock_file.ts";
import { loadSecret } from "./secret.ts";
import { serveHolder, warmHolderServer } from "./holder_server.ts";
import { verifyHolder, watchCompatHolder } from "./verify_holder.ts";
import { breakerKey, breakStaleLock, holdBreakerLock } from "./break_stale_lock.ts";
import { resolveSocketSettings, type SocketSettings } from "./socket_settings.ts";
import { lazyWakeAttempt } from "../_lazy_wake.ts";
import { checkHeld, type HeldCheck, HeldCheckOnDemand, type HeldProbe } from "../_held_check.ts";

/** Bound on create/verify/break rounds in one try (each round changes the file). */
const MAX_ROUNDS = 4;

/** How long a holder whose release failed goes on answering, for a retry, ms. */
const RETRY_WINDOW_MS = 1_000;

/**
 * Python socketlock's release closes its listener before it unlinks its
 * file. A compat file whose holder refuses but whose pid lives is given this
 * long (ms) to vanish by itself, so we do not break it and then lose our own
 * new file to Python's unconditional unlink.
 */
const COMPAT_GRACE_MS = 2000;

/** How many refusing compat files (by path and text) are remembered for their grace. */
const MAX_GRACE_ENTRIES = 1024;

const encoder = new TextEncoder();

// When each compat file (by path and text) was first seen refusing with its
// pid alive, per runtime: shared by every target, so that the grace also
// ends for tryLock() and lock() calls, each of which opens a target afresh.
const graceSince = new WeakMap<Runtime, Map<string, number>>();

function inGrace(runtime: Runtime, file: string, text: string): boolean {
  let seen = graceSince.get(runtime);
  if (!seen) graceSince.set(runtime, seen = new Map());
  const now = runtime.monotonic();
  const key = `${file}\0${text}`;
  let since = seen.get(key);
  if (since === undefined) {
    // Bounded by count, not by age: a grace must end for tries spaced
    // further apart than it, however far. The oldest sighting goes first.
    if (seen.size >= MAX_GRACE_ENTRIES) seen.delete(seen.keys().next().value!);
    seen.set(key, since = now);
  }
  return now - since < COMPAT_GRACE_MS;
}

// A pid's start time, or null where it cannot be told: asked only where this
// process could read its own namespaces, that is where /proc is readable
// (Linux; Deno only with -A, and asking without it could stop a lock at a
// permission prompt in a terminal). Elsewhere only the pid's existence is
// known, as before. An error is "cannot tell", never a reason to break.
async function startOf(runtime: Runtime, pid: number): Promise<ProcessStart | null> {
  if (runtime.namespaceId() === null) return null;
  try {
    return await runtime.startTime(pid);
  } catch {
    return null;
  }
}

// This process's start, recorded in its lock files; read once per runtime.
const ownStarts = new WeakMap<Runtime, Promise<ProcessStart | null>>();

function ownStart(runtime: Runtime): Promise<ProcessStart | null> {
  let started = ownStarts.get(runtime);
  if (!started) ownStarts.set(runtime, started = startOf(runtime, runtime.pid));
  return started;
}

/**
 * Whether the live pid `record.pid` (of our pid namespace) provably belongs to
 * another process than the holder that wrote `record`: its pid was reused.
 * Only by the start ticks the file records (exact, and not moved by clock
 * steps). A file without them (Python's) is not judged by start time: a
 * start in epoch seconds moves with every step of the wall clock since, so
 * a live holder started before a step forward would look younger than its
 * lock, and be broken. False wherever start times cannot be read.
 */
async function pidReused(runtime: Runtime, record: LockRecord): Promise<boolean> {
  if (record.startTicks === undefined) return false;
  // From another time namespace we read its ticks shifted: never comparable.
  if (foreignNamespaces(record.ns, runtime.namespaceId()).time) return false;
  const started = await startOf(runtime, record.pid);
  return started !== null && started.ticks !== record.startTicks;
}

interface Keys {
  /** The HMAC key; null in compat mode. */
  key: HmacKey | null;
  /** Its public fingerprint. */
  keyId?: string;
  /** The exact answer to Python's probe (compat mode only). */
  probe: string;
}

// Keys per key source (a directory's key file, or a seed), so that every
// lock() call does not pay for importing and fingerprinting them again.
const keyCache = new WeakMap<Runtime, Map<string, Promise<Keys>>>();

function forgetKeys(runtime: Runtime, s: SocketSettings): void {
  keyCache.get(runtime)?.delete(`dir:${s.dir}`);
}

function loadKeys(runtime: Runtime, s: SocketSettings): Promise<Keys> {
  if (s.compat) return Promise.resolve({ key: null, probe: probeAnswer(s.name, s.signatureSeed) });
  let bySource = keyCache.get(runtime);
  if (!bySource) keyCache.set(runtime, bySource = new Map());
  const source = s.signatureSeed !== undefined ? `seed:${s.signatureSeed}` : `dir:${s.dir}`;
  let keys = bySource.get(source);
  if (!keys) {
    keys = (async () => {
      const secret = s.signatureSeed !== undefined
        ? encoder.encode(s.signatureSeed)
        : await loadSecret(runtime, s.dir);
      const key = importHmacKey(secret);
      return { key, keyId: keyFingerprint(key), probe: "" };
    })();
    const cache = bySource;
    keys.catch(() => cache.delete(source));
    bySource.set(source, keys);
  }
  return keys;
}

// Lock files last seen held: the next try of such a lock reads first, so a
// waiter or a tryLock() on a held lock writes no temp file. Bounded; a lost
// hint only costs one failed create.
const busyHints = new Set<string>();

function hintBusy(file: string, busy: boolean): void {
  if (!busy) busyHints.delete(file);
  else if (busyHints.size < 1024) busyHints.add(file);
}

/**
 * A holder verified by handshake, and the connection it answered on. The
 * holder closes that connection when it releases (the OS does when it dies),
 * so while it is open and the lock file still holds the very bytes verified
 * (a fresh id per acquisition), the same holder still holds: a repeated
 * tryLock() or a waiter's next poll reads the file and needs no new
 * handshake. Once the connection closes, the next try verifies afresh.
 */
interface Verified {
  text: string;
  conn: Connection;
  closed: boolean;
  /** Called once the connection closes. */
  onClose: Set<() => void>;
}

/** Open verified connections kept per runtime, by lock file; bounded. */
const verifiedConns = new WeakMap<Runtime, Map<string, Verified>>();
const MAX_VERIFIED = 64;

function verifiedFor(runtime: Runtime, file: string, text: string): Verified | null {
  const found = verifiedConns.get(runtime)?.get(file);
  return found && !found.closed && found.text === text ? found : null;
}

function rememberVerified(
  runtime: Runtime,
  file: string,
  text: string,
  conn: Connection,
): Verified {
  let byFile = verifiedConns.get(runtime);
  if (!byFile) verifiedConns.set(runtime, byFile = new Map());
  const previous = byFile.get(file);
  byFile.delete(file);
  previous?.conn.close();
  // The oldest goes (its waiter, if any, wakes and verifies again).
  if (byFile.size >= MAX_VERIFIED) {
    const [oldest, entry] = byFile.entries().next().value!;
    byFile.delete(oldest);
    entry.conn.close();
  }
  const verified: Verified = { text, conn, closed: false, onClose: new Set() };
  byFile.set(file, verified);
  // Kept without keeping the process alive; a waiter's backoff timer does.
  conn.unref();
  conn.onClose(() => {
    verified.closed = true;
    if (byFile.get(file) === verified) byFile.delete(file);
    for (const notify of verified.onClose) notify();
    verified.onClose.clear();
  });
  return verified;
}

// Built key by key rather than with spreads of optional parts, which cost an
// acquisition a temporary object and a copy each; the keys keep their order.
function infoOf(record: LockRecord, s: SocketSettings, paths: LockPaths): LockInfo {
  const info: LockInfo = {
    kind: "socket",
    name: s.name,
    pid: record.pid,
    host: record.host,
    acquiredAt: record.acquiredAt,
  };
  if (record.token !== undefined) info.token = record.token;
  info.port = record.port;
  if (record.isolate) info.isolate = record.isolate;
  info.file = paths.file;
  return info;
}

// The holder's own info: as a contender sees it, and compat mode named.
function ownInfoOf(record: LockRecord, s: SocketSettings, paths: LockPaths): LockInfo {
  const info = infoOf(record, s, paths);
  if (s.compat) info.compat = "socketlock";
  return info;
}

// Temp files left by creators killed mid-create are swept at two moments
// that cost the hot paths (an uncontended acquire, a contended tryLock)
// nothing: a process's first try in a lock directory, which catches what
// earlier runs left; and right after breaking a stale lock, when a crash has
// just been seen. Never in compat mode: its directory is the shared temp
// dir, full of other users' files, and Python's peers write no temp files.
const sweptDirs = new WeakMap<Runtime, Set<string>>();

function firstTryIn(runtime: Runtime, dir: string): boolean {
  let dirs = sweptDirs.get(runtime);
  if (!dirs) sweptDirs.set(runtime, dirs = new Set());
  if (dirs.has(dir)) return false;
  dirs.add(dir);
  return true;
}

// Wall-clock microseconds: a token floor that needs no file read.
const tokens = new FencingTokens(preciseWallClock);

// The last lock file this process made, whose token (from `tokens`, and
// valid as every record made here is) needs no parse when the next
// acquisition finds it retired as `.last`.
let lastMade: OwnLockFile | undefined;

/**
 * A held socket lock. A class, not an object literal with a `lost` getter:
 * that gives every grant a hidden class of its own, made in the old
 * generation (see ../_lazy_wake.ts), and in a loop of lock and release each
 * one kept the grants after it from dying young, so that minor collections
 * copied and promoted every one of them.
 */
class SocketGrant implements Grant {
  readonly token: number;
  readonly info: LockInfo;
  readonly release: () => Promise<void>;
  #check: HeldCheck;

  constructor(token: number, info: LockInfo, check: HeldCheck, release: () => Promise<void>) {
    this.token = token;
    this.info = info;
    this.#check = check;
    this.release = release;
  }

  get lost(): AbortSignal {
    return this.#check.signal;
  }

  lostAlready(): boolean {
    return this.#check.lostAlready();
  }
}

/**
 * A socket-kind target with resolved settings.
 *
 * @example Try a socket lock once, below the public API
 * ```ts
 * import { socketTarget } from "./socket_target.ts";
 * import { resolveSocketSettings } from "./socket_settings.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const settings = await resolveSocketSettings(runtime, "x", { dir: await Deno.makeTempDir() });
 * const attempt = await socketTarget(runtime, settings).tryAcquire();
 * if (attempt.acquired) await attempt.grant.release();
 * ```
 *
 * @param runtime The runtime adapter.
 * @param s The resolved settings.
 * @returns The target.
 */
export function socketTarget(runtime: Runtime, s: SocketSettings): LockTarget {
  const paths = lockPaths(s.dir, s.name, s.compat, s.compat ? runtime.uid() : null);
  let keys: Promise<Keys> | null = null;
  const ready = () =>
    keys ??= loadKeys(runtime, s).catch((error) => {
      keys = null;
      throw error;
    });
  // The directory's secret (whatever signatureSeed says) names the breaker
  // lock, so every process sharing the directory agrees on it and no other
  // user can bind it. Before each break and release one lstat confirms the
  // key file is the one read (a changed file is read again): a process that
  // made the directory again after it was removed wrote a new key there.
  // Compat mode has no secret: the lock file's path names it, the same for
  // every user who can remove that file (see breakerKey).
  const breaker = async () =>
    s.compat
      ? breakerKey(runtime, s.name, null, s.dir)
      : breakerKey(runtime, s.name, await loadSecret(runtime, s.dir, true));

  async function readLock(): Promise<string | null> {
    // A symlink, FIFO or device where the lock file belongs is refused, not
    // read: reading a FIFO can block forever, and a link would have us judge some
    // other file as this lock. In compat mode's shared temp dir another user
    // could plant one; in our own directory a stray one would still hang us.
    if (!(await checkLockFile(runtime, paths.file))) return null;
    try {
      return await readIfExists(runtime, paths.file);
    } catch (error) {
      if (errorCode(error) !== "EISDIR") throw error;
      throw new LockPermissionError(
        `Lock file ${paths.file} is a directory, so lock "${s.name}" can never be taken. ` +
          `Remove it if nothing needs it, or pass another { dir }.`,
      );
    }
  }

  async function create(k: Keys): Promise<Grant | null> {
    const id = randomHex(16);
    const served = await serveHolder(
      runtime,
      // Our keyed locks answer Python's probe with its public default: with a
      // seed, the answer would be a hash of the HMAC key for anyone to test
      // guesses against.
      { name: s.name, id, key: k.key, seed: s.compat ? s.signatureSeed : undefined },
      s.compat,
    );
    let record: LockRecord;
    try {
      const namespaces = runtime.namespaceId();
      const started = await ownStart(runtime);
      // Every key present, those unknown undefined (which the file leaves
      // out): one shape, and no spreads of optional parts to copy.
      record = {
        pid: runtime.pid,
        port: served.port,
        acquiredAt: runtime.now(),
        host: runtime.hostname(),
        ns: namespaces || undefined,
        name: s.name,
        id,
        token: tokens.next(),
        keyId: k.keyId || undefined,
        isolate: ISOLATE_ID,
        startTicks: started?.ticks,
      };
    } catch (error) {
      // A permission refused (Deno), or no token left: nothing was created.
      await served.stop();
      throw error;
    }
    let text = formatLockFile(record, s.compat);
    let linked = false;
    try {
      const { created, cleanup } = await createLockFile(runtime, paths, text, id);
      linked = created;
      const [, last] = await Promise.all([
        cleanup,
        created ? lastToken(runtime, paths, lastMade) : 0,
      ]);
      if (!created) {
        await served.stop();
        return null;
      }
      // A holder that came and went since our clock reading: outgrow its
      // token. Issued by `tokens` too, which so stays above every token this
      // process handed out, whatever a later `.last` says (one planted, or
      // one we could not replace): never the same or a lower token twice.
      if (last >= record.token!) {
        record.token = tokens.next(last);
        const grown = formatLockFile(record, s.compat);
        // A rename replaces whatever file is in place: ours only while no
        // breaker can act (a maxAge break, had we stalled) and the file is
        // still ours. Its temp file swept while we stalled, or the file no
        // longer ours: withdrawn (if ours) as if never created, and the
        // caller tries afresh.
        const rewritten = await whileOurs(text, () => rewriteLockFile(runtime, paths, grown, id));
        if (rewritten !== true) {
          if (rewritten === false) await withdrawFile(text);
          await served.stop();
          return null;
        }
        text = grown;
      }
    } catch (error) {
      // Removed, not retired to `.last`: its token was never handed out, and
      // may be below the one there.
      if (linked) await withdrawFile(text).catch(() => {});
      await served.stop();
      throw error;
    }
    lastMade = { text, token: record.token! };
    let stopLater: Timer | null = null;
    // Our file removed or replaced (its directory removed, a maxAge break)
    // means another process may hold the lock now.
    const check = new HeldCheckOnDemand(() =>
      checkHeld(runtime, s.name, () => probeOwnFile(text), lostWhy)
    );
    // A release that failed goes on answering for RETRY_WINDOW_MS, so that
    // contenders do not break the file under a retry; then it stops (no
    // retry may ever come: withLock and `await using` make none), and the
    // next contender breaks the file. Like every release, a retry works
    // under the breaker lock.
    return new SocketGrant(record.token!, ownInfoOf(record, s, paths), check, async () => {
      // Stopped first: the file we are about to retire is not a lost lock.
      check.stop();
      try {
        await releaseFile(text);
      } catch (error) {
        stopLater ??= runtime.setTimer(() => void served.stop(), RETRY_WINDOW_MS);
        stopLater.unref();
        return unwritableDir(error); // throws
      }
      stopLater?.clear();
      await served.stop();
    });
  }

  // Whether the lock file still holds `text`, ours; "unknown" if it cannot be read.
  async function probeOwnFile(text: string): Promise<HeldProbe> {
    try {
      return (await readIfExists(runtime, paths.file)) === text ? "held" : "gone";
    } catch {
      return "unknown";
    }
  }

  const lostWhy = `its lock file ${paths.file} was removed or replaced (the lock directory ` +
    `removed — a logout's cleanup of $XDG_RUNTIME_DIR, tmpfiles cleaning /tmp, rm — or ` +
    `the file broken: a maxAge break), so another process may hold the lock now`;

  // A directory we may not write (a read-only file system, no permission):
  // a LockPermissionError that says so, as the folder kind's.
  function unwritableDir(error: unknown): never {
    throw cannotWriteIn("lock directory", s.dir, error);
  }

  async function createInDir(k: Keys): Promise<Grant | null> {
    try {
      return await create(k);
    } catch (error) {
      // The lock directory was removed while in use (a logout cleans
      // $XDG_RUNTIME_DIR): make it again, once. Compat mode's is the temp dir.
      // (A temp file swept while we stalled is no ENOENT here: createLockFile
      // reports it as not created.)
      if (errorCode(error) !== "ENOENT" || s.compat) throw error;
      forgetLockDir(s.dir);
      await ensureLockDir(runtime, s.dir);
      // Its key file went with it: a new one, which later processes will
      // read too, answers our handshakes from now on.
      if (s.signatureSeed === undefined) {
        await loadSecret(runtime, s.dir, true);
        forgetKeys(runtime, s);
        keys = null;
        k = await ready();
      }
      return await create(k);
    }
  }

  /**
   * Runs `act` if the lock file still holds `text`, under the breaker lock:
   * no breaker is between its re-read and its removal then (a maxAge break
   * of ours, had we stalled that long), and no newcomer can create a file
   * while ours is in place. Resolves with what `act` did, or undefined if the
   * file is not ours or the breaker lock stayed taken: a breaker may have
   * re-read our file as stale and be about to remove whatever is there, so
   * ours stays, and once we stop answering the next contender breaks it.
   * Without the breaker lock's key (its file made unreadable) it throws and
   * touches nothing: unguarded, a stall between the re-read and `act` could
   * let us remove a newcomer's file.
   */
  async function whileOurs<T>(text: string, act: () => Promise<T>): Promise<T | undefined> {
    let key: string;
    try {
      key = await breaker();
    } catch (error) {
      // The lock directory removed (a logout, a tmp cleaner) took our file
      // with it, and its key cannot be made there again: nothing of ours is
      // left to act on, and a file with our fresh id never comes back.
      if (errorCode(error) === "ENOENT" && (await readIfExists(runtime, paths.file)) !== text) {
        return undefined;
      }
      throw error;
    }
    const unlock = await holdBreakerLock(runtime, key);
    if (!unlock) return undefined;
    try {
      return (await readIfExists(runtime, paths.file)) === text ? await act() : undefined;
    } finally {
      await unlock();
    }
  }

  // A file we created but cannot keep. Left in place if the breaker lock
  // stays taken: we stop answering, and the next contender breaks it.
  async function withdrawFile(text: string): Promise<void> {
    await whileOurs(text, () => removeIfExists(runtime, paths.file));
  }

  // Only our own file is taken away: if it was broken (maxAge) and someone
  // else holds the name now, their file stays. Always under the breaker
  // lock: a maxAge breaker (of any process) may break our file whenever it
  // is old enough, and a stall of ours between the re-read and the rename
  // can make any hold that old, so without it a breaker could break our
  // file and a newcomer create its own between them, and we would retire
  // the newcomer's file.
  async function releaseFile(text: string): Promise<void> {
    await whileOurs(text, () => retireLockFile(runtime, paths));
  }

  function busy(record: LockRecord, verified: Verified | null): Attempt {
    const holder = infoOf(record, s, paths);
    if (verified) {
      let cool: (() => void) | null = null;
      let released: (() => void) | null = null;
      return lazyWakeAttempt(
        holder,
        () => {
          // Our own listener opens now, not after the hand-off.
          cool = warmHolderServer(runtime);
          return new Promise<void>((resolve) => {
            released = () => {
              // The holder let go (or died): the next try creates first
              // rather than reading a file most likely gone.
              hintBusy(paths.file, false);
              resolve();
            };
            if (verified.closed) released();
            else verified.onClose.add(released);
          });
        },
        // The connection stays open for the next try.
        () => {
          if (released) verified.onClose.delete(released);
          cool?.();
        },
      );
    }
    if (!s.compat) return { acquired: false, holder };
    // Opened only when the caller waits, so tryLock() pays no connect.
    let watch: ReturnType<typeof watchCompatHolder> | null = null;
    return lazyWakeAttempt(
      holder,
      () => (watch = watchCompatHolder(runtime, record.port, s.handshakeTimeout)).wake,
      () => watch?.cancel(),
    );
  }

  /** Busy (with the attempt to return), or stale (with nothing to add). */
  async function judge(k: Keys, text: string, breakLive: boolean): Promise<Attempt | null> {
    const record = parseLockFile(text);
    if (!record) return null;
    // The socket kind is for one host: a file from another host (a shared
    // file system) cannot be verified here, so it is never broken here. Nor
    // is one from a container sharing the directory and the host name, as
    // far as its namespaces hide it: its 127.0.0.1 (then only its pid's
    // death can prove it gone), or its pid (then only its port can).
    if (record.host && record.host !== runtime.hostname()) return busy(record, null);
    const foreign = foreignNamespaces(record.ns, runtime.namespaceId());
    // Alive as far as we can tell: a pid in another namespace is not ours to
    // check. Ours proves the holder gone if it no longer exists or (Linux) its
    // start ticks differ from those the file records: a dead holder's reused
    // pid must not keep its lock busy for good.
    const alive = async () =>
      foreign.pid || (runtime.isAlive(record.pid) && !(await pidReused(runtime, record)));
    if (foreign.net) return await alive() ? busy(record, null) : null;
    if (breakLive && s.maxAge !== undefined && runtime.now() - record.acquiredAt > s.maxAge) {
      return null;
    }
    // Written by a process with another key (signatureSeed): its answer
    // cannot be checked, so only its death (or its pid reused) counts.
    if (k.keyId && record.keyId && record.keyId !== k.keyId) {
      return await alive() ? busy(record, null) : null;
    }
    const known = verifiedFor(runtime, paths.file, text);
    if (known) return busy(record, known);
    const verdict = await verifyHolder(runtime, record, {
      name: s.name,
      key: k.key,
      probe: k.probe,
      timeout: s.handshakeTimeout,
    });
    if (verdict.live) {
      return busy(
        record,
        verdict.conn && rememberVerified(runtime, paths.file, text, verdict.conn),
      );
    }
    // A silent holder may be alive with a busy event loop (the kernel still
    // accepts for it): only a pid that is gone (or reused) proves it dead.
    if (verdict.silent && await alive()) return busy(record, null);
    if (s.compat && await alive() && inGrace(runtime, paths.file, text)) return busy(record, null);
    return null;
  }

  return {
    key: `socket:${paths.file}`,
    async tryAcquire(): Promise<Attempt> {
      const k = await ready().catch(unwritableDir);
      if (!s.compat && firstTryIn(runtime, s.dir)) await sweepOldTemps(runtime, s.dir);
      for (let round = 0; round < MAX_ROUNDS; round++) {
        if (!busyHints.has(paths.file)) {
          const grant = await createInDir(k).catch(unwritableDir);
          if (grant) return { acquired: true, grant };
        }
        hintBusy(paths.file, false);
        const text = await readLock();
        if (text === null) continue;
        const held = await judge(k, text, true);
        if (held) {
          hintBusy(paths.file, true);
          return held;
        }
        const outcome = await breaker()
          .then((key) => breakStaleLock(runtime, paths, key, text))
          .catch(unwritableDir);
        // Someone else is breaking it this very moment; they will take it.
        if (outcome === "contended") return { acquired: false, holder: null };
        if (outcome === "broken" && !s.compat) await sweepOldTemps(runtime, s.dir);
      }
      return { acquired: false, holder: null };
    },
    async inspect() {
      const k = await ready().catch(unwritableDir);
      const text = await readLock();
      if (text === null) return null;
      const held = await judge(k, text, false);
      if (!held || held.acquired) return null;
      held.cancelWake?.();
      return held.holder;
    },
  };
}

/**
 * The socket kind for `lock(name, { kind: "socket" })`: file `<dir>/<name>.lock`
 * (`.<name>.lock` in compat mode).
 *
 * @example Open a target through the driver
 * ```ts
 * import { socketDriver } from "./socket_target.ts";
 * import { runtime } from "../runtime/mod.ts";
 * const target = await socketDriver.open("x", { dir: await Deno.makeTempDir() }, runtime);
 * console.log(await target.inspect()); // null
 * ```
 */
export const socketDriver: KindDriver = {
  kind: "socket",
  async open(name, options, runtime) {
    validateLockName(name);
    return socketTarget(runtime, await resolveSocketSettings(runtime, name, options));
  },
};
