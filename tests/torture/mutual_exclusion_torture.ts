// The CI-sized torture run (tests/run.sh runs it once, under Node): for every
// kind, worker processes of Deno, Bun and Node run at least 1,000 critical
// sections on two names while the harness SIGKILLs holders and waiters,
// SIGSTOPs holders (past the lease, for lease kinds) and restarts the lock
// server and redis-server; the history checker must find no violation.
// `deno task torture` runs the same plans at 100,000 sections per kind.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import process from "node:process";
import { tempDir } from "../_processes.ts";
import { describeRedis } from "../_redis_server.ts";
import { describeResult, runTorture, type Service } from "./_fleet.ts";
import { planFor } from "./_plan.ts";
import { lockServerService, redisService, type RunningService } from "./_services.ts";

const SECTIONS = Number(process.env.SOCKETLOCK_TORTURE_SECTIONS ?? 1_000);
const size = { sections: SECTIONS, timeLimitMs: 110_000 };
const runId = crypto.randomUUID().slice(0, 8);
let dir = "";

before(async () => {
  dir = await tempDir("socketlock-torture-");
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function check(kind: Parameters<typeof planFor>[0], extra: {
  service?: Service;
  serverPort?: number;
  redisPort?: number;
} = {}) {
  const plan = planFor(kind, size, { dir, runId, ...extra });
  const result = await runTorture({ ...plan, service: extra.service });
  console.log(describeResult(result));
  if (Object.keys(result.errors).length) console.log(`${kind} errors:`, result.errors);
  assert.deepEqual(
    result.violations,
    [],
    `${kind}: two holders at once, or a stale write let through`,
  );
  assert.ok(
    result.reachedTarget,
    `${kind}: not done in time: ${result.sections} of ${SECTIONS} sections, ` +
      `${result.faults.stop} SIGSTOPs, ${result.faults.restart} restarts ` +
      "(a scheduled fault that never tested anything is retried until the time limit)",
  );
  assert.ok(result.sections >= SECTIONS);
  assert.ok(result.faults.kill > 0 && result.faults.stop > 0, `${kind}: no faults were injected`);
  assert.equal(
    result.unexpectedLosses,
    0,
    `${kind}: a lock was lost without a fault: ${result.unexpectedLossReasons.join("; ")}`,
  );
  return result;
}

describe("torture: no kind ever lets two holders in, under crashes and pauses", () => {
  test("the harness notices a lock that does not lock", { timeout: 60_000 }, async () => {
    const plan = planFor("folder", { sections: 150, timeLimitMs: 30_000 }, { dir, runId });
    const result = await runTorture({ ...plan, broken: true, killEveryMs: 1e9, stops: 0 });
    console.log(describeResult(result));
    assert.ok(result.violations.length > 10, `only ${result.violations.length} violations`);
  });
  test("socket kind", { timeout: 150_000 }, async () => {
    await check("socket");
  });
  test("folder kind", { timeout: 150_000 }, async () => {
    await check("folder");
  });
  test("port kind", { timeout: 150_000 }, async () => {
    await check("port");
  });
  test("server kind, with the server crashed and restarted", { timeout: 150_000 }, async () => {
    const service = await lockServerService();
    try {
      const result = await check("server", { service, serverPort: service.port });
      assert.ok(result.faults.restart > 0);
      assert.ok(result.takeovers > 0, "no lease was ever taken over");
    } finally {
      await service.close();
    }
  });
});

describeRedis("torture: redis kind", () => {
  let service: RunningService;
  before(async () => {
    service = await redisService();
  });
  after(async () => {
    await service?.close();
  });
  test("redis kind, with redis-server crashed and restarted", { timeout: 150_000 }, async () => {
    const result = await check("redis", { service, redisPort: service.port });
    assert.ok(result.faults.restart > 0);
    assert.ok(result.takeovers > 0, "no lease was ever taken over");
  });
});
