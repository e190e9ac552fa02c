/**
 * The Lua scripts behind the Redis kind, and how they are run: EVALSHA
 * first, EVAL when the server answers NOSCRIPT (a restarted or flushed
 * script cache). Each script is one atomic step on the server, so no other
 * client ever sees a half-taken, half-renewed or half-released lock.
 *
 * The value under the lock key is JSON that starts with the owner —
 * `{"owner":"<uuid>",...` — so "is this mine?" is a prefix comparison, and
 * it is written once, at acquisition: a renewal only resets the key's expiry
 * to exactly `ttl`, which makes `ttl - PTTL` the time since the last renewal
 * by the server's clock. `acquiredAt` comes from the server's `TIME`, so
 * every host reads one clock.
 *
 * Fencing tokens are `max(last token + 1, server TIME in µs)`: `INCR` of
 * the per-name counter, raised to the clock and written back. In practice a
 * token is the server's clock at acquisition, in µs; it keeps growing when
 * the counter is lost (a restart with persistence off, a flush, an
 * eviction), as long as fewer than a million acquisitions per second were
 * made on average and the server's clock did not step back. µs since 1970
 * stay below 2^53 — exact in Lua's numbers and JavaScript's — until 2255.
 *
 * Waiters queue in Redis, in arrival order, and each client hears on a
 * channel of its own. A release hands the lock straight to the first waiter
 * that is still alive and tells only that waiter's client (`granted <owner>
 * <token> <acquiredAt>`): no herd, and the new holder needs no further
 * round trip. The one exception is a run of quick acquisitions (see
 * {@link PATIENCE_MS}). A waiter proves it is alive by renewing its place;
 * one that stops (a process killed while waiting) is skipped once its place
 * runs out. One killed after its last renewal may still be handed the lock:
 * so a hand-off sets the key for the waiter's short *claim* time, not its
 * ttl, and marks the value `"claim":<ms>`; the new holder's first renewal
 * sets the full ttl and drops the mark. A lock handed to a dead waiter is
 * free again after the claim time (2 s by default), not the ttl.
 *
 * @module
 */

import { LockError, LockProtocolError } from "../errors.ts";
import type { RedisAdapter } from "./client_adapter.ts";

/** A Lua script with a name for error messages; its SHA-1 is computed once. */
export interface LuaScript {
  /** What the script does, for error messages ("acquire", "release", ...). */
  readonly name: string;
  /** The Lua source. */
  readonly source: string;
}

/**
 * How long a run of quick acquisitions may keep a lock from queued waiters,
 * in ms. A holder that took the lock for less than this and releases it
 * starts a run: for this long, whoever comes first (often the releaser,
 * coming back at once — a busy loop) may take the lock again, instead of
 * waiting for a hand-off between processes every time. After that, every
 * release hands the lock to the first waiter. A holder that kept the lock
 * longer hands it over at once, and so does one that has not tried again
 * by its event loop's next turn ({@link PASS_ON}: a holder that goes on to
 * other work does not keep waiters from a free lock). So each waiter ahead
 * of a waiter costs it at most this long, one holding and one hand-off.
 * (Go's sync.Mutex, in one process, stops letting newcomers overtake once
 * a waiter has waited 1 ms; between processes a hand-off itself takes about
 * that long.)
 */
export const PATIENCE_MS = 5;

/** How long a queue outlives its last renewal, ms: it is dropped when every waiter is gone. */
export const QUEUE_KEEP_MS = 60_000;

// Redis 3.2-4 need replicate_commands() before a write that follows TIME;
// later versions always replicate effects and ignore it.
const EFFECTS = `
if redis.replicate_commands then redis.replicate_commands() end
`;

// The common paths of acquire and release come first and inline: a Lua
// function is a closure made on every call, and most calls need none.
// Numbers as large as µs since 1970 are formatted with %d whenever they go
// back to Redis: Lua's default conversion keeps only 14 digits.

