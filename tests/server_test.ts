// The lock server over real TCP on loopback: mutual exclusion under load,
// FIFO waiters, crash release, lease expiry, renewal, owner-only release,
// fencing tokens across restarts, and processes of every runtime.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { LockClient, type LockServer, serve } from "../mod.ts";
import {
  type Child,
  childRuntimes,
  fixture,
  RUNTIMES,
  spawnScript,
  tempDir,
} from "./_processes.ts";
import { RawConnection, serveProcess, signal, sleep, within } from "./_server_helpers.ts";

describe("the lock server", () => {
  let server: LockServer;
  let port: number;
  const clients: LockClient[] = [];
  const raws: RawConnection[] = [];
  const kids: Child[] = [];
  const dirs: string[] = [];
  const client = () => {
    const made = new LockClient({ port });
    clients.push(made);
    return made;
  };
  const raw = async () => {
    const made = await RawConnection.open(port);
    raws.push(made);
    return made;
  };
  before(async () => {
    server = await serve({ port: 0 });
    port = server.address.port;
  });
  after(async () => {
    for (const kid of kids) kid.process.kill("SIGKILL");
    for (const made of raws) made.close();
    for (const made of clients) await made.close();
    await server.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  test("100 clients over 10 names never overlap, and each name's counter ends exact", async () => {
    const counters = new Map<string, number>();
    const inside = new Map<string, number>();
    const rounds = 20;
    const workers = Array.from({ length: 100 }, () => client()).map(async (c, i) => {
      const name = `mutex-${i % 10}`;
      for (let round = 0; round < rounds; round++) {
        await c.acquire(name, { timeout: 60_000 });
        inside.set(name, (inside.get(name) ?? 0) + 1);
        assert.equal(inside.get(name), 1, `one holder of ${name} at a time`);
        const value = counters.get(name) ?? 0;
        await new Promise((resolve) => setTimeout(resolve, 0)); // a read-modify-write with a gap
        counters.set(name, value + 1);
        inside.set(name, inside.get(name)! - 1);
        assert.equal(await c.release(name), true);
      }
    });
    await within(Promise.all(workers), 90_000, "100 clients");
    for (let n = 0; n < 10; n++) assert.equal(counters.get(`mutex-${n}`), 10 * rounds);
    assert.equal(server.stats().held, 0);
  });

  test("waiters are granted in the order they queued, the moment the lock frees", async () => {
    const holder = await raw();
    assert.match(await holder.ask("ACQUIRE fifo"), /^q\d+ OK \d+ 10000 0$/);
    const waiters: RawConnection[] = [];
    for (let i = 0; i < 5; i++) {
      const waiter = await raw();
      waiter.send(`w${i} ACQUIRE fifo 10000\n`);
      await waiter.waitLine(new RegExp(`^w${i} QUEUED ${i + 1} `));
      waiters.push(waiter);
    }
    const order: number[] = [];
    const granted = waiters.map(async (waiter, i) => {
      await waiter.waitLine(new RegExp(`^w${i} OK `), 10_000);
      order.push(i);
      await sleep(5);
      assert.match(await waiter.ask("RELEASE fifo"), / OK$/);
    });
    const freed = performance.now();
    assert.match(await holder.ask("RELEASE fifo"), / OK$/);
    await within(granted[0], 2_000, "first waiter");
    assert.ok(performance.now() - freed < 1_000, "no polling delay");
    await within(Promise.all(granted), 10_000, "all waiters");
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
  });

  test("a client's dropped connection hands its lock to the next waiter at once, long before its lease ends", async () => {
    const holder = await raw();
    assert.match(await holder.ask("ACQUIRE crash 0 60000"), / OK /);
    const waiter = client();
    const waiting = waiter.acquire("crash", { timeout: 30_000 });
    await sleep(50);
    const dropped = performance.now();
    holder.close();
    const lease = await within(waiting, 5_000, "the waiter's grant");
    assert.ok(
      performance.now() - dropped < 2_000,
      `granted ${performance.now() - dropped} ms after the drop`,
    );
    assert.ok(lease.token > 0);
    await waiter.release("crash");
  });

  for (const rt of childRuntimes(2)) {
    test(`a killed ${rt} holder process's lock goes to the next waiter at once`, async () => {
      const holder = spawnScript(rt, fixture("hold_lock.ts"), [
        JSON.stringify({ server: `127.0.0.1:${port}` }),
        `killed-${rt}`,
      ]);
      kids.push(holder);
      await holder.waitFor("held", 30_000);
      const status = await client().status(`killed-${rt}`);
      assert.equal(status?.pid, holder.pid, "the server names the holder's pid");
      const waiter = client();
      const waiting = waiter.acquire(`killed-${rt}`, { timeout: 30_000 });
      await sleep(50);
      const killed = performance.now();
      holder.process.kill("SIGKILL");
      await within(waiting, 5_000, "the waiter's grant");
      assert.ok(performance.now() - killed < 3_000, "well before the 10 s lease ends");
      await waiter.release(`killed-${rt}`);
    });
  }

  test("an unrenewed lease expires: its holder is told LOST, then the next waiter is granted", async () => {
    const holder = await raw();
    // Before the ACQUIRE is sent, so before the server starts the lease: a
    // lower bound that load can only make safer.
    const start = performance.now();
    const granted = await holder.ask("ACQUIRE expiring 0 300");
    const token = granted.split(" ")[2];
    const waiter = await raw();
    waiter.send("w ACQUIRE expiring 5000\n");
    await waiter.waitLine(/^w QUEUED/);
    const lost = await holder.waitLine(/^\* LOST /, 5_000);
    assert.equal(lost, `* LOST expiring ${token} expired`);
    const grant = await waiter.waitLine(/^w OK /, 5_000);
    assert.ok(performance.now() - start >= 290, "not before the lease ran out");
    assert.ok(Number(grant.split(" ")[2]) > Number(token));
    assert.match(await holder.ask(`RENEW expiring ${token}`), /ERR NOT_HOLDER/);
    assert.match(await holder.ask(`RELEASE expiring ${token}`), /ERR NOT_HOLDER/);
    assert.match(await holder.ask("STATUS expiring"), /"client":"conn-\d+"/);
  });

  test("renewing keeps a lease past its ttl, and a waiter gets the lock only after the release", async () => {
    const holder = await raw();
    // A 1 s lease renewed every 300 ms: only a renewal late by 700 ms loses it.
    const token = (await holder.ask("ACQUIRE renewed 0 1000")).split(" ")[2];
    const waiter = await raw();
    waiter.send("w ACQUIRE renewed 20000\n");
    for (let i = 0; i < 5; i++) {
      await sleep(300);
      assert.match(
        await holder.ask(`RENEW renewed ${token} 1000`),
        new RegExp(` OK ${token} 1000$`),
      );
    }
    assert.equal(
      waiter.lines().some((line) => /^w OK/.test(line)),
      false,
      "still waiting after 1.5 s, past the 1 s ttl",
    );
    assert.match(await holder.ask(`RELEASE renewed ${token}`), / OK$/);
    await waiter.waitLine(/^w OK /);
  });

  test("only the holder can release: another connection's RELEASE is refused and the lock stays held", async () => {
    const holder = await raw();
    const token = (await holder.ask("ACQUIRE mine")).split(" ")[2];
    const other = await raw();
    assert.match(await other.ask("RELEASE mine"), /ERR NOT_HOLDER .*does not hold "mine"/);
    assert.match(await other.ask(`RELEASE mine ${token}`), /ERR NOT_HOLDER/);
    assert.match(await other.ask("ACQUIRE mine"), /BUSY \{"token":/);
    assert.match(
      await holder.ask(`RELEASE mine ${Number(token) + 1}`),
      /ERR NOT_HOLDER/,
      "a wrong token is refused too",
    );
    assert.match(await holder.ask(`RELEASE mine ${token}`), / OK$/);
  });

  test("CANCEL withdraws a wait, which is then never granted", async () => {
    const holder = await raw();
    await holder.ask("ACQUIRE cancelled");
    const waiter = await raw();
    waiter.send("w ACQUIRE cancelled forever\n");
    await waiter.waitLine(/^w QUEUED/);
    assert.match(await waiter.ask("CANCEL w"), / OK$/);
    assert.ok(waiter.lines().includes("w CANCELLED"));
    assert.match(await waiter.ask("CANCEL w"), /ERR NOT_WAITING/);
    await holder.ask("RELEASE cancelled");
    assert.match(await waiter.ask("STATUS cancelled"), /"held":false/);
  });

  test("STATS reports held locks, waits, connections and operations per second", async () => {
    const a = await raw();
    await a.ask("ACQUIRE stats-1");
    const b = await raw();
    b.send("w ACQUIRE stats-1 60000\n");
    await b.waitLine(/^w QUEUED/);
    await sleep(1_100); // one sampling second
    const stats = JSON.parse((await a.ask("STATS")).replace(/^q\d+ OK /, ""));
    assert.ok(
      stats.held >= 1 && stats.waiting >= 1 && stats.connections >= 2,
      JSON.stringify(stats),
    );
    assert.ok(stats.operations > 0 && typeof stats.opsPerSecond === "number");
    a.close();
    await b.waitLine(/^w OK /);
  });

  test("processes of deno, bun and node exclude each other through one server", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const file = `${dir}/counter`;
    await writeFile(file, "0");
    const options = JSON.stringify({ server: `127.0.0.1:${port}`, timeout: 60_000 });
    const workers = RUNTIMES.map((rt) =>
      spawnScript(rt, fixture("counter_worker.ts"), [options, "shared-counter", file, "40"])
    );
    kids.push(...workers);
    const results = await within(
      Promise.all(workers.map((w) => w.done)),
      90_000,
      "counter workers",
    );
    for (const result of results) assert.equal(result.code, 0, result.stderr);
    assert.equal(Number(await readFile(file, "utf8")), 120);
  });

  for (const rt of childRuntimes(0)) {
    test(`fencing tokens keep increasing across a crash and restart of a ${rt} server`, async () => {
      const tokens: number[] = [];
      for (let life = 0; life < 2; life++) {
        const proc = await serveProcess(rt);
        kids.push(proc.child);
        const c = new LockClient({ port: proc.port });
        for (let i = 0; i < 20; i++) {
          tokens.push((await c.acquire(i % 2 ? "fenced" : "other")).token);
          await c.release(i % 2 ? "fenced" : "other");
        }
        await c.close();
        signal(proc.child.pid, "SIGKILL"); // a crash: nothing is saved
        await proc.child.done;
      }
      for (let i = 1; i < tokens.length; i++) {
        assert.ok(tokens[i] > tokens[i - 1], `token ${i}: ${tokens[i - 1]} then ${tokens[i]}`);
      }
    });
  }
});
