// Forced interleavings of check-bid-check in a scripted world: simulated
// processes share one in-memory file system and pause where the test says.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createWorld, gate, type SimulatedProcess, type World } from "./_scripted_runtime.ts";
import { folderTarget } from "../lib/folder/folder_target.ts";
import { checkBidCheck } from "../lib/folder/check_bid_check.ts";
import { GARBAGE_GRACE_MS } from "../lib/folder/challenge_bid.ts";
import { isolateBeacon } from "../lib/folder/isolate_beacon.ts";

const FOLDER = "/locks/x.folder";

function setup(pids: number[]): { world: World; procs: SimulatedProcess[] } {
  const world = createWorld();
  world.files.set("/locks", { kind: "dir", data: "", mode: 0o700, mtimeMs: 0 });
  world.files.set(FOLDER, { kind: "dir", data: "", mode: 0o700, mtimeMs: 0 });
  return { world, procs: pids.map((pid) => world.process(pid)) };
}

/** Writes a bid file `name` into FOLDER holding `fields`, last modified at `mtimeMs`. */
function placeBid(
  world: World,
  name: string,
  fields: Record<string, unknown>,
  mtimeMs: number,
): void {
  world.files.set(`${FOLDER}/${name}`, {
    kind: "file",
    data: JSON.stringify(fields),
    mode: 0o600,
    mtimeMs,
  });
}

const bids = (world: World) =>
  [...world.files.keys()].filter((p) => p.startsWith(`${FOLDER}/`) && p.endsWith(".json"));

/**
 * Pauses `proc` at its `n`-th readDir (the n-th CHECK) until the gate opens,
 * and before writing its bid until `bidAfter` resolves. `bidding` resolves
 * once it is about to write its bid.
 */
function pauseAtCheck(proc: SimulatedProcess, n: number, bidAfter: () => Promise<void>) {
  const reached = gate();
  const release = gate();
  const bidding = gate();
  let checks = 0;
  proc.hook = async (op) => {
    if (op === "writeFileExclusive") {
      bidding.open();
      await bidAfter();
    }
    if (op === "readDir" && ++checks === n) {
      reached.open();
      await release.wait();
    }
  };
  return { reached: reached.wait, release: release.open, bidding: bidding.wait };
}

/**
 * Lets `a` and `b` bid, pauses each at its deciding CHECK (its `checkA`-th
 * and `checkB`-th readDir) with both bids in place, then lets both go: both
 * must see the other's bid, fail and withdraw. Each bids only once the other
 * is about to (its first CHECK, if it makes one, done): a first CHECK finds
 * no bid of the other's, however the two tries' steps happen to interleave.
 */
async function bothBidThenBothWithdraw(
  world: World,
  [a, b]: SimulatedProcess[],
  checkA: number,
  checkB: number,
): Promise<void> {
  const pa = pauseAtCheck(a, checkA, () => pb.bidding());
  const pb = pauseAtCheck(b, checkB, () => pa.bidding());
  const ra = folderTarget(a.runtime, "x", FOLDER).tryAcquire();
  const rb = folderTarget(b.runtime, "x", FOLDER).tryAcquire();
  await Promise.all([pa.reached(), pb.reached()]);
  assert.equal(bids(world).length, 2, "both bids are in place before either deciding CHECK");
  pa.release();
  pb.release();
  const [resultA, resultB] = await Promise.all([ra, rb]);
  assert.equal(resultA.acquired, false);
  assert.equal(resultB.acquired, false);
  assert.deepEqual(bids(world), [], "both withdrew their bids");
}