// True if the value v (false when the key is missing) was written by the
// owner ARGV[1]. A value another tool wrote (e.g. AppLocker's uuid) never
// matches: it is respected, never released or renewed.
const MINE = `
local function mine(v)
  return v and string.sub(v, 1, #ARGV[1] + 11) == '{"owner":"' .. ARGV[1] .. '"'
end
`;

// The server's clock, epoch ms and µs, as t = TIME would give them.
const NOW = `
local t = redis.call('TIME')
local nowMs, nowUs = t[1] * 1000 + math.floor(t[2] / 1000), t[1] * 1000000 + t[2]
`;

// The next fencing token of counter KEYS[2]: one above the last, and at
// least the server's clock in µs, written back so the counter goes on from it.
const NEXT_TOKEN = `
local function nextToken(us)
  local token = redis.call('INCR', KEYS[2])
  if token < us then
    token = us
    redis.call('SET', KEYS[2], string.format('%d', us))
  end
  return token
end
`;

// Raises the counter at key `counter` to `token` (decimal digits), never
// lowering it. 1 if raised, 0 if it was as high already.
const RAISE = `
local function raise(counter, token)
  if (tonumber(redis.call('GET', counter)) or 0) < tonumber(token) then
    redis.call('SET', counter, token)
    return 1
  end
  return 0
end
`;

// The wait queue: KEYS[3] orders owners by arrival; KEYS[4] maps each to
// "<live until ms> <ttl> <claim ms> <client id> <value head>", '@first' to
// "<owner> <client id>" (who is first in line, and where it hears), and
// '@run' to when the current run of quick acquisitions began.
// The release channel is "<lock key>:released"; a waiter hears on
// "<channel>:<client id>".
const QUEUE = NEXT_TOKEN + `
local channel = KEYS[1] .. ':released'

local function markFirst()
  local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if not head then
    redis.call('DEL', KEYS[3], KEYS[4])
    return
  end
  local place = redis.call('HGET', KEYS[4], head)
  local client = place and string.match(place, '^%d+ %d+ %d+ (%x+) ') or '0'
  redis.call('HSET', KEYS[4], '@first', head .. ' ' .. client)
end

local function dequeue(owner)
  redis.call('ZREM', KEYS[3], owner)
  redis.call('HDEL', KEYS[4], owner)
  local first = redis.call('HGET', KEYS[4], '@first')
  if not first or string.sub(first, 1, #owner + 1) == owner .. ' ' then markFirst() end
end

-- The first waiter whose place is live (dead ones are dropped), and its
-- place; nil if none is queued. Bounded: past 64 dead waiters it answers
-- false (not known yet), and later calls drop the rest, for a live waiter
-- may wait behind them and must not be overtaken.
local function firstLive(nowMs)
  if redis.call('EXISTS', KEYS[3]) == 0 then return nil end
  for _ = 1, 64 do
    local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
    if not head then return nil end
    local place = redis.call('HGET', KEYS[4], head)
    local liveUntil, ttl, claim, client, value
    if place then
      liveUntil, ttl, claim, client, value = string.match(place, '^(%d+) (%d+) (%d+) (%x+) (.*)$')
    end
    if liveUntil and tonumber(liveUntil) >= nowMs then return head, ttl, claim, client, value end
    dequeue(head)
  end
  if redis.call('EXISTS', KEYS[3]) == 0 then return nil end
  return false
end

-- Gives the free lock KEYS[1] to a waiter for its claim time, and tells
-- it; a run ends.
local function grant(owner, ttl, claim, client, value, nowMs, nowUs)
  dequeue(owner)
  redis.call('HDEL', KEYS[4], '@run')
  local token = nextToken(nowUs)
  local mark = ''
  if tonumber(claim) < tonumber(ttl) then mark = ',"claim":' .. claim end
  redis.call('SET', KEYS[1],
    value .. mark .. string.format(',"acquiredAt":%d,"token":%d}', nowMs, token), 'PX', claim)
  redis.call('PUBLISH', channel .. ':' .. client,
    string.format('granted %s %d %d', owner, token, nowMs))
end

-- Hands the free lock KEYS[1] to the first live waiter; with none, says
-- "released" to clients that do not queue.
local function passOn(nowMs, nowUs)
  local head, ttl, claim, client, value = firstLive(nowMs)
  if head then
    grant(head, ttl, claim, client, value, nowMs, nowUs)
  elseif head == nil then
    redis.call('PUBLISH', channel, 'released')
  end
  -- false: waiters' own refreshes (every 100 ms) drop the dead rest, and
  -- the first live one then takes the lock.
end
`;

