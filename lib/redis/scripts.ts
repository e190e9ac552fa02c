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

// True if the value v (false when the key is missing) was written by the
// owner ARGV[1]. A value another tool wrote (e.g. AppLocker's uuid) never
// matches: it is respected, never released or renewed.
const MINE = `
local function mine(v)
  return v and string.sub(v, 1, #ARGV[1] + 11) == '{"owner":"' .. ARGV[1] .. '"'
end
`;

/**
 * Takes the lock if free: `SET key <json> NX PX ttl`, the JSON ending in the
 * fencing token from `INCR` of the per-name counter.
 * KEYS: lock, counter. ARGV: owner, ttl, the JSON's head (owner first).
 * Returns `{1, token, acquiredAt}`, or `{0, current value, pttl}` when held.
 * Idempotent per owner: clients resend unanswered commands on reconnect.
 */
export const ACQUIRE: LuaScript = {
  name: "acquire",
  source: MINE + `
local current = redis.call('GET', KEYS[1])
if mine(current) then
  return {1, tonumber(string.match(current, '"token":(%d+)}$')),
    tonumber(string.match(current, '"acquiredAt":(%d+)'))}
end
if current then return {0, current, redis.call('PTTL', KEYS[1])} end
-- Redis 3.2-4 need this to write after TIME; later versions ignore it.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[3] .. string.format(',"acquiredAt":%d,"token":%d}', now, token),
  'NX', 'PX', ARGV[2])
return {1, token, now}
`,
};

/**
 * Compare-and-delete: deletes the lock only if `owner` holds it, then
 * publishes on the release channel so waiters wake at once.
 * KEYS: lock. ARGV: owner, channel. Returns 1 if released, 0 if not ours.
 */
export const RELEASE: LuaScript = {
  name: "release",
  source: MINE + `
if not mine(redis.call('GET', KEYS[1])) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], 'released')
return 1
`,
};

/**
 * Compare-and-extend: resets the lock's expiry to `ttl` ms only if `owner`
 * holds it. KEYS: lock. ARGV: owner, ttl. Returns 1 if renewed, 0 if not ours.
 */
export const EXTEND: LuaScript = {
  name: "extend",
  source: MINE + `
if not mine(redis.call('GET', KEYS[1])) then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`,
};

/**
 * Reads the lock: `{value, pttl, now}`, or an empty array when free.
 * KEYS: lock.
 */
export const INSPECT: LuaScript = {
  name: "inspect",
  source: `
local value = redis.call('GET', KEYS[1])
if not value then return {} end
local t = redis.call('TIME')
return {value, redis.call('PTTL', KEYS[1]), t[1] * 1000 + math.floor(t[2] / 1000)}
`,
};

/**
 * Deletes the lock if its holder has not renewed it for longer than both
 * `staleMs` and the holder's own lease — the time after each renewal during
 * which the holder may rely on the lock. A holder that is still renewing is
 * therefore never robbed, and one that stopped has already seen its lease
 * end by its own clock. Values socketlock did not write, or whose expiry
 * someone else changed, are never judged.
 * KEYS: lock. ARGV: staleMs, channel.
 * Returns `{1, idle}` released, `{0, idle}` live, `{-1}` not judged, `{}` free.
 */
export const FORCE_RELEASE_IF_STALE: LuaScript = {
  name: "forceReleaseIfStale",
  source: `
local value = redis.call('GET', KEYS[1])
if not value then return {} end
local ok, h = pcall(cjson.decode, value)
if not ok or type(h) ~= 'table' or type(h.owner) ~= 'string' or not tonumber(h.ttl) then
  return {-1}
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl < 0 then return {-1} end
local idle = tonumber(h.ttl) - pttl
local floor = tonumber(h.lease) or tonumber(h.ttl)
if idle <= tonumber(ARGV[1]) or idle <= floor then return {0, idle} end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], 'released')
return {1, idle}
`,
};

/**
 * Redlock's second step: after a quorum granted tokens, raises this master's
 * counter to the largest of them (only while `owner` still holds the lock
 * here), so every later quorum — which shares at least one master with this
 * one — counts on from above it. Also records the token in the value, whose
 * expiry is kept as it is.
 * KEYS: lock, counter. ARGV: owner, token. Returns 1 if raised, 0 if not ours.
 */
export const RAISE_TOKEN: LuaScript = {
  name: "raiseToken",
  source: MINE + `
local current = redis.call('GET', KEYS[1])
if not mine(current) then return 0 end
if (tonumber(redis.call('GET', KEYS[2])) or 0) < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 then
  local value = string.gsub(current, '"token":%d+}$', '"token":' .. ARGV[2] .. '}')
  redis.call('SET', KEYS[1], value, 'PX', pttl)
end
return 1
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

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// Redis error replies start with an upper-case code (ERR, WRONGTYPE, NOPERM...);
// a client's own failures (closed connection, retries exhausted) do not.
const REPLY_CODE = /^([A-Z][A-Z_]+)(?: |$)/;

const HINTS: Record<string, string> = {
  WRONGTYPE: "the key holds data that is not a socketlock lock: choose another key " +
    '(the "key" option) or delete it',
  NOPERM: "the Redis user may not run this: grant it EVAL, EVALSHA and PUBLISH " +
    "(e.g. ACL SETUSER <user> +@scripting +publish) and access to the key",
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
    return `the fencing counter "${key}:token" holds something else: delete it or choose another key`;
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
export async function runScript(
  adapter: RedisAdapter,
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  const known = shaOf(script);
  const sha = typeof known === "string" ? known : await known;
  const command = ["EVALSHA", sha, String(keys.length), ...keys];
  for (const arg of args) command.push(String(arg));
  try {
    return await adapter.send(command);
  } catch (error) {
    if (!isNoScript(error)) throw redisError(error, script.name, keys[0], adapter);
  }
  command[0] = "EVAL";
  command[1] = script.source;
  try {
    return await adapter.send(command);
  } catch (error) {
    throw redisError(error, script.name, keys[0], adapter);
  }
}
