// Stale socket locks: every bad interleaving of breakers and holders forced
// with the scripted runtime, then real imposters and garbage files.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import * as net from "node:net";
import { inspect, lock, LockPermissionError, SocketLock, tryLock } from "../mod.ts";
import { runtime } from "../lib/runtime/mod.ts";
import type { SocketAddress } from "../lib/runtime/mod.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { breakerKey } from "../lib/socket/break_stale_lock.ts";
import { holdPortKey } from "../lib/port/port_target.ts";
import { formatLockFile, lockPaths, parseLockFile } from "../lib/socket/lock_file.ts";
import { loadSecret } from "../lib/socket/secret.ts";
import { socketTarget } from "../lib/socket/socket_target.ts";
import { createWorld, type SimulatedProcess, type World } from "./_scripted_runtime.ts";
import {
  DIR,
  holderPid,
  interleaving,
  pauseAt,
  settings,
  settle,
  tracked,
  within,
} from "./_socket_scenarios.ts";
import { childRuntimes, fixture, freePort, spawnScript, tempDir } from "./_processes.ts";

function staleText(name: string, port: number, token = 1, host = "scripted-host"): string {
  return formatLockFile({
    pid: 999_999,
    port,
    acquiredAt: Date.now(),
    host,
    name,
    id: randomHex(16),
    token,
  }, false);
}

/** A world with /locks and a stale lock file of a dead holder for `name`. */
async function staleWorld(name: string): Promise<{ world: World; file: string; stale: string }> {
  const world = createWorld();
  await world.process(1).runtime.mkdir(DIR, 0o700);
  const file = lockPaths(DIR, name, false).file;
  const stale = staleText(name, await freePort());
  world.files.set(file, { kind: "file", data: stale, mode: 0o600, mtimeMs: 0 });
  return { world, file, stale };
}

/** Pauses `sim` just before it tries to take the breaker lock, until released. */
function pauseBeforeBreaking(sim: SimulatedProcess) {
  const g = tracked();
  let reached!: () => void;
  const arrived = new Promise<void>((resolve) => (reached = resolve));
  const listen = sim.runtime.listen;
  let hit = false;
  sim.runtime.listen = async (address: SocketAddress, onConnection) => {
    if (!hit && address.transport === "unix" && address.path.includes("socketlock.break.")) {
      hit = true;
      reached();
      await g.wait();
    }
    return await listen(address, onConnection);
  };
  return { arrived, go: g.open };
}

/** Pauses `sim` just before its first connect (a handshake), until released. */
function pauseBeforeConnecting(sim: SimulatedProcess) {
  const g = tracked();
  let reached!: () => void;
  const arrived = new Promise<void>((resolve) => (reached = resolve));
  const connect = sim.runtime.connect;
  let hit = false;
  sim.runtime.connect = async (address: SocketAddress, timeout: number) => {
    if (!hit) {
      hit = true;
      reached();
      await g.wait();
    }
    return await connect(address, timeout);
  };
  return { arrived, go: g.open };
}

