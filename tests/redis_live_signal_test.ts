// A safety probe of the Redis kind against a real redis-server: holders on
// five clients take one name over and over — hand-offs to queued waiters,
// holders that stall past their lease, forceReleaseIfStale(0) hammered all
// along — and at every step, a holder whose signal is not aborted must be
// the owner Redis names, and no two holders with live signals overlap.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type HeldLock, lock, RedisLock } from "../mod.ts";
import { describeRedis } from "./_redis_server.ts";
import { redisSuite } from "./_redis_suite.ts";
import { inOneRunner } from "./_processes.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
// Stalls the event loop, as a busy or paused holder would.
function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* busy */ }
}

// 3 s of load: in one runner of three; SOCKETLOCK_ALL_RUNTIMES=1: all.
if (inOneRunner(0)) {
  describeRedis("Redis kind: live signals match Redis", () => {
    const suite = redisSuite();
    const client = () => suite.client();

    test(
      "with hand-offs, stalled holders and forceReleaseIfStale(0), a live signal always means Redis names that holder",
      async () => {
        const name = unique("live");
        const key = `socketlock:${name}`;
        const ttl = 300;
        const inside = new Set<HeldLock>();
        const violations: string[] = [];
        let sections = 0;
        const stop = performance.now() + 3_000;
        const breaker = new RedisLock(client(), name, { ttl });
        const hammer = (async () => {
          while (performance.now() < stop) {
            await breaker.forceReleaseIfStale(0);
            await sleep(1);
          }
        })();
        const worker = async (i: number) => {
          const c = client();
          for (let round = 0; round < 1_000 && performance.now() < stop; round++) {
            const held = await lock(name, { redis: c, ttl, timeout: 5_000 }).catch(() => null);
            if (!held) continue;
            sections++;
            for (const other of inside) {
              if (!other.signal.aborted && !held.signal.aborted) violations.push(`overlap (${i})`);
            }
            inside.add(held);
            for (let step = 0; step < 3; step++) {
              const live = !held.signal.aborted;
              const value = await suite.raw.get(key);
              const owner = value ? JSON.parse(value).owner : null;
              if (live && !held.signal.aborted && owner !== held.info.owner) {
                violations.push(`live signal while Redis names ${owner} (${i})`);
              }
              if (Math.random() < 0.05) stall(ttl * (0.5 + Math.random()));
              else await sleep(Math.random() * 5);
            }
            inside.delete(held);
            await held.release();
          }
        };
        await Promise.all([0, 1, 2, 3, 4].map(worker));
        await hammer;
        assert.ok(sections > 10, `only ${sections} sections ran`);
        assert.deepEqual(violations, []);
      },
    );
  });
}