/**
 * Takes the lock if free: `SET key <json> PX ttl`, the JSON ending in the
 * fencing token. With waiters queued, a free lock goes to the first live
 * one — unless a run of quick acquisitions is under way (see
 * {@link PATIENCE_MS}) and the caller is not queued: then the caller takes
 * it. When the lock is held and `window` is given, the caller takes — or
 * renews — its place in the queue, keeping its arrival `place` if it had one.
 * KEYS: lock, counter, queue, places. ARGV: owner, ttl, the JSON's head
 * (owner first); to queue also: window ms, place ('' if none yet), client
 * id (hex: grants are published on `<lock key>:released:<client id>`),
 * claim ms (how long a lock handed over lives before its first renewal).
 * Returns `{1, token, acquiredAt}` when the caller holds the lock, else
 * `{0, current value, pttl, place, counter}` (`place` '' when not queued;
 * `counter` is the token counter, to date a grant heard later).
 * Idempotent per owner: a lock already ours is renewed and returned, as
 * clients resend unanswered commands on reconnect.
 */
export const ACQUIRE: LuaScript = {
  name: "acquire",
  source: EFFECTS + `
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, #ARGV[1] + 11) == '{"owner":"' .. ARGV[1] .. '"' then
  -- PEXPIRE first, as in EXTEND (a SET as first write fails over maxmemory).
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if string.find(current, ',"claim":', 1, true) then
    redis.call('SET', KEYS[1], (string.gsub(current, ',"claim":%d+', '', 1)), 'PX', ARGV[2])
  end
  return {1, tonumber(string.match(current, '"token":(%d+)}$')),
    tonumber(string.match(current, '"acquiredAt":(%d+)'))}
end
` + NOW + `
local queued = ARGV[5] and ARGV[5] ~= ''
if ARGV[4] and not queued then
  -- A place taken by a try whose reply was lost (a command timeout) is the
  -- caller's own: it keeps it, learns it, and leaves the queue if it takes
  -- the lock (else its own release would hand the lock to it).
  local known = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if known then
    ARGV[5] = known
    queued = true
  end
end
if not current then
  local free = redis.call('EXISTS', KEYS[3]) == 0
  if not free and not queued then
    local run = tonumber(redis.call('HGET', KEYS[4], '@run'))
    -- A run that seems to start in the future (the server's clock stepped
    -- back) is over: newcomers must not overtake the queue for that long.
    free = run ~= nil and nowMs >= run and nowMs - run < ${PATIENCE_MS}
  end
  if free then
    local token = redis.call('INCR', KEYS[2])
    if token < nowUs then
      token = nowUs
      redis.call('SET', KEYS[2], string.format('%d', nowUs))
    end
    redis.call('SET', KEYS[1],
      ARGV[3] .. string.format(',"acquiredAt":%d,"token":%d}', nowMs, token), 'PX', ARGV[2])
    return {1, token, nowMs}
  end
end
` + QUEUE + `
if not current then
  local head, ttl, claim, client, value = firstLive(nowMs)
  if head == false then
    -- Dead waiters still to drop, and maybe a live one behind them: this
    -- caller does not take the lock ahead of it (it queues, if it waits).
  elseif head and head ~= ARGV[1] then
    grant(head, ttl, claim, client, value, nowMs, nowUs)
    current = redis.call('GET', KEYS[1])
  else
    if queued then dequeue(ARGV[1]) end
    redis.call('HDEL', KEYS[4], '@run')
    local token = nextToken(nowUs)
    redis.call('SET', KEYS[1],
      ARGV[3] .. string.format(',"acquiredAt":%d,"token":%d}', nowMs, token), 'PX', ARGV[2])
    return {1, token, nowMs}
  end
end
local place = ''
if ARGV[4] then
  place = queued and ARGV[5] or string.format('%d', nowUs)
  redis.call('ZADD', KEYS[3], 'NX', place, ARGV[1])
  redis.call('HSET', KEYS[4], ARGV[1],
    string.format('%d %s %s %s %s', nowMs + tonumber(ARGV[4]), ARGV[2], ARGV[7] or ARGV[2], ARGV[6], ARGV[3]))
  redis.call('PEXPIRE', KEYS[3], ${QUEUE_KEEP_MS})
  redis.call('PEXPIRE', KEYS[4], ${QUEUE_KEEP_MS})
  local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  local first = redis.call('HGET', KEYS[4], '@first')
  if not first or string.sub(first, 1, #head + 1) ~= head .. ' ' then markFirst() end
end
return {0, current, redis.call('PTTL', KEYS[1]), place, redis.call('GET', KEYS[2]) or '0'}
`,
};

