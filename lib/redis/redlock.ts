/**
 * Redlock: one lock over several independent Redis masters, as in Redis'
 * published algorithm. A lock is held when a majority (the quorum) of
 * masters granted it within its validity time, less an allowance for clock
 * drift; every failed or finished attempt is undone on all masters.
 *
 * What it guarantees: while the masters keep their data and clocks run at
 * about the same rate (drift under 1%), at most one holder's lease is valid
 * at a time, and the lock survives the loss of a minority of masters. Each
 * holder's `signal` aborts when its lease ends without a quorum renewing it.
 *
 * What it does not: a master that restarts without its data (no `appendonly
 * yes` with `fsync always`, or a failover to a lagging replica) can grant a
 * lock a second time; a process paused longer than its lease, or a network
 * that delays its writes, can still act after its lock passed to another.
 * No lock service can prevent that last case by itself — which is why every
 * acquisition carries a fencing token: a token larger than any before it, so
 * the resource you protect can refuse writes carrying an older one.
 *
 * Tokens: each master gives `max(its counter + 1, its clock in µs)`; the
 * holder takes the largest of its quorum and writes it back to that quorum
 * before the lock is granted (and, best effort, to the counters of the
 * masters that answered but refused), so any later quorum, which shares a
 * master with it, counts on from above it. Tokens therefore grow with every
 * acquisition while the masters keep their counters. When masters lose them
 * (a restart with persistence off), a later quorum that shares with the
 * last one only masters that lost their counter starts again from its own
 * clocks, while the last token came from the *fastest* clock of the last
 * quorum: tokens then keep growing only while the masters' clocks agree to
 * within the time between the two acquisitions, and none steps back. No
 * scheme without persistent state can do better when a whole quorum
 * forgets. Redlock waiters do not queue in Redis: they wake on a release and
 * try again, with backoff; an attempt that got only a minority is undone
 * without telling anyone, so it wakes no waiter, itself included.
 *
 * @module
 */

import { type Runtime, runtime as defaultRuntime } from "../runtime/mod.ts";
import type { Attempt, LockTarget } from "../_kind.ts";
import type { HeldLock, LockInfo, RetryOptions } from "../types.ts";
import { acquire } from "../_acquire.ts";
import { LockBusyError, LockError } from "../errors.ts";
import { validateLockName } from "../names.ts";
import { adapterId, adaptRedisClient, type RedisAdapter } from "./client_adapter.ts";
import { heartbeatGrant, leaseFor, safeLeaseMs } from "./heartbeat.ts";
import { holderInfo, lockKeyFor, redisKeys, replyNumber } from "./key_layout.ts";
import {
  checkedToken,
  grantInfo,
  inspectRedis,
  scriptKeys,
  validateTtl,
  valueHead,
  wakeOnRelease,
} from "./redis_target.ts";
import {
  ACQUIRE,
  EXTEND,
  isCommandTimeout,
  type LuaScript,
  RAISE_COUNTER,
  RAISE_TOKEN,
  RELEASE,
  runScript,
  UNDO_ACQUIRE,
} from "./scripts.ts";

/** Everything one Redlock target needs. */
export interface RedlockSettings {
  /** One adapter per independent master. */
  adapters: readonly RedisAdapter[];
  /** The lock's name. */
  name: string;
  /** The lock's key, the same on every master. */
  key: string;
  /** The ttl in ms. */
  ttl: number;
}

// timedOut: no answer came, in our time or the client's own (its command
// timeout): the command may still run on that master, or run later.
type Settled =
  | { ok: true; value: unknown }
  | { ok: false; error: unknown; timedOut?: boolean };

/** One acquisition's acquire on each master, and what came of each in time. */
interface Sent {
  acquires: Promise<unknown>[];
  results: Settled[];
}

/**
 * Waits for `promise` at most `ms`; a master that does not answer in time
 * counts as failed.
 */