describe("stale socket locks under forced interleavings", () => {
  interleaving(
    "a contender paused between its verdict and its break removes nothing once another broke the lock and a third took it",
    async () => {
      const name = `race1-${randomHex(4)}`;
      const { world, file } = await staleWorld(name);
      const [a, b, c] = [world.process(11), world.process(12), world.process(13)];
      const aPause = pauseBeforeBreaking(a);
      const aTry = socketTarget(a.runtime, settings(name)).tryAcquire();
      await within(aPause.arrived, "aPause reaches its pause"); // A judged the file stale and is about to break it

      // B breaks the stale file, then stops before creating its own.
      let bBroke = false;
      const bPause = pauseAt(b, (op) => {
        if (op === "rename" || op === "remove") bBroke = true;
        return bBroke && op === "writeFileExclusive";
      });
      const bTry = socketTarget(b.runtime, settings(name)).tryAcquire();
      await within(bPause.arrived, "bPause reaches its pause");
      assert.equal(world.files.has(file), false, "B removed the stale file");

      const cGrant = settle(await socketTarget(c.runtime, settings(name)).tryAcquire());
      assert.ok(cGrant, "C took the free lock");
      bPause.go();
      assert.equal(settle(await bTry), null, "B finds C's live lock");
      aPause.go();
      assert.equal(settle(await aTry), null, "A finds C's live lock and removes nothing");
      assert.equal(holderPid(world, file), 13, "C's lock file is still in place");
      await cGrant.release();
      assert.equal(world.files.has(file), false);
    },
  );

  interleaving(
    "a breaker paused while holding the breaker lock keeps others from breaking or taking the lock",
    async () => {
      const name = `race2-${randomHex(4)}`;
      const { world, file, stale } = await staleWorld(name);
      const [a, b, c] = [world.process(21), world.process(22), world.process(23)];
      // A has re-read the file under the breaker lock and is about to remove it.
      const aPause = pauseAt(
        a,
        (op, path) => (op === "rename" || op === "remove") && path === file,
      );
      const aTry = socketTarget(a.runtime, settings(name)).tryAcquire();
      await within(aPause.arrived, "aPause reaches its pause");

      for (const other of [b, c]) {
        const attempt = await socketTarget(other.runtime, settings(name)).tryAcquire();
        assert.equal(settle(attempt), null);
        assert.equal(world.files.get(file)?.data, stale, "nobody else touched the stale file");
      }
      aPause.go();
      const aGrant = settle(await aTry);
      assert.ok(aGrant, "A broke the stale lock and took it");
      assert.equal(holderPid(world, file), 21);
      assert.equal(settle(await socketTarget(b.runtime, settings(name)).tryAcquire()), null);
      await aGrant.release();
    },
  );

  interleaving(
    "two contenders let loose together at the breaker lock leave exactly one holder",
    async () => {
      const name = `race3-${randomHex(4)}`;
      const { world, file } = await staleWorld(name);
      const sims = [world.process(31), world.process(32), world.process(33)];
      const pauses = sims.map(pauseBeforeBreaking);
      const tries = sims.map((sim) => socketTarget(sim.runtime, settings(name)).tryAcquire());
      await within(Promise.all(pauses.map((p) => p.arrived)), "all reach the breaker lock");
      for (const p of pauses) p.go();
      const grants = (await Promise.all(tries)).map(settle);
      const held = grants.filter((g) => g !== null);
      // A contender that lost the breaker lock reports busy without waiting;
      // one that won it breaks and takes the lock; so does nobody else.
      assert.ok(held.length <= 1, `${held.length} holders`);
      if (held.length === 1) assert.equal(holderPid(world, file), held[0]!.info.pid);
      // Whoever did not get it now finds a live holder or takes the free lock.
      const again = await socketTarget(world.process(34).runtime, settings(name)).tryAcquire();
      const late = settle(again);
      assert.equal(held.length + (late ? 1 : 0), 1, "exactly one holder in the end");
      await (held[0] ?? late)!.release();
    },
  );

  interleaving(
    "a holder releasing while a contender judges it leaves the next holder's file alone",
    async () => {
      const name = `race4-${randomHex(4)}`;
      const world = createWorld();
      const [h, x, d] = [world.process(41), world.process(42), world.process(43)];
      await h.runtime.mkdir(DIR, 0o700);
      const file = lockPaths(DIR, name, false).file;
      const hGrant = settle(await socketTarget(h.runtime, settings(name)).tryAcquire())!;
      // X has read H's file and stops before its handshake with H.
      const xPause = pauseBeforeConnecting(x);
      const xTry = socketTarget(x.runtime, settings(name)).tryAcquire();
      await within(xPause.arrived, "xPause reaches its pause");
      await hGrant.release();
      const dGrant = settle(await socketTarget(d.runtime, settings(name)).tryAcquire());
      assert.ok(dGrant, "D took the released lock");
      xPause.go();
      assert.equal(
        settle(await xTry),
        null,
        "X judged H's gone lock stale but found D's in its place",
      );
      assert.equal(holderPid(world, file), 43);
      await dGrant.release();
    },
  );

  interleaving("a live holder's file is never broken however often it is checked", async () => {
    const name = `live-${randomHex(4)}`;
    const world = createWorld();
    const h = world.process(51);
    await h.runtime.mkdir(DIR, 0o700);
    const file = lockPaths(DIR, name, false).file;
    const grant = settle(await socketTarget(h.runtime, settings(name)).tryAcquire())!;
    const before = world.files.get(file)?.data;
    const others = Array.from({ length: 8 }, (_, i) => world.process(60 + i));
    for (let round = 0; round < 3; round++) {
      const attempts = await Promise.all(
        others.map((o) => socketTarget(o.runtime, settings(name)).tryAcquire()),
      );
      for (const attempt of attempts) {
        assert.equal(attempt.acquired, false);
        if (!attempt.acquired) assert.equal(attempt.holder?.pid, 51);
        settle(attempt);
      }
    }
    assert.equal(world.files.get(file)?.data, before);
    await grant.release();
  });

  interleaving(
    "maxAge breaks an old live lock, and the old holder's release leaves the new file alone",
    async () => {
      const name = `age-${randomHex(4)}`;
      const world = createWorld();
      const [old, young] = [world.process(71), world.process(72)];
      await old.runtime.mkdir(DIR, 0o700);
      const file = lockPaths(DIR, name, false).file;
      const oldGrant = settle(await socketTarget(old.runtime, settings(name)).tryAcquire())!;
      assert.equal(
        settle(await socketTarget(young.runtime, settings(name, { maxAge: 60_000 })).tryAcquire()),
        null,
        "a young lock is respected",
      );
      await new Promise((resolve) => setTimeout(resolve, 20));
      const youngGrant = settle(
        await socketTarget(young.runtime, settings(name, { maxAge: 5 })).tryAcquire(),
      );
      assert.ok(youngGrant, "an older lock was broken");
      await oldGrant.release();
      assert.equal(
        holderPid(world, file),
        72,
        "the old holder's release removed nothing of the new one",
      );
      await youngGrant.release();
    },
  );

  interleaving(
    "a long-held lock broken by maxAge while its holder is mid-release: the release never removes the new holder's file",
    async () => {
      const name = `midrel-${randomHex(4)}`;
      const world = createWorld();
      const [old, breaker, third] = [world.process(73), world.process(74), world.process(75)];
      await old.runtime.mkdir(DIR, 0o700);
      const file = lockPaths(DIR, name, false).file;
      const oldGrant = settle(await socketTarget(old.runtime, settings(name)).tryAcquire())!;
      // Held long enough that a maxAge breaker may act (half the least maxAge).
      await new Promise((resolve) => setTimeout(resolve, 550));
      // The old holder has read its file, and stops before renaming it away.
      const paused = pauseAt(old, (op, path) => op === "rename" && path === file);
      const releasing = oldGrant.release();
      await within(paused.arrived, "the old holder is mid-release");
      const aged = () => socketTarget(breaker.runtime, settings(name, { maxAge: 5 })).tryAcquire();
      const during = settle(await aged());
      paused.go();
      await releasing;
      const newGrant = during ?? settle(await aged());
      assert.ok(newGrant, "the breaker gets the lock, during or after the release");
      assert.equal(holderPid(world, file), 74, "the new holder's file is in place");
      assert.equal(
        settle(await socketTarget(third.runtime, settings(name)).tryAcquire()),
        null,
        "a third process finds the lock held",
      );
      await newGrant.release();
    },
  );

  interleaving("two first users of a lock directory end up with the same key", async () => {
    const world = createWorld();
    const [a, b] = [world.process(81), world.process(82)];
    await a.runtime.mkdir(DIR, 0o700);
    const aPause = pauseAt(a, (op, path) => op === "link" && path.endsWith("socketlock.key"));
    const aKey = loadSecret(a.runtime, DIR);
    await within(aPause.arrived, "aPause reaches its pause"); // A wrote its candidate, not yet linked
    const bKey = await loadSecret(b.runtime, DIR);
    aPause.go();
    assert.deepEqual(await aKey, bKey);
    assert.deepEqual(
      [...world.files.keys()].filter((path) => path.includes("socketlock.key")),
      [`${DIR}/socketlock.key`],
      "no temp file is left behind",
    );
  });

  interleaving(
    "the next holder's token outgrows a crashed holder's, even one from a clock ahead",
    async () => {
      const name = `crash-${randomHex(4)}`;
      const world = createWorld();
      const next = world.process(91);
      await next.runtime.mkdir(DIR, 0o700);
      const file = lockPaths(DIR, name, false).file;
      const future = Date.now() * 1000 + 3_600_000_000; // an hour ahead, in µs
      world.files.set(file, {
        kind: "file",
        data: staleText(name, await freePort(), future),
        mode: 0o600,
        mtimeMs: 0,
      });
      const grant = settle(await socketTarget(next.runtime, settings(name)).tryAcquire())!;
      assert.ok(grant.token > future, `${grant.token} > ${future}`);
      assert.equal(parseLockFile(world.files.get(file)!.data)?.token, grant.token);
      await grant.release();
      const after = settle(await socketTarget(next.runtime, settings(name)).tryAcquire())!;
      assert.ok(after.token > grant.token);
      await after.release();
    },
  );
});