/**
 * Compare-and-delete: frees the lock only if `owner` holds it, and passes
 * it on: to the first live waiter, unless a run of quick acquisitions is
 * under way or this release starts one (see {@link PATIENCE_MS}) — then the
 * lock stays free, and the first waiter is told when its turn comes
 * (`free <owner> <ms>`), should no one take the lock by then; the releaser
 * passes it on with {@link PASS_ON} if it does not come back at once.
 * KEYS: lock, counter, queue, places. ARGV: owner, and how long the owner
 * held the lock in ms, by its own clock (default: since `acquiredAt`; a
 * lock handed over by pub/sub is in use only once the message arrived).
 * Returns 1 if released, `{2, run}` if released and left free for the run
 * `run` (its start, as stored) while waiters are queued, 0 if not ours.
 */
export const RELEASE: LuaScript = {
  name: "release",
  source: EFFECTS + `
local current = redis.call('GET', KEYS[1])
if not current or string.sub(current, 1, #ARGV[1] + 11) ~= '{"owner":"' .. ARGV[1] .. '"' then
  return 0
end
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('PUBLISH', KEYS[1] .. ':released', 'released')
  return 1
end
` + NOW + `
local stamp = redis.call('HGET', KEYS[4], '@run')
local run = tonumber(stamp)
if run and nowMs >= run and nowMs - run < ${PATIENCE_MS} then
  redis.call('PUBLISH', KEYS[1] .. ':released', 'released')
  return {2, stamp}
end
local heldFor = tonumber(ARGV[2]) or nowMs - (tonumber(string.match(current, '"acquiredAt":(%d+)')) or 0)
if not run and heldFor < ${PATIENCE_MS} then
  stamp = string.format('%d', nowMs)
  redis.call('HSET', KEYS[4], '@run', stamp)
  local first = redis.call('HGET', KEYS[4], '@first')
  local head, client = string.match(first or '', '^(%S+) (%x+)$')
  if head then
    redis.call('PUBLISH', KEYS[1] .. ':released:' .. client,
      string.format('free %s %d', head, ${PATIENCE_MS}))
  end
  redis.call('PUBLISH', KEYS[1] .. ':released', 'released')
  return {2, stamp}
end
` + QUEUE + `
passOn(nowMs, nowUs)
return 1
`,
};

/**
 * Ends a run of quick acquisitions early: hands the lock, if it is free, to
 * the first live waiter. Sent by a releaser that left the lock free for a
 * run (RELEASE returned 2) and did not try again by its event loop's next
 * turn, so a waiter does not wait out the rest of {@link PATIENCE_MS} for a
 * lock no one is about to take. Only that run is ended: a pass-on sent late
 * (a busy event loop) leaves a later run, another holder's, alone.
 * KEYS: lock, counter, queue, places. ARGV: the run, as RELEASE returned it.
 * Returns 1 if the lock was free and that run still on (the lock went to
 * the first live waiter, if any), else 0.
 */
export const PASS_ON: LuaScript = {
  name: "passOn",
  source: EFFECTS + `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HGET', KEYS[4], '@run') ~= ARGV[1] then
  return 0
end
` + NOW + QUEUE + `
passOn(nowMs, nowUs)
return 1
`,
};

