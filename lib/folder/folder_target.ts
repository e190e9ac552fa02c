/**
 * The folder kind as a lock target: one check-bid-check round per try, the
 * fencing token advanced once held, the bid checked while the holder watches
 * `held.signal`, and removed on release.
 *
 * @module
 */

import { type DirWatch, errorCode, type Runtime, type Timer } from "../runtime/mod.ts";
import type { Attempt, Grant, KindDriver, LockTarget } from "../_kind.ts";
import type { LockInfo } from "../types.ts";
import {
  cannotWriteIn,
  defaultLockDir,
  ensureLockDir,
  forgetLockDir,
  isLockDirChecked,
  joinPath,
} from "../dirs.ts";
import { validateLockName } from "../names.ts";
import { type FoundBid, removeBid } from "./bid.ts";
import { bidText, knownBidder, readBidder } from "./bidder.ts";
import { checkBidCheck, findLiveBid } from "./check_bid_check.ts";
import { nextFencingToken } from "./fencing_token.ts";
import { checkOwnBid } from "./own_bid_check.ts";
import { HeldCheckOnDemand } from "../_held_check.ts";
import { ISOLATE_ID } from "../_isolate.ts";
import { lazyWakeAttempt } from "../_lazy_wake.ts";

function infoFromBid(name: string, folder: string, found: FoundBid): LockInfo {
  const bid = found.bid!;
  return {
    kind: "folder",
    name,
    pid: bid.PID,
    host: bid.host ?? "",
    acquiredAt: bid.acquiredAt ?? bid.CREATED * 1000,
    ...(bid.isolate ? { isolate: bid.isolate } : {}),
    folder,
    bid: found.path,
  };
}

// Folders whose lock this runtime released last: its next try there bids
// before it checks (one CHECK fewer in a loop of lock and release). A wrong
// guess costs a bid and its withdrawal, never safety (check_bid_check.ts).
const releasedHere = new WeakMap<Runtime, Set<string>>();
// A process that locks many names keeps only this many guesses.
const MAX_GUESSES = 1024;

function guessFree(runtime: Runtime, folder: string): void {
  let folders = releasedHere.get(runtime);
  if (!folders) releasedHere.set(runtime, folders = new Set());
  if (folders.size >= MAX_GUESSES) folders.clear();
  folders.add(folder);
}

// The folder's own entries could not be read or written: a
// LockPermissionError where choosing another folder would fix it
// (ensureLockDir maps errors only when mkdir fails, and a folder that
// exists passes mkdir).
function unwritable(folder: string, error: unknown): unknown {
  return cannotWriteIn("lock folder", folder, error);
}

/** A check-bid-check target over an explicit folder (shared with lockfolder peers). */
export function folderTarget(runtime: Runtime, name: string, folder: string): LockTarget {
  let ready: Promise<unknown> | null = null;
  // Creates and checks the folder once. A failure is not kept: the next try
  // checks again, so a path fixed meanwhile works without a new target.
  const ensureFolder = () => {
    if (ready) return ready;
    const making: Promise<unknown> = ensureLockDir(runtime, folder).catch((error) => {
      if (ready === making) ready = null;
      throw error;
    });
    return ready = making;
  };
  return {
    key: `folder:${folder}`,
    async tryAcquire() {
      // Checked already (the usual case): no promise to wait for.
      if (!isLockDirChecked(folder)) await ensureFolder();
      const bidder = knownBidder(runtime) ?? await readBidder(runtime);
      const acquiredAt = runtime.now();
      const bid = bidText(bidder, acquiredAt);
      const checkFirst = !releasedHere.get(runtime)?.delete(folder);
      let result;
      try {
        result = await checkBidCheck(runtime, folder, bid, checkFirst);
      } catch (error) {
        // The folder was removed (or replaced by a file) while in use: check
        // it afresh and make it again, once.
        const code = errorCode(error);
        if (code !== "ENOENT" && code !== "ENOTDIR") throw unwritable(folder, error);
        forgetLockDir(folder);
        ready = null;
        await ensureFolder();
        result = await checkBidCheck(runtime, folder, bid).catch((again) => {
          throw unwritable(folder, again);
        });
      }
      if (!result.acquired) return busy(runtime, name, folder, result.holder);
      let token: number;
      try {
        token = await nextFencingToken(runtime, folder);
      } catch (error) {
        await removeBid(runtime, result.path);
        // The folder removed between the win and the token: nothing is
        // held; the next try (a waiting caller's) makes it again.
        const code = errorCode(error);
        if (code !== "ENOENT" && code !== "ENOTDIR") throw unwritable(folder, error);
        forgetLockDir(folder);
        ready = null;
        return { acquired: false, holder: null };
      }
      const info: LockInfo = {
        kind: "folder",
        name,
        pid: runtime.pid,
        host: bidder.host,
        acquiredAt,
        token,
        isolate: ISOLATE_ID,
        folder,
        bid: result.path,
      };
      return {
        acquired: true,
        grant: new FolderGrant(runtime, name, folder, result.path, token, info),
      };
    },
    async inspect() {
      try {
        const found = await findLiveBid(runtime, folder, null);
        return found ? infoFromBid(name, folder, found) : null;
      } catch (error) {
        if (errorCode(error) === "ENOENT") return null;
        throw unwritable(folder, error);
      }
    },
  };
}