describe("fencing tokens never go down", () => {
  const future = () => Date.now() * 1000 + 3_600_000_000; // an hour ahead, in µs

  interleaving(
    "a dead holder's file with a token below `.last` (it died before outgrowing it) is removed, not retired",
    async () => {
      const name = `below-${randomHex(4)}`;
      const world = createWorld();
      const next = world.process(95);
      await next.runtime.mkdir(DIR, 0o700);
      const paths = lockPaths(DIR, name, false);
      const last = future();
      const put = (path: string, data: string) =>
        world.files.set(path, { kind: "file", data, mode: 0o600, mtimeMs: 0 });
      put(paths.last, staleText(name, await freePort(), last));
      put(paths.file, staleText(name, await freePort(), 1));
      const grant = settle(await socketTarget(next.runtime, settings(name)).tryAcquire())!;
      assert.ok(grant.token > last, `${grant.token} > ${last}`);
      await grant.release();
    },
  );

  interleaving(
    "a failed token rewrite withdraws the new file and leaves `.last` and no temp file",
    async () => {
      const name = `rewrite-${randomHex(4)}`;
      const world = createWorld();
      const proc = world.process(96);
      await proc.runtime.mkdir(DIR, 0o700);
      const paths = lockPaths(DIR, name, false);
      const lastText = staleText(name, await freePort(), future());
      world.files.set(paths.last, { kind: "file", data: lastText, mode: 0o600, mtimeMs: 0 });
      proc.hook = (op, path) => {
        if (op === "rename" && path.endsWith(".re.tmp")) {
          throw Object.assign(new Error(`EIO: ${path}`), { code: "EIO" });
        }
      };
      await assert.rejects(socketTarget(proc.runtime, settings(name)).tryAcquire(), /EIO/);
      assert.equal(world.files.has(paths.file), false, "the new file is withdrawn");
      assert.equal(world.files.get(paths.last)?.data, lastText, "`.last` is untouched");
      assert.deepEqual([...world.files.keys()].filter((path) => path.endsWith(".tmp")), []);
    },
  );
});