/**
 * A waiter gives up: leaves the queue, and if the lock was handed to it
 * meanwhile, frees it again. A free lock with waiters left is passed on
 * too (its holder may have expired).
 * KEYS: lock, counter, queue, places. ARGV: owner.
 * Returns 1 if it released a lock handed to the caller, else 0.
 */
export const CANCEL: LuaScript = {
  name: "cancel",
  source: EFFECTS + MINE + NOW + QUEUE + `
dequeue(ARGV[1])
local current = redis.call('GET', KEYS[1])
if mine(current) then
  redis.call('DEL', KEYS[1])
  passOn(nowMs, nowUs)
  return 1
end
if not current and redis.call('EXISTS', KEYS[3]) == 1 then passOn(nowMs, nowUs) end
return 0
`,
};

/**
 * Compare-and-extend: resets the lock's expiry to `ttl` ms only if `owner`
 * holds it (ending a hand-off's claim time). KEYS: lock. ARGV: owner, ttl.
 * Returns 1 if renewed, 0 if not ours.
 */
export const EXTEND: LuaScript = {
  name: "extend",
  source: MINE + `
local v = redis.call('GET', KEYS[1])
if not mine(v) then return 0 end
-- PEXPIRE first: over maxmemory, Redis refuses a script whose first write
-- is a SET, but not the writes after one that was allowed. A lock still in
-- its claim time (see grant) then loses the mark.
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if string.find(v, ',"claim":', 1, true) then
  redis.call('SET', KEYS[1], (string.gsub(v, ',"claim":%d+', '', 1)), 'PX', ARGV[2])
end
return 1
`,
};

/**
 * Reads the lock: `{value, pttl, now, waiters}`, or an empty array when free.
 * KEYS: lock, queue.
 */
export const INSPECT: LuaScript = {
  name: "inspect",
  source: `
local value = redis.call('GET', KEYS[1])
if not value then return {} end
local t = redis.call('TIME')
return {value, redis.call('PTTL', KEYS[1]), t[1] * 1000 + math.floor(t[2] / 1000),
  redis.call('ZCARD', KEYS[2])}
`,
};

/**
 * Deletes the lock if its holder has not renewed it for longer than both
 * `staleMs` and the holder's own lease — the time after each renewal during
 * which the holder may rely on the lock — and passes it on to the waiters.
 * A holder that is still renewing is therefore never robbed, and one that
 * stopped has already seen its lease end by its own clock. Values socketlock
 * did not write, and keys someone else made persistent, are never judged.
 * The time since the last renewal is read as `ttl − PTTL`: a key whose
 * expiry someone else shortened (an EXPIRE by hand, or AppLocker's own
 * heartbeat on a key shared with it) looks idle for longer than it is.
 * KEYS: lock, counter, queue, places. ARGV: staleMs.
 * Returns `{1, idle}` released, `{0, idle}` live, `{-1}` not judged, `{}` free.
 */
export const FORCE_RELEASE_IF_STALE: LuaScript = {
  name: "forceReleaseIfStale",
  source: EFFECTS + NOW + QUEUE + `
local value = redis.call('GET', KEYS[1])
if not value then return {} end
local ok, h = pcall(cjson.decode, value)
if not ok or type(h) ~= 'table' or type(h.owner) ~= 'string' or not tonumber(h.ttl) then
  return {-1}
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl < 0 then return {-1} end
-- Handed over and not yet renewed: the key frees itself within its claim time.
if tonumber(h.claim) then return {0, tonumber(h.claim) - pttl} end
local idle = tonumber(h.ttl) - pttl
local floor = tonumber(h.lease) or tonumber(h.ttl)
if idle <= tonumber(ARGV[1]) or idle <= floor then return {0, idle} end
redis.call('DEL', KEYS[1])
passOn(nowMs, nowUs)
return {1, idle}
`,
};

