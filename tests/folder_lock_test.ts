// FolderLock's seed surface, and interop with Python lockfolder bids.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { FolderLock, InvalidLockNameError, LockTimeoutError } from "../mod.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { GARBAGE_GRACE_MS } from "../lib/folder/challenge_bid.ts";
import { parseBid } from "../lib/folder/bid.ts";
import { type Child, fixture, spawnCommand, spawnScript, tempDir } from "./_processes.ts";
import { NO_POLLING, wokenWithin } from "./_waiting.ts";

describe("FolderLock", () => {
  const dirs: string[] = [];
  const kids: Child[] = [];
  after(async () => {
    for (const kid of kids) kid.process.kill("SIGKILL");
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  async function folder(): Promise<string> {
    const dir = await tempDir();
    dirs.push(dir);
    return `${dir}/locks`;
  }

  test("await using releases a FolderLock at the end of its scope", async () => {
    const path = await folder();
    const lockObject = new FolderLock(path);
    assert.equal(typeof lockObject[Symbol.asyncDispose], "function");
    assert.equal(await lockObject.tryAcquire(), true);
    await lockObject[Symbol.asyncDispose]();
    assert.equal(lockObject.held, null);
    assert.equal(await new FolderLock(path).getLockInfo(), null);
  });

  /** A live process whose bid we forge in Python's exact format. */
  function sleeper(): number {
    const child = spawnCommand("sleep", ["30"]);
    kids.push(child);
    return child.pid;
  }

  test("tryAcquire, getLockInfo and release work, and a second FolderLock is refused meanwhile", async () => {
    const path = await folder();
    const a = new FolderLock(path);
    const b = new FolderLock(path);
    assert.equal(await a.tryAcquire(), true);
    assert.equal(await b.tryAcquire(), false);
    const info = await b.getLockInfo();
    assert.equal(info?.pid, runtime.pid);
    assert.equal(info?.kind, "folder");
    await a.release();
    await a.release();
    assert.equal(await b.getLockInfo(), null);
    await b.acquire({ timeout: 1_000 });
    assert.equal(b.held?.kind, "folder");
    await b.release();
  });

  test("a waiter that meets a bid made a moment ago still wakes on its release, not at its next poll", async () => {
    const path = await folder();
    // Polling would try again only after a minute.
    const lock = new FolderLock(path, { retry: NO_POLLING });
    assert.equal(await lock.tryAcquire(), true); // creates the folder
    await lock.release();
    // Another process's bid, as young as a contender's for the next 35 ms
    // (its clock a little ahead of ours), so surely at the waiter's first try.
    const pid = sleeper();
    let started = null;
    for (let i = 0; i < 50 && started === null; i++) started = await runtime.startTime(pid);
    const bid = `${path}/other-holder.json`;
    await writeFile(
      bid,
      JSON.stringify({
        PID: pid,
        CREATED: started!.created,
        TICKS: started!.ticks,
        acquiredAt: Date.now() + 30,
      }),
    );
    const waiting = wokenWithin(10_000, ({ signal }) => lock.acquire({ signal }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    await rm(bid);
    await waiting;
    await lock.release();
  });

  test("an empty folder path is refused with InvalidLockNameError", () => {
    assert.throws(() => new FolderLock(""), InvalidLockNameError);
  });

  test("a folder removed while a FolderLock uses it is made again by its next try", async () => {
    const path = await folder();
    const lock = new FolderLock(path);
    assert.equal(await lock.tryAcquire(), true);
    await lock.release();
    await rm(path, { recursive: true });
    assert.equal(await lock.tryAcquire(), true);
    await lock.release();
  });

  test("our bid is a <uuid>.json file with Python lockfolder's PID and CREATED", async () => {
    const path = await folder();
    const lock = new FolderLock(path);
    await lock.acquire();
    const [name] = (await readdir(path)).filter((n) => n.endsWith(".json"));
    assert.match(name, /^[0-9a-f-]{36}\.json$/);
    const text = await readFile(`${path}/${name}`, "utf8");
    const bid = JSON.parse(text);
    assert.equal(bid.PID, runtime.pid);
    // Every field well-typed (parseBid drops any that is not), and the holder's own.
    assert.deepEqual(parseBid(text), bid);
    const { info } = lock.held!;
    assert.deepEqual([bid.host, bid.acquiredAt, bid.isolate], [
      info.host,
      info.acquiredAt,
      info.isolate,
    ]);
    assert.equal(typeof bid.beacon, "string");
    // psutil's int(create_time()), computed here by Python itself.
    const python = spawnCommand("python3", [
      "-c",
      `import os\nd=open('/proc/${runtime.pid}/stat').read()\nf=d[d.rfind(')')+2:].split()\n` +
      `b=[float(l.split()[1]) for l in open('/proc/stat') if l.startswith('btime')][0]\n` +
      `print(int(float(f[19])/os.sysconf('SC_CLK_TCK')+b))`,
    ]);
    kids.push(python);
    const { stdout } = await python.done;
    assert.equal(bid.CREATED, Number(stdout.trim()));
    await lock.release();
    assert.deepEqual((await readdir(path)).filter((n) => n.endsWith(".json")), []);
  });

  test("the token counter grows by one per acquisition, from an older unpadded, a garbage or a FIFO file too", async () => {
    const path = await folder();
    const lock = new FolderLock(path);
    // A counter as earlier versions wrote it, before this process locked here.
    await mkdir(path, { recursive: true, mode: 0o700 });
    await writeFile(`${path}/token`, "41");
    await lock.acquire();
    assert.equal(lock.held!.token, 42);
    await lock.release();
    await lock.acquire();
    assert.equal(lock.held!.token, 43);
    await lock.release();
    // Rewritten in place, 16 digits wide, so every write covers the last.
    assert.equal(await readFile(`${path}/token`, "utf8"), "0000000000000043");
    // Garbage is no counter: it goes on from the clock in µs.
    await writeFile(`${path}/token`, "not a counter, and longer than sixteen bytes");
    let before = Date.now() * 1000;
    await lock.acquire();
    let token = lock.held!.token;
    assert.ok(token >= before, `${token} < ${before}`);
    await lock.release();
    assert.equal(await readFile(`${path}/token`, "utf8"), String(token).padStart(16, "0"));
    if (runtime.platform === "linux") {
      // A FIFO planted as the counter reads as empty, without blocking, and
      // is replaced like any garbage.
      await rm(`${path}/token`);
      await spawnCommand("mkfifo", [`${path}/token`]).done;
      before = Date.now() * 1000;
      await lock.acquire();
      assert.ok(lock.held!.token > token && lock.held!.token >= before);
      token = lock.held!.token;
      await lock.release();
      assert.equal(await readFile(`${path}/token`, "utf8"), String(token).padStart(16, "0"));
      // One that a process keeps filled with digits cannot be written in
      // place (ESPIPE): replaced, going on from the digits read.
      await rm(`${path}/token`);
      await spawnCommand("mkfifo", [`${path}/token`]).done;
      const fed = token + 1_000_000;
      const feeder = spawnCommand("sh", [
        "-c",
        `exec 3<>"$0"; printf ${String(fed).padStart(16, "0")} >&3; echo fed; sleep 30`,
        `${path}/token`,
      ]);
      try {
        await feeder.waitFor("fed", 10_000);
        await lock.acquire();
        assert.equal(lock.held!.token, fed + 1);
        await lock.release();
        assert.equal(await readFile(`${path}/token`, "utf8"), String(fed + 1).padStart(16, "0"));
      } finally {
        feeder.process.kill("SIGKILL");
      }
    }
  });

  test("a Python-format bid of a live process blocks; one with a reused pid is removed", async () => {
    const path = await folder();
    const lock = new FolderLock(path);
    assert.equal(await lock.tryAcquire(), true); // creates the folder
    await lock.release();
    const pid = sleeper();
    let started: number | null = null;
    for (let i = 0; i < 50 && started === null; i++) {
      started = (await runtime.startTime(pid))?.created ?? null;
    }
    await writeFile(`${path}/python-peer.json`, JSON.stringify({ PID: pid, CREATED: started }));
    const error = await lock.acquire({ timeout: 50 }).catch((e) => e);
    assert.ok(error instanceof LockTimeoutError, String(error));
    assert.equal(error.holder?.pid, pid);
    await writeFile(
      `${path}/python-peer.json`,
      JSON.stringify({ PID: pid, CREATED: started! - 5 }),
    );
    assert.equal(
      await lock.tryAcquire(),
      true,
      "a live pid with another start time is a stale bid",
    );
    assert.deepEqual((await readdir(path)).filter((n) => n.startsWith("python-peer")), []);
    await lock.release();
  });

  test("a fresh garbage bid is kept and does not block; an old one is cleared", async () => {
    const path = await folder();
    const lock = new FolderLock(path);
    assert.equal(await lock.tryAcquire(), true);
    await lock.release();
    await writeFile(`${path}/half.json`, '{"PID": 4');
    assert.equal(await lock.tryAcquire(), true);
    await lock.release();
    assert.ok((await readdir(path)).includes("half.json"));
    const old = (Date.now() - GARBAGE_GRACE_MS - 5_000) / 1000;
    await utimes(`${path}/half.json`, old, old);
    assert.equal(await lock.tryAcquire(), true);
    await lock.release();
    assert.equal((await readdir(path)).includes("half.json"), false);
  });

  test("Python lockfolder peers and TypeScript processes exclude each other on one folder", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const counter = `${dir}/counter`;
    await writeFile(counter, "0");
    const options = JSON.stringify({ kind: "folder", dir, timeout: 60_000 });
    const workers = [
      spawnCommand("python3", [
        fixture("lockfolder_peer.py"),
        `${dir}/shared.folder`,
        counter,
        "40",
      ]),
      spawnCommand("python3", [
        fixture("lockfolder_peer.py"),
        `${dir}/shared.folder`,
        counter,
        "40",
      ]),
      spawnScript("node", fixture("counter_worker.ts"), [options, "shared", counter, "40"]),
      spawnScript("deno", fixture("counter_worker.ts"), [options, "shared", counter, "40"]),
    ];
    kids.push(...workers);
    for (const result of await Promise.all(workers.map((w) => w.done))) {
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /done/);
    }
    assert.equal(Number(await readFile(counter, "utf8")), 160);
  });
});