describe("stale socket locks in a real directory", () => {
  const dirs: string[] = [];
  const servers: net.Server[] = [];
  after(async () => {
    for (const server of servers) server.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  async function withLockFile(text: (name: string) => string | Promise<string>) {
    const dir = await tempDir();
    dirs.push(dir);
    const name = `real-${randomHex(4)}`;
    await writeFile(`${dir}/${name}.lock`, await text(name), { mode: 0o600 });
    return { dir, name };
  }

  async function imposter(onConnection: (socket: net.Socket) => void): Promise<number> {
    const server = net.createServer((socket) => {
      socket.on("error", () => {});
      onConnection(socket);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as net.AddressInfo).port;
  }

  const imposters: [string, (socket: net.Socket) => void][] = [
    ["accepts and never answers", () => {}],
    ["answers with another protocol's banner", (s) => s.end("SSH-2.0-OpenSSH_9.6\r\n")],
    ["closes at once", (s) => s.destroy()],
    [
      "answers SOCKETLOCK_OK with a made-up HMAC",
      (s) => s.end(`SOCKETLOCK_OK ${"0".repeat(64)}\n`),
    ],
    ["floods 1 MB", (s) => s.end(Buffer.alloc(1 << 20, 65))],
    [
      "answers Python's public SOCKETLOCK_ACTIVE constant",
      (s) => s.end("SOCKETLOCK_ACTIVE:0123456789abcdef"),
    ],
  ];
  for (const [what, behave] of imposters) {
    test(`an imposter on the recorded port that ${what} does not block acquisition`, async () => {
      const port = await imposter(behave);
      const { dir, name } = await withLockFile((n) => staleText(n, port, 1, runtime.hostname()));
      const started = performance.now();
      const held = await tryLock(name, { dir, handshakeTimeout: 200 });
      assert.ok(held, "acquired");
      assert.ok(performance.now() - started < 1_500);
      assert.equal(held.info.pid, runtime.pid);
      await held.release();
    });
  }

  const silences: [string, (socket: net.Socket) => void][] = [
    ["a silent listener", () => {}],
    // A Node holder out of file descriptors accepts, then closes at once.
    ["a listener that closes every connection unanswered", (s) => s.destroy()],
  ];
  for (const [what, behave] of silences) {
    test(`${what} on the port of a live pid is not broken: silence proves nothing`, async () => {
      const port = await imposter(behave);
      const { dir, name } = await withLockFile((n) =>
        formatLockFile({
          pid: runtime.pid, // alive: as a holder whose event loop is busy
          port,
          acquiredAt: Date.now(),
          host: runtime.hostname(),
          name: n,
          id: randomHex(16),
          token: 1,
        }, false)
      );
      const before = await readFile(`${dir}/${name}.lock`, "utf8");
      assert.equal(await tryLock(name, { dir, handshakeTimeout: 100 }), null);
      assert.equal(
        await readFile(`${dir}/${name}.lock`, "utf8"),
        before,
        "the lock file is untouched",
      );
    });
  }

  for (const rt of childRuntimes(1)) {
    test(`a ${rt} holder blocking its event loop past the handshake timeout keeps its lock`, async () => {
      const dir = await tempDir();
      const name = `blocked-${randomHex(4)}`;
      const holder = spawnScript(rt, fixture("socket_blocking_holder.ts"), [
        JSON.stringify({ kind: "socket", dir }),
        name,
        "1500",
      ]);
      try {
        await holder.waitFor("held");
        for (let i = 0; i < 3; i++) {
          assert.equal(
            await tryLock(name, { kind: "socket", dir, handshakeTimeout: 150 }),
            null,
            "a contender must not break a live holder that is merely busy",
          );
        }
        await holder.waitFor("released");
        const held = await lock(name, { kind: "socket", dir, timeout: 5_000 });
        await held.release();
      } finally {
        holder.process.kill("SIGKILL");
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  const garbage: [string, string][] = [
    ["garbage text", "this is not a lock"],
    ["an empty file", ""],
    ["binary junk", "\u0000\uffff\u0001\u00fe"],
    ["truncated JSON", '{"kind":"socket","pid":12,"po'],
    ["JSON naming port 0", '{"kind":"socket","pid":12,"port":0,"acquiredAt":1}'],
  ];
  for (const [what, text] of garbage) {
    test(`a lock file holding ${what} is broken and the lock taken`, async () => {
      const { dir, name } = await withLockFile(() => text);
      const held = await tryLock(name, { dir });
      assert.ok(held);
      await held.release();
    });
  }

  const ours = runtime.namespaceId();
  const noNamespaces = ours === null && "namespaces unknown: not Linux, or Deno without -A";
  test(
    "a lock file from other namespaces (a container sharing dir and host name) is never broken here",
    {
      skip: noNamespaces,
    },
    async () => {
      if (ours === null) return;
      const port = await freePort();
      const { dir, name } = await withLockFile((n) => {
        const record = parseLockFile(staleText(n, port, 1, runtime.hostname()))!;
        // Both namespaces differ: neither its pid nor its port can be checked.
        const [pid, net] = ours.split(":");
        return formatLockFile({ ...record, ns: `${pid}0:${net}0` }, false);
      });
      assert.equal(await tryLock(name, { dir, handshakeTimeout: 200 }), null);
      assert.equal(parseLockFile(await readFile(`${dir}/${name}.lock`, "utf8"))?.port, port);
      const info = await inspect(name, { dir });
      assert.equal(info?.pid, 999_999, "shown as held, by the recorded pid");
    },
  );

  test(
    "a lock file from another network namespace only is broken once its pid is gone, as that still proves it",
    {
      skip: noNamespaces,
    },
    async () => {
      if (ours === null) return;
      const [pid, net] = ours.split(":");
      const { dir, name } = await withLockFile((n) => {
        const record = parseLockFile(staleText(n, 1, 1, runtime.hostname()))!; // pid 999999: gone
        return formatLockFile({ ...record, ns: `${pid}:${net}0` }, false);
      });
      const held = await tryLock(name, { dir, handshakeTimeout: 200 });
      assert.ok(held, "a dead pid in our pid namespace proves the holder gone");
      await held.release();
    },
  );

  test("the breaker lock's name is secret: binding the one anyone can compute stalls no break", async () => {
    const { dir, name } = await withLockFile((n) => staleText(n, 1, 1, runtime.hostname()));
    // What a hostile local user could bind: the name derived from uid and lock name.
    const squatter = await holdPortKey(runtime, await breakerKey(runtime, name, null));
    assert.ok(squatter, "bound the public breaker key");
    try {
      const held = await tryLock(name, { dir, handshakeTimeout: 200 });
      assert.ok(held, "the stale lock was broken and taken");
      await held.release();
    } finally {
      await squatter();
    }
  });

  test("a lock file naming another user's socketlock holder (another key) is broken; that holder keeps its own lock", async () => {
    const otherDir = await tempDir();
    dirs.push(otherDir);
    const name = `foreign-${randomHex(4)}`;
    const other = new SocketLock(name, { dir: otherDir, signatureSeed: "someone-else" });
    assert.equal(await other.tryAcquire(), true);
    try {
      const dir = await tempDir();
      dirs.push(dir);
      await writeFile(`${dir}/${name}.lock`, staleText(name, other.port!, 1, runtime.hostname()));
      const held = await tryLock(name, { dir });
      assert.ok(held, "the foreign holder's answer did not pass for ours");
      await held.release();
      const otherFile = parseLockFile(await readFile(`${otherDir}/${name}.lock`, "utf8"));
      assert.equal(otherFile?.port, other.port, "the other holder's own lock file is untouched");
      assert.equal((await other.getLockInfo())?.port, other.port);
    } finally {
      await other.release();
    }
  });

  test("a directory where the lock file belongs gets a clear error, and is left alone", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    await mkdir(`${dir}/blocked.lock`);
    await assert.rejects(tryLock("blocked", { dir }), (error: unknown) => {
      assert.ok(error instanceof LockPermissionError);
      assert.match(error.message, /is a directory/);
      return true;
    });
    assert.ok((await stat(`${dir}/blocked.lock`)).isDirectory());
  });

  test("lock() waits through a stale file left by a holder that is gone", async () => {
    const port = await freePort();
    const { dir, name } = await withLockFile((n) => staleText(n, port, 1, runtime.hostname()));
    const held = await lock(name, { dir, timeout: 2_000 });
    assert.equal(held.info.pid, runtime.pid);
    await held.release();
  });
});