/**
 * Redlock's second step: after a quorum granted tokens, raises this master's
 * counter to the largest of them (only while `owner` still holds the lock
 * here), so every later quorum — which shares at least one master with this
 * one — counts on from above it; a master whose counter was lost counts on
 * from its clock (see {@link ACQUIRE}) and from here. Also records the token
 * in the value, whose expiry is kept as it is.
 * KEYS: lock, counter. ARGV: owner, token (decimal digits).
 * Returns 1 if raised, 0 if not ours.
 */
export const RAISE_TOKEN: LuaScript = {
  name: "raiseToken",
  source: MINE + RAISE + `
local current = redis.call('GET', KEYS[1])
if not mine(current) then return 0 end
raise(KEYS[2], ARGV[2])
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 then
  local value = string.gsub(current, '"token":%d+}$', '"token":' .. ARGV[2] .. '}')
  redis.call('SET', KEYS[1], value, 'PX', pttl)
end
return 1
`,
};

/**
 * Redlock's undo of its own attempt: compare-and-delete, like {@link RELEASE}
 * but telling no one. A key that was ours only for a failed attempt (or an
 * acquire that landed late) was never a lock anyone waited for: a
 * "released" there would only wake the waiters — the undoing one too —
 * into a retry with no backoff. Nor does it pass the lock on to queued
 * waiters of the single-master kind (Redlock never queues: the two kinds
 * do not share a key).
 * KEYS: lock. ARGV: owner.
 * Returns 1 if deleted, 0 if not ours.
 */
export const UNDO_ACQUIRE: LuaScript = {
  name: "undoAcquire",
  source: MINE + `
if not mine(redis.call('GET', KEYS[1])) then return 0 end
redis.call('DEL', KEYS[1])
return 1
`,
};

/**
 * Redlock's raise of a counter on a master that answered the attempt but
 * did not grant it: lifts the counter to the token given (never lowers
 * it), so that master, too, counts on from above it should the quorum's
 * masters lose their counters. Needs no ownership: a higher counter only
 * makes every later token there larger. KEYS: counter. ARGV: token
 * (decimal digits). Returns 1 if raised, 0 if it was already as high.
 */
export const RAISE_COUNTER: LuaScript = {
  name: "raiseCounter",
  source: RAISE + `
return raise(KEYS[1], ARGV[1])
`,
};

const shas = new Map<LuaScript, string | Promise<string>>();

async function computeSha(script: LuaScript): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(script.source));
  const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  shas.set(script, hex);
  return hex;
}

function shaOf(script: LuaScript): string | Promise<string> {
  let sha = shas.get(script);
  if (sha === undefined) {
    sha = computeSha(script);
    shas.set(script, sha);
  }
  return sha;
}

// An error's message, or its class's name when it has none (node-redis'
// TimeoutError has an empty message).
function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.message || error.constructor?.name || error.name;
}

// Redis error replies start with an upper-case code (ERR, WRONGTYPE, NOPERM...);
// a client's own failures (closed connection, retries exhausted) do not.
const REPLY_CODE = /^([A-Z][A-Z_]+)(?: |$)/;

const HINTS: Record<string, string> = {
  WRONGTYPE: "the key holds data that is not a socketlock lock: choose another key " +
    '(the "key" option) or delete it',
  NOPERM: "the Redis user may not run this: grant it EVAL, EVALSHA and PUBLISH " +
    "(e.g. ACL SETUSER <user> +@scripting +publish), access to the key and to its channels " +
    "(&<key>:*)",
  NOAUTH: "Redis requires a password: pass it to your Redis client",
  OOM: "Redis is out of memory (maxmemory): free memory or raise maxmemory",
  READONLY: "the client is connected to a read-only replica: connect it to the master",
  MASTERDOWN: "the replica has lost its master: connect the client to the master",
  LOADING: "Redis is still loading its data set: try again in a moment",
  BUSY: "Redis is busy running another script: try again in a moment",
  CROSSSLOT: 'on Redis Cluster, use a key with a hash tag, e.g. "{socketlock:<name>}", ' +
    "so the lock and its counter share a slot",
};