function settle(runtime: Runtime, promise: Promise<unknown>, ms: number): Promise<Settled> {
  return new Promise<Settled>((resolve) => {
    const timer = runtime.setTimer(
      () => resolve({ ok: false, error: new Error(`no answer within ${ms} ms`), timedOut: true }),
      ms,
    );
    timer.unref();
    promise.then(
      (value) => {
        timer.clear();
        resolve({ ok: true, value });
      },
      (error) => {
        timer.clear();
        resolve(
          isCommandTimeout(error) ? { ok: false, error, timedOut: true } : { ok: false, error },
        );
      },
    );
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Each adapter's server, by its `run_id`: null if INFO answers without one,
 * undefined while unknown (INFO failed or timed out: asked again after
 * {@link RUN_ID_RETRY_MS}).
 */
const runIds = new WeakMap<RedisAdapter, Promise<string | null | undefined>>();

/** How long a failed INFO leaves a master unchecked before it is asked again, ms. */
export const RUN_ID_RETRY_MS = 1_000;

/**
 * How long a master whose INFO did not answer within the per-master
 * timeout is left unchecked without being waited for, ms. Its INFO stays
 * asked: an answer that comes meanwhile is used from then on.
 */
const UNANSWERED_MS = 30_000;

const unansweredUntil = new WeakMap<RedisAdapter, number>();

function runIdOf(runtime: Runtime, adapter: RedisAdapter): Promise<string | null | undefined> {
  let id = runIds.get(adapter);
  if (!id) {
    const asked: Promise<string | null | undefined> = Promise.resolve()
      .then(() => adapter.send(["INFO", "server"]))
      .then((reply) => {
        const text = typeof reply === "string"
          ? reply
          : new TextDecoder().decode(reply as Uint8Array);
        return /^run_id:([0-9a-f]+)\s*$/m.exec(text)?.[1] ?? null;
      }, () => {
        // A connection error is no answer: cached for a moment, not for good.
        runtime.setTimer(() => {
          if (runIds.get(adapter) === asked) runIds.delete(adapter);
        }, RUN_ID_RETRY_MS).unref();
        return undefined;
      });
    runIds.set(adapter, id = asked);
  }
  return id;
}

/**
 * Refuses masters that are one server reached by two clients: it would
 * count twice toward the quorum. Servers whose INFO has no run_id go
 * unchecked, as do those that refuse INFO (an ACL), which are asked again
 * every {@link RUN_ID_RETRY_MS}, and those whose INFO does not answer in
 * time, not waited for again for {@link UNANSWERED_MS}. Resolves true once
 * every master answered; false while some did not, to be checked again at
 * the next try.
 */
async function distinctMasters(
  runtime: Runtime,
  adapters: readonly RedisAdapter[],
  ms: number,
): Promise<boolean> {
  const ids = await Promise.all(adapters.map(async (adapter) => {
    // A master whose INFO did not answer in time is not waited for again
    // for a while: each try of a wait would pay the timeout first.
    if ((unansweredUntil.get(adapter) ?? 0) > runtime.monotonic()) return undefined;
    const r = await settle(runtime, runIdOf(runtime, adapter), ms);
    if (r.ok) return r.value as string | null | undefined;
    unansweredUntil.set(adapter, runtime.monotonic() + UNANSWERED_MS);
    return undefined;
  }));
  const seen = new Set<string>();
  for (const id of ids) {
    if (!id) continue;
    if (seen.has(id)) {
      throw new LockError(
        `Redlock was given two clients of one Redis server (run_id ${id}): it would count ` +
          "twice toward the quorum. Pass one client per independent master.",
      );
    }
    seen.add(id);
  }
  return !ids.includes(undefined);
}

/**
 * A Redlock target over several masters.
 *
 * @param runtime The runtime adapter.
 * @param settings Masters, name, key, ttl.
 * @returns The target.
 * @throws {LockError} If no master is given.
 */
export function redlockTarget(runtime: Runtime, settings: RedlockSettings): LockTarget {
  const { adapters, name, key, ttl } = settings;
  const count = adapters.length;
  if (count === 0) {
    throw new LockError("Redlock needs at least one Redis client; use 3 or 5 independent masters.");
  }
  if (new Set(adapters).size !== count) {
    throw new LockError(
      "Redlock was given the same Redis client more than once: one master would count twice " +
        "toward the quorum. Pass one client per independent master.",
    );
  }
  const quorum = Math.floor(count / 2) + 1;
  const keys = redisKeys(key);
  const keyList = scriptKeys(keys);
  const lease = leaseFor(ttl);
  const head = valueHead(runtime, ttl, lease);
  // Redlock asks for a per-master timeout small against the ttl, so one
  // dead master does not eat the lease.
  const timeout = Math.min(Math.max(ttl / 10, 50), 1_000);
  const onAll = (
    script: LuaScript,
    keyList: string[],
    args: (string | number)[],
    sent?: Promise<unknown>[],
  ) =>
    Promise.all(
      adapters.map((adapter, index) => {
        const sending = runScript(adapter, script, keyList, args);
        if (sent) sent[index] = sending;
        return settle(runtime, sending, timeout);
      }),
    );
  // An acquire that did not answer in time (ours, or the client's command
  // timeout) may still land — resent in full after NOSCRIPT, say — after
  // the undo or release sent after it: it is undone again once it settles,
  // and once what `after` sent there settled (a release must come first, or
  // it would find nothing to release and tell no waiter), so no master
  // keeps a key nobody owns. Quietly: that key was never a lock anyone
  // waited for. Called once per acquisition.
  const undoLate = (owner: string, sent: Sent, after: Promise<unknown>[] = []) => {
    sent.results.forEach((result, index) => {
      if (result.ok || !result.timedOut) return;
      Promise.allSettled([sent.acquires[index], after[index]]).then(() =>
        runScript(adapters[index], UNDO_ACQUIRE, [keys.lock], [owner])
      ).catch(() => {});
    });
  };
  // Undoes a failed attempt on every master (a late "OK" included). Quietly
  // after a minority grant: a RELEASE would publish "released", and every
  // Redlock waiter on that master — this one first, whose subscription was
  // taken before the try — would wake at once and try again with no
  // backoff, for as long as the holder's key is missing on a master that
  // keeps granting us a minority. Nobody waits on such a key: it never held
  // the lock, and waiters refused by it (split votes) retry after their
  // jittered backoff, as Redlock prescribes. After a quorum grant that came
  // too late (`held`), others did see the lock held: they are told.
  // Resolves with each master's outcome; never rejects.
  const undoAll = (owner: string, sent: Sent, held: boolean) => {
    undoLate(owner, sent);
    return held ? onAll(RELEASE, keyList, [owner]) : onAll(UNDO_ACQUIRE, [keys.lock], [owner]);
  };
  // Two clients of one server would count it twice toward the quorum: every
  // try waits for the check until it is complete (a master that did not
  // answer INFO is asked again, see distinctMasters), so no try can win a
  // quorum that counts one server twice.
  let distinct: Promise<void> | null = null;
  const checkDistinct = () =>
    distinct ??= distinctMasters(runtime, adapters, timeout).then((complete) => {
      if (!complete) distinct = null;
    }, (error) => {
      distinct = null;
      throw error;
    });
  // True once a try of this acquisition found the lock held and its caller
  // waited on: a wait outlasts a command timeout (see tryAcquire).
  let waited = false;

  return {
    key: `redlock:${adapters.map(adapterId).join(",")}:${key}`,
    async tryAcquire(willWait = true): Promise<Attempt> {
      await checkDistinct();
      const owner = crypto.randomUUID();
      // Before the watches are taken: it may throw (a host name permission).
      const value = head(owner);
      // Taken before the try, a live subscription hears a release the try
      // misses. A caller that will not wait (tryLock) needs none.
      const afterTry = willWait
        ? adapters.map((adapter) => wakeOnRelease(runtime, adapter, keys))
        : [];
      const leaveWatches = () => {
        for (const after of afterTry) after(true);
      };
      const sentAt = runtime.monotonic();
      // Redlock waiters do not queue: each master would hand the lock to
      // its own first waiter, and no quorum might form.
      const sent: Sent = { acquires: [], results: [] };
      const results = sent.results = await onAll(
        ACQUIRE,
        keyList,
        [owner, String(ttl), value],
        sent.acquires,
      );
      const granted: { index: number; token: number; at: number }[] = [];
      const refused: number[] = [];
      let holder: LockInfo | null = null;
      const errors: string[] = [];
      let unanswered = 0;
      results.forEach((result, index) => {
        if (!result.ok) {
          if (isCommandTimeout(result.error)) unanswered++;
          return void errors.push(describe(result.error));
        }
        const reply = result.value as unknown[];
        if (replyNumber(reply[0]) === 1) {
          granted.push({ index, token: replyNumber(reply[1]), at: replyNumber(reply[2]) });
        } else {
          refused.push(index);
          holder ??= holderInfo(name, key, reply[1], reply[2]);
        }
      });
      if (granted.length >= quorum) {
        let token: number;
        try {
          token = checkedToken(Math.max(...granted.map((g) => g.token)), key);
        } catch (error) {
          await undoAll(owner, sent, true);
          leaveWatches();
          throw error;
        }
        // The token is written back to the quorum (while the key is ours
        // there: that is what later quorums, which share a master with this
        // one, count on from). Masters that answered but refused get their
        // counter raised as well, without the key: a higher counter only
        // makes later tokens there larger, so that is safe, and if the
        // quorum's masters lose their counters (restarts with persistence
        // off) a later quorum that includes one of these still counts on
        // from here, not from its own, maybe slower, clock. Best effort, and
        // not waited for: it counts toward nothing.
        for (const index of refused) {
          runScript(adapters[index], RAISE_COUNTER, [keys.token], [String(token)])
            .catch(() => {});
        }
        const raised = await Promise.all(
          granted.map(({ index }) =>
            settle(
              runtime,
              runScript(adapters[index], RAISE_TOKEN, [keys.lock, keys.token], [
                owner,
                String(token),
              ]),
              timeout,
            )
          ),
        );
        const confirmed = raised.filter((r) => r.ok && replyNumber(r.value) === 1).length;
        if (confirmed >= quorum && runtime.monotonic() < sentAt + safeLeaseMs(lease)) {
          leaveWatches();
          return { acquired: true, grant: grant(owner, token, granted[0].at, sentAt, sent) };
        }
      }
      // Undo whatever part we got, on every master (a late "OK" included),
      // before anyone — us included — tries again.
      await undoAll(owner, sent, granted.length >= quorum);
      // A wait outlasts the client's command timeouts, as the single-master
      // kind's does: such a try counts as not acquired yet. Its acquires
      // may still run, but they were undone by owner above, on the same
      // connections after them (and again once they settle), and the next
      // try is made as a new owner. A single try (tryLock, timeout 0) still
      // fails, as does any wait when a majority failed otherwise.
      const failed = errors.length - (willWait || waited ? unanswered : 0);
      if (failed > count - quorum) {
        leaveWatches();
        throw new LockError(
          `Redlock could not reach a quorum (${quorum} of ${count}) of Redis masters for lock ` +
            `"${name}": ${errors.length} failed (${[...new Set(errors)].join("; ")}). ` +
            "Check that the masters are up and the clients connected.",
        );
      }
      if (!willWait) return { acquired: false, holder };
      waited = true;
      const wakes = afterTry.map((after) => after(false));
      return {
        acquired: false,
        holder,
        wake: Promise.race(wakes.map((w) => w.wake!)),
        cancelWake: () => wakes.forEach((w) => w.cancelWake!()),
      };
    },
    async inspect() {
      // Bounded like every other call: a master that does not answer in
      // time (or fails) gives no vote.
      const found = await Promise.all(
        adapters.map((adapter) =>
          settle(runtime, inspectRedis(adapter, name, key), timeout).then((r) =>
            r.ok ? r.value as LockInfo | null : null
          )
        ),
      );
      const byOwner = new Map<unknown, LockInfo[]>();
      for (const info of found) {
        if (info) byOwner.set(info.owner, [...(byOwner.get(info.owner) ?? []), info]);
      }
      for (const infos of byOwner.values()) if (infos.length >= quorum) return infos[0];
      return null;
    },
  };

  // `sent`: the acquisition's acquires, for a late one to be undone when
  // the lock is released (or lost), as after a failed attempt.
  function grant(owner: string, token: number, acquiredAt: number, sentAt: number, sent: Sent) {
    const info = {
      ...grantInfo(runtime, { name, key, ttl }, owner, token, acquiredAt),
      masters: count,
      quorum,
    };
    let late: Sent | null = sent;
    return heartbeatGrant({
      runtime,
      name,
      ttl,
      lease,
      sentAt,
      token,
      info,
      async renew() {
        const results = await onAll(EXTEND, [keys.lock], [owner, ttl]);
        const renewed = results.filter((r) => r.ok && replyNumber(r.value) === 1).length;
        const gone = results.filter((r) => r.ok && replyNumber(r.value) !== 1).length;
        if (renewed >= quorum) return "renewed";
        if (gone > count - quorum) return "gone";
        throw new LockError(
          `only ${renewed} of ${count} Redis masters renewed it (quorum ${quorum})`,
        );
      },
      // Also the lost lock's cleanup (the heartbeat calls it on a loss).
      async release() {
        // RELEASE is compare-and-delete by owner, so a retry is safe. Once a
        // quorum answered (released, or not ours: gone or someone else's),
        // no quorum can hold it for us any more and others may take it; a
        // minority that did not answer keeps its key until the ttl, as after
        // a crash, so Redlock still survives losing a minority of masters.
        // An acquire that timed out when the lock was taken is undone once
        // it lands, after this release there.
        const releases: Promise<unknown>[] = [];
        const releasing = onAll(RELEASE, keyList, [owner], releases);
        if (late) undoLate(owner, late, releases);
        late = null;
        const results = await releasing;
        const errors = results.flatMap((r) => r.ok ? [] : [describe(r.error)]);
        if (count - errors.length >= quorum) return;
        throw new LockError(
          `Redlock could not release lock "${name}": only ${count - errors.length} of ${count} ` +
            `Redis masters answered (quorum ${quorum}; ${[...new Set(errors)].join("; ")}). ` +
            "Call release() again once the masters are reachable; until then the lock frees " +
            `itself ${ttl} ms after its last renewal.`,
        );
      },
    });
  }
}

/** Options of {@link Redlock}. */
export interface RedlockOptions {
  /**
   * How soon a crashed holder's lock frees itself, in ms (default 30 000).
   * The holder renews every `ttl / 3` while it holds the lock.
   */
  ttl?: number;
  /** Backoff between attempts while waiting. */
  retry?: RetryOptions;
}

/**
 * One lock over several independent Redis masters (Redlock): held when a
 * majority granted it in time; released on all of them. See the module
 * documentation for what this does and does not guarantee.
 *
 * @example Lock over three independent masters
 * ```ts
 * import { Redis } from "npm:ioredis";
 * import { Redlock } from "jsr:@x/socketlock/redis";
 * const masters = [6379, 6380, 6381].map((port) => new Redis(port));
 * const redlock = new Redlock(masters, { ttl: 10_000 });
 * const held = await redlock.lock("invoices", { timeout: 5_000 });
 * try {
 *   // pass held.token to the store so it can refuse stale writers
 *   console.log(held.token, held.signal.aborted);
 * } finally {
 *   await held.release();
 * }
 * ```
 */
export class Redlock {
  /** How many masters must grant a lock. */
  readonly quorum: number;
  #adapters: RedisAdapter[];
  #ttl: number;
  #retry?: RetryOptions;
  #runtime: Runtime;

  /**
   * Creates a Redlock over `clients`, one per independent master (3 or 5 is usual).
   *
   * @param clients ioredis, node-redis or Bun RedisClient clients (or adapters).
   * @param options ttl and backoff.
   * @throws {LockError} If no client is given, a client is not recognised, or the ttl is invalid.
   */
  constructor(clients: readonly unknown[], options: RedlockOptions = {}) {
    if (!Array.isArray(clients) || clients.length === 0) {
      throw new LockError("Redlock needs an array of Redis clients, one per independent master.");
    }
    this.#adapters = clients.map(adaptRedisClient);
    this.#ttl = validateTtl(options.ttl);
    this.#retry = options.retry;
    this.quorum = Math.floor(clients.length / 2) + 1;
    this.#runtime = defaultRuntime;
  }

  /**
   * Takes the lock `name` on a quorum of masters, waiting up to `timeout` ms.
   *
   * @param name The lock's name.
   * @param options `timeout` in ms (default: forever; 0: try once), `signal`, `key` (default `socketlock:<name>`).
   * @returns The held lock; its `signal` aborts if a quorum stops renewing it.
   * @throws {LockBusyError} If `timeout` is 0 and the lock is held.
   * @throws {LockTimeoutError} If the timeout runs out.
   * @throws {LockAbortedError} If the signal aborts the wait.
   * @throws {LockError} If fewer than a quorum of masters answer.
   */
  async lock(
    name: string,
    options: { timeout?: number; signal?: AbortSignal; key?: string } = {},
  ): Promise<HeldLock> {
    const result = await this.#acquire(name, options, options.timeout !== 0);
    if (!result.held) throw new LockBusyError(name, result.holder);
    return result.held;
  }

  /**
   * Takes the lock `name` if a quorum grants it now; never waits.
   *
   * @param name The lock's name.
   * @param options `key` (default `socketlock:<name>`).
   * @returns The held lock, or null if it is held elsewhere.
   * @throws {LockError} If fewer than a quorum of masters answer.
   */
  async tryLock(name: string, options: { key?: string } = {}): Promise<HeldLock | null> {
    return (await this.#acquire(name, options, false)).held;
  }

  #acquire(
    name: string,
    options: { timeout?: number; signal?: AbortSignal; key?: string },
    wait: boolean,
  ) {
    validateLockName(name);
    const key = lockKeyFor(name, options.key);
    const target = redlockTarget(this.#runtime, {
      adapters: this.#adapters,
      name,
      key,
      ttl: this.#ttl,
    });
    return acquire({
      name,
      kind: "redis",
      target,
      runtime: this.#runtime,
      wait,
      timeout: options.timeout,
      signal: options.signal,
      retry: this.#retry,
    });
  }
}
