// A lock file the handshake cannot check (written with another key, a silent
// port, another network namespace) is judged by its pid alone. A dead
// holder's pid reused by a younger process must not keep the lock busy for
// good: on Linux the pid's start time is compared, as the folder kind does —
// start ticks where the file records them, else the start against
// `acquiredAt` — and a holder that still lives is never broken, whatever the
// wall clock did. Forced with the scripted runtime (pids and start times are
// the scripted world's).
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import type { LockRecord } from "../lib/socket/lock_file.ts";
import { formatLockFile, lockPaths, parseLockFile } from "../lib/socket/lock_file.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { socketTarget } from "../lib/socket/socket_target.ts";
import { createWorld, type SimulatedProcess, type World } from "./_scripted_runtime.ts";
import { DIR, settings, settle } from "./_socket_scenarios.ts";

const HOUR = 3_600_000;
const HOLDER = 4242;

// A listener that accepts and never answers: a holder "silent" past handshakeTimeout.
const accepted = new Set<net.Socket>();
const silent = net.createServer((sock) => accepted.add(sock));
const silentReady = new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
async function silentPort(): Promise<number> {
  await silentReady;
  return (silent.address() as net.AddressInfo).port;
}

type Unverifiable = "another key" | "a silent port" | "another network namespace";
const UNVERIFIABLE: Unverifiable[] = ["another key", "a silent port", "another network namespace"];

/**
 * A world with a lock file of `name` by pid HOLDER, acquired at `acquiredAt`,
 * that the handshake cannot check (`how`), and a contender, pid 301.
 */
async function unverifiableLock(
  name: string,
  how: Unverifiable,
  acquiredAt: number,
  extra: Partial<LockRecord> = {},
): Promise<{ world: World; me: SimulatedProcess; file: string; text: string }> {
  const world = createWorld();
  const me = world.process(301);
  await me.runtime.mkdir(DIR, 0o700);
  const file = lockPaths(DIR, name, false).file;
  const text = formatLockFile({
    pid: HOLDER,
    port: await silentPort(),
    acquiredAt,
    host: "scripted-host",
    ns: how === "another network namespace" ? "1:2" : "1:1",
    name,
    id: randomHex(16),
    token: 1,
    ...(how === "another key" ? { keyId: "0123456789abcdef" } : {}),
    ...extra,
  }, false);
  world.files.set(file, { kind: "file", data: text, mode: 0o600, mtimeMs: 0 });
  return { world, me, file, text };
}

/** One tryAcquire by `me`: whether it acquired (released at once). */
async function tryOnce(me: SimulatedProcess, name: string): Promise<boolean> {
  const grant = settle(
    await socketTarget(me.runtime, settings(name, { handshakeTimeout: 100 })).tryAcquire(),
  );
  await grant?.release();
  return grant !== null;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

describe("socket kind: a dead holder's pid reused by a younger process", () => {
  after(async () => {
    for (const sock of accepted) sock.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  for (const how of UNVERIFIABLE) {
    test(`a file from ${how}, pid now a process started an hour after the lock: broken`, async () => {
      const name = `reuse-${randomHex(4)}`;
      // The holder recorded its start ticks; the pid's are an hour later.
      const { world, me } = await unverifiableLock(name, how, Date.now() - HOUR, {
        startTicks: (nowSeconds() - HOUR / 1000 - 5) * 100,
      });
      world.process(HOLDER, nowSeconds() - 1);
      assert.ok(
        await tryOnce(me, name),
        "the lock of a dead holder whose pid was reused stays busy",
      );
    });

    test(`a file from ${how} whose pid started before the lock: still busy`, async () => {
      const name = `live-${randomHex(4)}`;
      const { world, me, file, text } = await unverifiableLock(name, how, Date.now());
      world.process(HOLDER, nowSeconds() - 60);
      assert.equal(await tryOnce(me, name), false);
      assert.equal(world.files.get(file)?.data, text, "left in place");
    });
  }

  test("a file without start ticks (Python's) is not judged by start time: a clock step forward looks the same", async () => {
    const name = `noticks-${randomHex(4)}`;
    const { world, me, file, text } = await unverifiableLock(
      name,
      "another key",
      Date.now() - HOUR,
    );
    world.process(HOLDER, nowSeconds() - 1);
    assert.equal(await tryOnce(me, name), false);
    assert.equal(world.files.get(file)?.data, text, "left in place");
  });

  test("recorded start ticks decide where the file has them: other ticks are another process", async () => {
    const name = `ticks-${randomHex(4)}`;
    // Acquired just now by a process started long before: only the ticks tell.
    const { world, me } = await unverifiableLock(name, "another key", Date.now(), {
      startTicks: 123_456,
    });
    world.process(HOLDER, nowSeconds() - 3_600);
    assert.ok(await tryOnce(me, name), "a pid with other start ticks is not the holder");
  });

  test("matching start ticks keep a live holder busy even after the wall clock jumped ahead", async () => {
    const name = `jump-${randomHex(4)}`;
    // The clock stepped an hour forward since the acquisition: the holder's
    // start in epoch seconds now reads an hour after its acquiredAt.
    const started = nowSeconds() + 3_600;
    const { world, me, file, text } = await unverifiableLock(name, "a silent port", Date.now(), {
      startTicks: started * 100,
    });
    world.process(HOLDER, started);
    assert.equal(await tryOnce(me, name), false);
    assert.equal(world.files.get(file)?.data, text);
  });

  test("where start times cannot be read, a live pid keeps the lock busy as before", async () => {
    for (
      const cannot of [
        { namespaceId: () => null },
        { startTime: () => Promise.reject(new Error("NotCapable: /proc needs -A")) },
        { startTime: () => Promise.resolve(null) },
      ]
    ) {
      const name = `cannot-${randomHex(4)}`;
      const { world, me, file, text } = await unverifiableLock(
        name,
        "another key",
        Date.now() - HOUR,
        { startTicks: (nowSeconds() - HOUR / 1000 - 5) * 100 },
      );
      world.process(HOLDER, nowSeconds() - 1);
      me.runtime = { ...me.runtime, ...cannot };
      assert.equal(await tryOnce(me, name), false, Object.keys(cannot)[0]);
      assert.equal(world.files.get(file)?.data, text);
    }
  });

  test("a holder records its start ticks, in both formats", async () => {
    const world = createWorld();
    const me = world.process(301, 1_700_000_000);
    await me.runtime.mkdir(DIR, 0o700);
    for (const compat of [false, true]) {
      const name = `rec-${randomHex(4)}`;
      const grant = settle(
        await socketTarget(me.runtime, settings(name, { compat })).tryAcquire(),
      );
      assert.ok(grant);
      const text = world.files.get(lockPaths(DIR, name, compat).file)!.data;
      assert.equal(parseLockFile(text)?.startTicks, 1_700_000_000 * 100);
      await grant.release();
    }
  });
});
