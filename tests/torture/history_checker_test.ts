// The torture suite's checker must itself be right: it finds every kind of
// violation in synthetic histories, and accepts the legitimate ones (a killed
// holder replaced, a lease taken over after a long SIGSTOP, a restart).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { HistoryChecker, type TortureEvent } from "./_history.ts";

type Step =
  | ["enter", string, string, number]
  | ["write", string, string, number]
  | ["exit" | "lost" | "kept", string, string]
  | ["kill" | "stop" | "cont", string]
  | ["crash" | "restart"];

function check(steps: [number, Step][], leaseFloorMs: number | null = null) {
  const checker = new HistoryChecker({ leaseFloorMs });
  const verdicts = steps.map(([at, step]) => {
    const [type, worker, name, token] = step as [string, string, string, number];
    const event = { type, worker, name, token, at } as TortureEvent;
    return checker.record(event);
  });
  return { summary: checker.finish(), verdicts };
}

const section = (at: number, worker: string, token: number, name = "a"): [number, Step][] => [
  [at, ["enter", worker, name, token]],
  [at + 1, ["write", worker, name, token]],
  [at + 2, ["exit", worker, name]],
];

describe("history checker", () => {
  test("accepts alternating sections with growing tokens", () => {
    const { summary } = check([...section(0, "w1", 1), ...section(10, "w2", 2)]);
    assert.deepEqual(summary.violations, []);
    assert.equal(summary.sections, 2);
  });

  test("finds two holders of one name at once", () => {
    const { summary } = check([
      [0, ["enter", "w1", "a", 1]],
      [1, ["enter", "w2", "a", 2]],
    ]);
    assert.match(summary.violations.join("\n"), /w2 entered "a" \(token 2\) while w1 held it/);
  });

  test("keeps names apart", () => {
    const { summary } = check([
      [0, ["enter", "w1", "a", 1]],
      [1, ["enter", "w2", "b", 1]],
      [2, ["exit", "w1", "a"]],
      [3, ["exit", "w2", "b"]],
    ]);
    assert.deepEqual(summary.violations, []);
  });

  test("finds a token that does not grow", () => {
    const { summary } = check([...section(0, "w1", 5), ...section(10, "w2", 5)]);
    assert.match(summary.violations.join("\n"), /token 5 granted to w2 after token 5/);
  });

  test("lets a killed holder's lock go to the next, and ignores its late records", () => {
    const { summary } = check([
      [0, ["enter", "w1", "a", 1]],
      [1, ["kill", "w1"]],
      [2, ["exit", "w1", "a"]],
      ...section(3, "w2", 2),
    ]);
    assert.deepEqual(summary.violations, []);
    assert.equal(summary.sections, 2);
    assert.equal(summary.faults.killInside, 1);
  });

  test("a holder entering before the kill was sent is still a violation", () => {
    const { summary } = check([
      [0, ["enter", "w1", "a", 1]],
      [1, ["enter", "w2", "a", 2]],
      [2, ["kill", "w1"]],
    ]);
    assert.equal(summary.violations.length, 1);
  });

  test("local kinds: a stopped holder keeps its lock however long it sleeps", () => {
    const { summary } = check([
      [0, ["enter", "w1", "a", 1]],
      [1, ["stop", "w1"]],
      [60_000, ["enter", "w2", "a", 2]],
    ]);
    assert.match(summary.violations.join("\n"), /stopped 59999 ms ago/);
  });

  test("lease kinds: a newcomer may not take a stopped holder's lease too early", () => {
    const { summary } = check([
      [0, ["enter", "w1", "a", 1]],
      [1, ["stop", "w1"]],
      [500, ["enter", "w2", "a", 2]],
    ], 1_000);
    assert.equal(summary.violations.length, 1);
  });

  test("lease kinds: a takeover after the lease needs a refused stale write and a loud loss", () => {
    const { summary, verdicts } = check([
      [0, ["enter", "w1", "a", 1]],
      [1, ["stop", "w1"]],
      ...section(1_500, "w2", 2),
      [3_000, ["cont", "w1"]],
      [3_001, ["write", "w1", "a", 1]],
      [3_002, ["exit", "w1", "a"]],
      [3_003, ["lost", "w1", "a"]],
    ], 1_000);
    assert.deepEqual(summary.violations, []);
    assert.equal(summary.takeovers, 1);
    assert.equal(summary.staleWritesRejected, 1);
    assert.deepEqual(verdicts[6], { accepted: false, superseded: true });
  });

  test("lease kinds: a taken-over holder whose signal never aborts is a violation", () => {
    const { summary } = check([
      [0, ["enter", "w1", "a", 1]],
      [1, ["stop", "w1"]],
      ...section(1_500, "w2", 2),
      [3_000, ["cont", "w1"]],
      [3_002, ["exit", "w1", "a"]],
      [3_003, ["kept", "w1", "a"]],
    ], 1_000);
    assert.match(summary.violations.join("\n"), /held\.signal never aborted/);
  });

  test("lease kinds: a taken-over holder that never reports is a violation", () => {
    const { summary } = check([
      [0, ["enter", "w1", "a", 1]],
      [1, ["stop", "w1"]],
      ...section(1_500, "w2", 2),
    ], 1_000);
    assert.match(summary.violations.join("\n"), /never reported/);
  });

  test("a holder's write refused while it still held the lock is a violation", () => {
    const { summary } = check([
      ...section(0, "w2", 9),
      [10, ["enter", "w1", "a", 10]],
      [11, ["write", "w1", "a", 8]],
    ]);
    assert.match(summary.violations.join("\n"), /write of holder w1 \(token 8\) was refused/);
  });

  test("a restart of the service ends every lease; tokens must still grow across it", () => {
    const ok = check([
      [0, ["enter", "w1", "a", 1]],
      [1, ["restart"]],
      ...section(2, "w2", 2),
      [5, ["exit", "w1", "a"]],
      [6, ["lost", "w1", "a"]],
    ], 1_000);
    assert.deepEqual(ok.summary.violations, []);
    const reset = check([
      ...section(0, "w1", 7),
      [5, ["restart"]],
      ...section(6, "w2", 1),
    ], 1_000);
    assert.match(reset.summary.violations.join("\n"), /token 1 granted to w2 after token 7/);
  });

  test("a grant reported late after a long stop enters already taken over", () => {
    const { summary } = check([
      [0, ["stop", "w1"]], // w1 was granted token 1, then stopped before reporting it
      ...section(1_500, "w2", 2),
      [3_000, ["cont", "w1"]],
      [3_001, ["enter", "w1", "a", 1]],
      [3_002, ["write", "w1", "a", 1]],
      [3_003, ["exit", "w1", "a"]],
      [3_004, ["lost", "w1", "a"]],
    ], 1_000);
    assert.deepEqual(summary.violations, []);
    assert.equal(summary.staleWritesRejected, 1);
  });

  test("a loss of a lock granted before a restart but entered after it is expected", () => {
    const { summary } = check([
      ...section(0, "w1", 1),
      [10, ["restart"]],
      [11, ["enter", "w1", "a", 2]],
      [12, ["lost", "w1", "a"]],
      [13, ["exit", "w1", "a"]],
      ...section(20, "w1", 3),
      [30, ["lost", "w1", "a"]],
    ], 1_000);
    assert.equal(summary.lostReported, 2);
    assert.equal(summary.unexpectedLosses, 1, "only the loss with no restart since its grant");
  });

  test("a loss reported while the service is being crashed is expected", () => {
    // The worker saw its connection close and left before the harness saw
    // the service exit and recorded the restart.
    const { summary } = check([
      ...section(0, "w1", 1),
      [10, ["enter", "w1", "a", 2]],
      [11, ["crash"]],
      [12, ["exit", "w1", "a"]],
      [13, ["lost", "w1", "a"]],
      [14, ["restart"]],
      ...section(20, "w1", 3),
      ...section(30, "w1", 4),
      [40, ["lost", "w1", "a"]],
    ], 1_000);
    assert.deepEqual(summary.violations, []);
    assert.equal(summary.lostReported, 2);
    assert.equal(summary.unexpectedLosses, 1, "only the loss of a section begun after the restart");
  });

  test("a loss without any fault is counted as unexpected", () => {
    const { summary } = check([
      [0, ["enter", "w1", "a", 1]],
      [1, ["exit", "w1", "a"]],
      [2, ["lost", "w1", "a"]],
    ], 1_000);
    assert.equal(summary.unexpectedLosses, 1);
  });
});