/**
 * A held folder lock. Its `lost` signal, made only if the holder reads
 * `held.signal`, aborts if the bid is found gone (own_bid_check.ts).
 */
class FolderGrant implements Grant {
  readonly token: number;
  readonly info: LockInfo;
  #runtime: Runtime;
  #folder: string;
  #bid: string;
  #check: HeldCheckOnDemand;

  constructor(
    runtime: Runtime,
    name: string,
    folder: string,
    bid: string,
    token: number,
    info: LockInfo,
  ) {
    this.token = token;
    this.info = info;
    this.#runtime = runtime;
    this.#folder = folder;
    this.#bid = bid;
    this.#check = new HeldCheckOnDemand(() => checkOwnBid(runtime, name, bid));
  }

  get lost(): AbortSignal {
    return this.#check.signal;
  }

  lostAlready(): boolean {
    return this.#check.lostAlready();
  }

  async release(): Promise<void> {
    // Stopped first: the bid we are about to remove is not a lost lock.
    this.#check.stop();
    await removeBid(this.#runtime, this.#bid);
    guessFree(this.#runtime, this.#folder);
  }
}

/** How young a bid may be a contender's rather than a holder's, ms. */
const CONTENDER_MS = 5;

/**
 * A try that found `holder`'s live bid. A caller that waits watches the
 * folder and wakes when that bid goes (released, or cleared as stale),
 * rather than at its next poll: lockfolder's bids are the only signal there
 * is. Other bids coming and going (other waiters' tries) wake no one.
 */
function busy(runtime: Runtime, name: string, folder: string, holder: FoundBid): Attempt {
  const bidName = holder.path.slice(holder.path.lastIndexOf("/") + 1);
  // A bid made a moment ago may be a contender's in the middle of its own
  // check-bid-check, about to go: waking every waiter on that would have
  // them collide again and again. So such a bid is watched only once it is
  // CONTENDER_MS old, plus jitter; a waiter then finds a contender's bid
  // gone and tries again, or a holder's still there and watches it.
  const made = holder.bid?.acquiredAt;
  const settle = made === undefined ? 0 : CONTENDER_MS - (runtime.now() - made);
  let watch: DirWatch | null = null;
  let timer: Timer | null = null;
  return lazyWakeAttempt(
    infoFromBid(name, folder, holder),
    // Made only for a caller that waits (tryLock() never does).
    () =>
      new Promise<void>((resolve) => {
        const arm = () => {
          timer = null;
          watch = runtime.watchDir?.(folder, (changed) => changed === bidName && resolve()) ??
            null;
          // Gone before the watch began: no event will come.
          if (watch) runtime.lstat(holder.path).catch(() => resolve());
        };
        if (settle <= 0) return arm();
        // The waiting loop's own backoff timer keeps the process alive.
        timer = runtime.setTimer(arm, settle + Math.random() * CONTENDER_MS);
        timer.unref();
      }),
    () => {
      timer?.clear();
      watch?.close();
    },
  );
}

/** The folder kind for `lock(name, { kind: "folder" })`: folder `<dir>/<name>.folder`. */
export const folderDriver: KindDriver = {
  kind: "folder",
  async open(name, options, runtime) {
    validateLockName(name);
    const dir = options.dir ?? defaultLockDir(runtime);
    if (!isLockDirChecked(dir)) await ensureLockDir(runtime, dir);
    return folderTarget(runtime, name, joinPath(dir, `${name}.folder`));
  },
};