function hintFor(code: string, text: string, key: string): string {
  if (HINTS[code]) return HINTS[code];
  if (/not an integer|overflow/i.test(text)) {
    return `the fencing counter "${key}:token" holds something else (another tool's key?): ` +
      "choose another key, or delete it only if nothing uses it";
  }
  if (/can't publish|channel/i.test(text)) {
    return "the Redis user may not publish on the lock's channels, which releases and waiters " +
      `use (Redis 7 gives new users no channels): grant them, e.g. ACL SETUSER <user> &${key}:*`;
  }
  if (/unknown command|disabled/i.test(text)) {
    return "this server does not run Lua scripts (EVAL/EVALSHA), which socketlock needs";
  }
  return "check the key and the Redis server's log";
}

/** Turns a client's rejection into a LockError that says what to do. */
export function redisError(
  error: unknown,
  what: string,
  key: string,
  adapter: RedisAdapter,
): LockError {
  const text = errorText(error);
  const code = REPLY_CODE.exec(text)?.[1];
  if (code) {
    return new LockProtocolError(
      `Redis refused the socketlock ${what} script on key "${key}": ${text}. ` +
        `Fix: ${hintFor(code, text, key)}.`,
      { cause: error },
    );
  }
  return new LockError(
    `Could not run the socketlock ${what} script on key "${key}" through ${adapter.name}: ` +
      `${text}. Check that Redis is reachable and the client is connected.`,
    { cause: error },
  );
}

// How clients word a command that went unanswered in time: ioredis
// "Command timed out", node-redis' TimeoutError (a class of that name, with
// an empty message), a socket's ETIMEDOUT.
const TIMED_OUT = /timed? ?out/i;

/**
 * True if `error`, as {@link runScript} rejected, is the client giving up
 * on an unanswered command (its command timeout): the script may still
 * have run, or run later. A reply from Redis, even an error, is not.
 */
export function isCommandTimeout(error: unknown): boolean {
  if (!(error instanceof LockError) || error instanceof LockProtocolError) return false;
  const cause = error.cause;
  return cause instanceof Error &&
    TIMED_OUT.test(`${cause.name} ${cause.constructor?.name} ${cause.message}`);
}

function isNoScript(error: unknown): boolean {
  return /NOSCRIPT/.test(errorText(error));
}

/**
 * Runs `script` by EVALSHA, loading it with EVAL if the server does not have
 * it. Rejects with a {@link LockError} explaining the failure.
 *
 * @param adapter The client adapter.
 * @param script The script.
 * @param keys Its KEYS (the first is named in error messages).
 * @param args Its ARGV.
 * @returns The script's reply, as the client decoded it.
 */
export function runScript(
  adapter: RedisAdapter,
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  const known = shaOf(script);
  if (typeof known !== "string") {
    return known.then((sha) => send(adapter, script, sha, keys, args));
  }
  return send(adapter, script, known, keys, args);
}

// Not async, and one array: this runs twice per lock taken and released.
function send(
  adapter: RedisAdapter,
  script: LuaScript,
  sha: string,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  const command = new Array<string>(3 + keys.length + args.length);
  command[0] = "EVALSHA";
  command[1] = sha;
  command[2] = String(keys.length);
  let at = 3;
  for (const key of keys) command[at++] = key;
  for (const arg of args) command[at++] = typeof arg === "string" ? arg : String(arg);
  return sendOnce(adapter, command).then(undefined, (error) => {
    if (!isNoScript(error)) throw redisError(error, script.name, keys[0], adapter);
    command[0] = "EVAL";
    command[1] = script.source;
    return sendOnce(adapter, command).then(undefined, (again) => {
      throw redisError(again, script.name, keys[0], adapter);
    });
  });
}

// One promise path for every adapter: a hand-written one may return a plain
// value or throw instead of rejecting (a thrown NOSCRIPT then still falls
// back to EVAL). Our adapters' promises are kept as they are: no extra tick.
function sendOnce(adapter: RedisAdapter, command: readonly string[]): Promise<unknown> {
  try {
    return Promise.resolve(adapter.send(command));
  } catch (error) {
    return Promise.reject(error);
  }
}