describe("check-bid-check under forced interleavings", () => {
  test("two contenders that both bid between the two checks both withdraw and neither holds", async () => {
    const { world, procs: [a, b] } = setup([101, 102]);
    await bothBidThenBothWithdraw(world, [a, b], 2, 2);
    const retry = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.equal(retry.acquired, true, "a retry alone gets through");
  });

  test("a contender that bids after the holder's second check fails and withdraws", async () => {
    const { world, procs: [a, b] } = setup([101, 102]);
    const first = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.ok(first.acquired);
    const second = await folderTarget(b.runtime, "x", FOLDER).tryAcquire();
    assert.equal(second.acquired, false);
    if (!second.acquired) assert.equal(second.holder?.pid, 101);
    assert.equal(bids(world).length, 1);
  });

  test("after its own release a process bids before it checks: one CHECK per lock in a loop", async () => {
    const { procs: [a] } = setup([101]);
    let checks = 0;
    a.hook = (op) => {
      if (op === "readDir") checks++;
      return Promise.resolve();
    };
    const target = folderTarget(a.runtime, "x", FOLDER);
    for (let i = 0; i < 5; i++) {
      const result = await target.tryAcquire();
      assert.ok(result.acquired);
      await result.grant.release();
    }
    assert.equal(checks, 2 + 4, "two CHECKs the first time, then one each");
  });

  test("a bid-first try after its own release loses to a holder that came in between, and withdraws", async () => {
    const { world, procs: [a, b] } = setup([101, 102]);
    const first = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.ok(first.acquired);
    await first.grant.release();
    const taken = await folderTarget(b.runtime, "x", FOLDER).tryAcquire();
    assert.ok(taken.acquired, "B holds");
    const holderBid = bids(world);
    const again = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.equal(again.acquired, false, "A's CHECK after its bid sees B's");
    if (!again.acquired) assert.equal(again.holder?.pid, 102);
    assert.deepEqual(bids(world), holderBid, "A withdrew its bid; B's is untouched");
    const ops: string[] = [];
    a.hook = (op) => {
      ops.push(op);
      return Promise.resolve();
    };
    const next = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.equal(next.acquired, false);
    assert.ok(ops.includes("readDir"), `A checked: ${ops}`);
    assert.ok(!ops.includes("writeFileExclusive"), `and found B before it bid again: ${ops}`);
  });

  test("a bid-first contender and a check-bid-check one that both bid before either CHECK both withdraw", async () => {
    const { world, procs: [a, b] } = setup([101, 102]);
    const first = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.ok(first.acquired);
    await first.grant.release();
    // A's only CHECK is its first readDir; B's deciding one is its second.
    await bothBidThenBothWithdraw(world, [a, b], 1, 2);
  });

  test("a breaker paused before deleting a dead holder's bid cannot remove a new holder's bid", async () => {
    const { world, procs: [dead, breakerA, breakerB, newcomer] } = setup([201, 202, 203, 204]);
    assert.ok((await folderTarget(dead.runtime, "x", FOLDER).tryAcquire()).acquired);
    const [deadBid] = bids(world);
    world.kill(201);
    // A judges the dead bid stale, then pauses right before removing it.
    const reached = gate();
    const resume = gate();
    breakerA.hook = async (op, path) => {
      if (op === "remove" && path === deadBid) {
        reached.open();
        await resume.wait();
      }
    };
    const resultA = folderTarget(breakerA.runtime, "x", FOLDER).tryAcquire();
    await reached.wait();
    // Meanwhile B breaks the same bid, and a newcomer takes the lock.
    const resultB = await folderTarget(breakerB.runtime, "x", FOLDER).tryAcquire();
    assert.ok(resultB.acquired, "B broke the stale bid and holds");
    if (resultB.acquired) await resultB.grant.release();
    const resultC = await folderTarget(newcomer.runtime, "x", FOLDER).tryAcquire();
    assert.ok(resultC.acquired, "the newcomer holds");
    const newcomerBid = bids(world);
    resume.open();
    const a = await resultA;
    assert.equal(a.acquired, false, "A sees the newcomer's live bid and fails");
    assert.deepEqual(bids(world), newcomerBid, "the newcomer's bid is untouched");
  });

  test("a bid whose pid was reused by another process is stale and removed", async () => {
    const { world, procs: [a, b] } = setup([301, 302]);
    assert.ok((await folderTarget(a.runtime, "x", FOLDER).tryAcquire()).acquired);
    world.alive.set(301, 9_999_999); // pid 301 now belongs to a newer process
    const result = await folderTarget(b.runtime, "x", FOLDER).tryAcquire();
    assert.equal(result.acquired, true);
    assert.equal(bids(world).length, 1);
  });

  test("a bid of a live process whose isolate's beacon is gone (a terminated worker) is stale", async () => {
    const { world, procs: [a, b] } = setup([311, 312]);
    const started = world.alive.get(311)!;
    const put = (name: string, beacon: string) =>
      placeBid(world, name, { PID: 311, CREATED: started, host: "scripted-host", beacon }, 0);
    put("live-worker.json", await isolateBeacon(a.runtime));
    const blocked = await folderTarget(b.runtime, "x", FOLDER).tryAcquire();
    assert.equal(blocked.acquired, false, "a listening beacon keeps the bid live");
    put("dead-worker.json", `abstract:${crypto.randomUUID()}`);
    world.files.delete(`${FOLDER}/live-worker.json`);
    const result = await folderTarget(b.runtime, "x", FOLDER).tryAcquire();
    assert.equal(
      result.acquired,
      true,
      "a beacon that refuses connections proves the isolate gone",
    );
    assert.equal(world.files.has(`${FOLDER}/dead-worker.json`), false);
  });

  test("a bid from another host is never judged by local pids", async () => {
    const { world, procs: [a] } = setup([401]);
    placeBid(
      world,
      "remote.json",
      { PID: 999_999, CREATED: 1, host: "elsewhere" },
      a.runtime.now(),
    );
    const result = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.equal(result.acquired, false);
    assert.ok(world.files.has(`${FOLDER}/remote.json`));
  });

  test("a bid from other namespaces (a container sharing folder and host name) is never judged here", async () => {
    const { world, procs: [a] } = setup([411]);
    // A pid that is not ours and a beacon that does not answer here.
    const put = (ns: string) =>
      placeBid(world, "container.json", {
        PID: 999_999,
        CREATED: 1,
        host: "scripted-host",
        ns,
        beacon: `abstract:${crypto.randomUUID()}`,
      }, a.runtime.now());
    put("7:7");
    const result = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.equal(result.acquired, false);
    assert.ok(world.files.has(`${FOLDER}/container.json`));
    put(a.runtime.namespaceId()!);
    const ours = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.equal(ours.acquired, true, "the same bid from our namespaces is judged, and stale");
    assert.equal(world.files.has(`${FOLDER}/container.json`), false);
  });

  test("a bid from another pid namespace only is judged by its beacon alone", async () => {
    const { world, procs: [a, b] } = setup([415, 416]);
    // Its pid means nothing here (another pid namespace); its beacon does.
    const put = (beacon: string) =>
      placeBid(world, "sidecar.json", {
        PID: 999_999,
        CREATED: 1,
        host: "scripted-host",
        ns: "7:1",
        beacon,
      }, a.runtime.now());
    put(await isolateBeacon(b.runtime));
    assert.equal((await folderTarget(a.runtime, "x", FOLDER).tryAcquire()).acquired, false);
    put(`abstract:${crypto.randomUUID()}`);
    const result = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.equal(result.acquired, true, "a refused beacon proves it gone");
  });

  test("start ticks decide over CREATED where a bid has them: a stepped wall clock moves CREATED", async () => {
    const { world, procs: [a] } = setup([421, 422]);
    const started = world.alive.get(422)!;
    const put = (fields: Record<string, number>) =>
      placeBid(
        world,
        "holder.json",
        { PID: 422, host: "scripted-host", ...fields },
        a.runtime.now(),
      );
    // CREATED as computed before a 3 s clock step; the ticks are exact.
    put({ CREATED: started - 3, TICKS: started * 100 });
    const live = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.equal(live.acquired, false, "the holder is live: its ticks match");
    // Right CREATED, but the ticks of another process under a reused pid.
    put({ CREATED: started, TICKS: started * 100 + 7 });
    const reused = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.equal(reused.acquired, true, "other ticks: the pid was reused");
  });

  test("a bid whose writer could not read its own start time (CREATED 0, no ticks) is live while its pid is", async () => {
    const { world, procs: [a] } = setup([431, 432]);
    const put = (pid: number) =>
      placeBid(
        world,
        "holder.json",
        { PID: pid, CREATED: 0, host: "scripted-host" },
        a.runtime.now(),
      );
    put(432);
    const live = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.equal(live.acquired, false, "a live pid: nothing else to compare");
    put(999_999);
    const gone = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.equal(gone.acquired, true, "its pid is gone");
  });

  test("a bid's temp file left by a crash is removed once old; a fresh one is left to its writer", async () => {
    const { world, procs: [a] } = setup([511]);
    const temp = `${FOLDER}/.${crypto.randomUUID()}.tmp`;
    world.files.set(temp, { kind: "file", data: "{}", mode: 0o600, mtimeMs: a.runtime.now() });
    const other = `${FOLDER}/.notes.tmp`;
    world.files.set(other, { kind: "file", data: "", mode: 0o600, mtimeMs: 0 });
    const first = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.ok(first.acquired);
    if (first.acquired) await first.grant.release();
    assert.ok(world.files.has(temp), "a fresh temp file may be a bid being written");
    world.files.get(temp)!.mtimeMs = a.runtime.now() - 60_000;
    const second = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.ok(second.acquired);
    assert.equal(world.files.has(temp), false, "an old one is removed");
    assert.ok(world.files.has(other), "files not named like our temp bids are left alone");
  });

  test("a fresh unreadable bid is passed over and kept; an old one is cleared", async () => {
    const { world, procs: [a] } = setup([501]);
    const garbage = `${FOLDER}/garbage.json`;
    world.files.set(garbage, {
      kind: "file",
      data: '{"PID": 12',
      mode: 0o600,
      mtimeMs: a.runtime.now(),
    });
    const first = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.ok(
      first.acquired,
      "a half-written bid does not block (its writer's own re-check will see ours)",
    );
    assert.ok(
      world.files.has(garbage),
      "and it is not deleted while it may still be being written",
    );
    if (first.acquired) await first.grant.release();
    world.files.get(garbage)!.mtimeMs = a.runtime.now() - GARBAGE_GRACE_MS - 1;
    const second = await folderTarget(a.runtime, "x", FOLDER).tryAcquire();
    assert.ok(second.acquired);
    assert.equal(world.files.has(garbage), false, "old garbage is cleared");
  });

  test("a full disk while bidding throws and leaves no bid behind", async () => {
    const { world, procs: [a] } = setup([601]);
    world.diskFull = true;
    await assert.rejects(
      checkBidCheck(a.runtime, FOLDER, JSON.stringify({ PID: 601, CREATED: 1 })),
      /ENOSPC/,
    );
    world.diskFull = false;
    assert.deepEqual(bids(world), []);
  });

  test("random interleavings with crashing holders never give two live holders", async () => {
    const { world, procs } = setup([701, 702, 703, 704]);
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const proc of procs) {
      proc.hook = async () => {
        for (let i = Math.floor(random() * 4); i > 0; i--) await Promise.resolve();
      };
    }
    const holders = new Set<number>();
    let grants = 0;
    let crashes = 0;
    async function contender(proc: SimulatedProcess) {
      const target = folderTarget(proc.runtime, "x", FOLDER);
      // Bounded in rounds; ends early once enough grants were seen.
      for (let round = 0; round < 2_000 && grants < 120; round++) {
        if (!world.alive.has(proc.runtime.pid)) world.alive.set(proc.runtime.pid, 1 + round * 7);
        const result = await target.tryAcquire();
        if (!result.acquired) {
          // Jittered backoff, as lock() does: without it contenders in
          // lock-step livelock (check-bid-check's known weakness).
          await new Promise((resolve) => setTimeout(resolve, random() * 2));
          continue;
        }
        for (const other of holders) {
          assert.ok(
            !world.alive.has(other),
            `pid ${other} still holds while ${proc.runtime.pid} got in`,
          );
        }
        holders.add(proc.runtime.pid);
        grants++;
        await Promise.resolve();
        if (random() < 0.2) {
          crashes++;
          world.kill(proc.runtime.pid); // dies holding: its bid stays behind
          holders.delete(proc.runtime.pid);
          continue;
        }
        holders.delete(proc.runtime.pid);
        await result.grant.release();
      }
    }
    await Promise.all(procs.map(contender));
    assert.ok(grants >= 120, `grants: ${grants}`);
    assert.ok(crashes > 5, `crashes: ${crashes}`);
  });
});
