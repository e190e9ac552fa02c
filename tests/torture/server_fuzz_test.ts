// A protocol fuzzer for the lock server, bounded in cases and in time: random
// bytes, mutated lines of our protocol and mutated distlockd frames, huge
// lines, half lines then silence, and bursts of connections opened and
// dropped, many at once. Meanwhile three holders (a LockClient renewing in the
// background, a raw line-protocol client, a distlockd client) keep their
// locks. Afterwards the server must be alive and shut down cleanly, a fresh
// client must lock and release, every holder must still hold with its token,
// STATS must add up, the server's memory must be bounded, and every byte the
// server sent must have been a well-formed reply of the protocol spoken.
//
// The server runs as a process of the runtime running this file (its memory
// is read from /proc). Replay a run with SOCKETLOCK_FUZZ_SEED=<seed>; widen it
// with SOCKETLOCK_FUZZ_CASES and SOCKETLOCK_FUZZ_MS.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { rm, writeFile } from "node:fs/promises";
import { LockClient } from "../../mod.ts";
import type { HeldLock } from "../../lib/types.ts";
import { type Connection, detectRuntimeName, runtime } from "../../lib/runtime/mod.ts";
import {
  DistlockdCommand,
  DistlockdResponseReader,
  DistlockdStatus,
  encodeDistlockdRequest,
} from "../../lib/server/distlockd_frames.ts";
import { parseReply } from "../../lib/server/protocol.ts";
import { type Child, tempDir } from "../_processes.ts";
import { RawConnection, residentKb, serveProcess, sleep, within } from "../_server_helpers.ts";

const SEED = Number(process.env.SOCKETLOCK_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));
const MAX_CASES = Number(process.env.SOCKETLOCK_FUZZ_CASES ?? 4_000);
const BUDGET_MS = Number(process.env.SOCKETLOCK_FUZZ_MS ?? 9_000);
const AUTH_BUDGET_MS = Math.round(BUDGET_MS / 3);
const IN_FLIGHT = 12;
const IDLE_MS = 1_500;
/**
 * Resident memory the server may gain over the run, at its peak. The fuzzer
 * sends gigabytes (12 cases in flight, lines up to 512 KB); what it may cost
 * is garbage the collector has not reached yet, not input kept. Peaks seen:
 * Deno ~115 MB, Node 85-164 MB, Bun ~55 MB; unbounded buffering would be GBs.
 */
const MAX_GROWTH_KB = 256 * 1024;

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    chance: (p: number) => next() < p,
    pick: <T>(items: readonly T[]): T => items[int(items.length)],
    bytes(length: number): Uint8Array {
      const out = new Uint8Array(length);
      const style = int(3); // uniform, printable, control-heavy
      for (let i = 0; i < length; i++) {
        out[i] = style === 0
          ? int(256)
          : style === 1
          ? 0x20 + int(95)
          : int(4) === 0
          ? int(32)
          : int(256);
      }
      return out;
    },
  };
}
type Rng = ReturnType<typeof prng>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One fuzzing connection: what it sent first and everything it received. */
class Probe {
  readonly conn: Connection;
  readonly chunks: Uint8Array[] = [];
  size = 0;
  lastData = performance.now();
  isClosed = false;
  readonly closed: Promise<void>;
  firstByte = -1;

  private constructor(conn: Connection) {
    this.conn = conn;
    conn.onData((chunk) => {
      this.lastData = performance.now();
      if (this.size < 1 << 20) this.chunks.push(chunk);
      this.size += chunk.length;
    });
    this.closed = new Promise((resolve) =>
      conn.onClose(() => {
        this.isClosed = true;
        resolve();
      })
    );
  }

  static async open(port: number): Promise<Probe> {
    return new Probe(
      await runtime.connect({ transport: "tcp", hostname: "127.0.0.1", port }, 5_000),
    );
  }

  send(data: Uint8Array | string): void {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    if (this.firstByte < 0 && bytes.length > 0) this.firstByte = bytes[0];
    this.conn.write(bytes);
  }

  /** Whether the server took this connection for distlockd's protocol (see serve.ts). */
  get binary(): boolean {
    const b = this.firstByte;
    return b >= 0 && b < 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09;
  }

  received(): Uint8Array {
    const all = new Uint8Array(Math.min(this.size, 1 << 20));
    let at = 0;
    for (const chunk of this.chunks) {
      all.set(chunk.subarray(0, all.length - at), at);
      at += chunk.length;
      if (at >= all.length) break;
    }
    return all;
  }

  /** Resolves once the server has been quiet for `quietMs` (or closed), at most `maxMs`. */
  async settle(quietMs: number, maxMs: number): Promise<void> {
    const start = performance.now();
    while (!this.isClosed && performance.now() - start < maxMs) {
      if (performance.now() - this.lastData >= quietMs) return;
      await sleep(Math.min(quietMs, 10));
    }
  }
}

/** What every byte a server sent must be: replies of the protocol it took the connection for. */
function malformed(probe: Probe): string | null {
  const bytes = probe.received();
  if (probe.binary) {
    const reader = new DistlockdResponseReader();
    let bad: string | null = null;
    reader.push(bytes, (response) => {
      if (response.status > DistlockdStatus.INVALID) bad ??= `distlockd status ${response.status}`;
    });
    return bad;
  }
  const lines = decoder.decode(bytes).split("\n");
  lines.pop(); // an unfinished line (cut by our 1 MB cap)
  for (const line of lines) {
    try {
      parseReply(line);
    } catch {
      return `not a reply: ${JSON.stringify(line.slice(0, 120))}`;
    }
  }
  return null;
}

/** Names the fuzzer uses, the held ones among them. */
const KEPT = "fuzz-kept";
const RAW_KEPT = "fuzz-raw";
const DISTLOCKD_KEPT = "fuzz-dl";
const NAMES = [KEPT, RAW_KEPT, DISTLOCKD_KEPT, "f0", "f1", "f2", "f3", "%E2%82%AC", "a%20b"];

function numberToken(rng: Rng, tokens: number[]): string {
  if (rng.chance(0.5)) return String(rng.chance(0.5) ? rng.int(100) : rng.pick(tokens));
  return rng.pick([
    () => String(rng.int(100)),
    () => String(rng.pick(tokens)),
    () => "forever",
    () => "-",
    () => "-1",
    () => "99999999999999999999",
    () => "9007199254740993",
    () => "0",
    () => "1e3",
    () => String(rng.int(50)),
    () => "",
  ])();
}

function nameToken(rng: Rng): string {
  return rng.pick([
    () => rng.pick(NAMES),
    () => `n${rng.int(20)}`,
    () => "%",
    () => "%ZZ",
    () => "%00x",
    () => "%C3%28",
    () => "line%0Abreak%0D%00",
    () => "x".repeat(1 + rng.int(400)),
    () => decoder.decode(rng.bytes(1 + rng.int(12))).replace(/[\s\n]/g, "_"),
  ])();
}

function tag(rng: Rng): string {
  if (rng.chance(0.8)) return `t${rng.int(1_000)}`;
  return rng.pick([
    () => `t${rng.int(1_000)}`,
    () => "*",
    () => "x".repeat(33),
    () => "a.b:c-d_e",
    () => "",
    () => "ü",
  ])();
}

/** A valid-looking request of our protocol (before mutation). */
function requestLine(rng: Rng, tokens: number[]): string {
  const t = tag(rng);
  const n = () => nameToken(rng);
  const num = () => numberToken(rng, tokens);
  return rng.pick([
    () => `${t} HELLO ${num()} ${n()} ${rng.pick(["main", "w-1", "", "!!"])}`,
    () => `${t} ACQUIRE ${n()} ${num()} ${num()}`,
    () => `${t} ACQUIRE ${rng.pick(NAMES)} ${rng.pick(["0", "5", "40", "forever"])}`,
    () => `${t} RELEASE ${n()} ${num()}`,
    () => `${t} RELEASE ${rng.pick([KEPT, RAW_KEPT])} ${rng.pick(tokens)}`,
    () => `${t} RENEW ${n()} ${num()} ${num()}`,
    () => `${t} RENEW ${rng.pick([KEPT, RAW_KEPT])} ${rng.pick(tokens)} 1`,
    () => `${t} CANCEL ${tag(rng)}`,
    () => `${t} STATUS ${n()}`,
    () => `${t} HEALTH`,
    () => `${t} STATS`,
    () => `${t} QUIT`,
    () => `${t} AUTH ${"ab".repeat(32)} ${"cd".repeat(16)}`,
    () => `${t} ${rng.pick(["acquire", "FROB", "", "HEALTH extra"])}`,
  ])();
}

/** Applies 0-3 byte-level mutations to a line. */
function mutate(rng: Rng, line: string): string {
  let s = line;
  for (let k = rng.int(4); k > 0; k--) {
    const at = rng.int(s.length + 1);
    s = rng.pick([
      () => s.slice(0, at) + String.fromCharCode(rng.int(256)) + s.slice(at),
      () => s.slice(0, at) + s.slice(at + 1 + rng.int(8)),
      () =>
        s.slice(0, at) + rng.pick([" ", "  ", "\r", "\0", "%", "\t", "\u2028", "😀"]) + s.slice(at),
      () => s.slice(0, at) + s.slice(at).toLowerCase(),
      () => s + " " + s,
      () => s.slice(0, at),
    ])();
  }
  return s;
}

/** Splits bytes into 1-4 pieces, to be sent as separate writes. */
function pieces(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  const cuts = Array.from({ length: rng.int(4) }, () => rng.int(bytes.length + 1)).sort((a, b) =>
    a - b
  );
  const out: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > from) out.push(bytes.subarray(from, cut));
    from = Math.max(from, cut);
  }
  return out;
}

const COMMANDS = [
  DistlockdCommand.ACQUIRE,
  DistlockdCommand.RELEASE,
  DistlockdCommand.HEALTH,
  0,
  4,
  0x1f,
];

/** A distlockd frame, valid or not. */
function frame(rng: Rng, ids: string[]): Uint8Array {
  const name = rng.chance(0.7) ? rng.pick(NAMES) : nameToken(rng);
  const id = rng.chance(0.8) ? rng.pick(ids) : decoder.decode(rng.bytes(rng.int(300)));
  const bytes = encodeDistlockdRequest(rng.pick(COMMANDS), rng.chance(0.05) ? "" : name, id);
  if (rng.chance(0.7)) return bytes;
  const copy = bytes.slice();
  const view = new DataView(copy.buffer);
  return rng.pick([
    () => {
      view.setUint16(1, rng.int(0x10000)); // a name length that lies
      return copy;
    },
    () => {
      view.setUint16(3, rng.int(0x10000)); // a client id length that lies
      return copy;
    },
    () => copy.subarray(0, rng.int(copy.length)), // truncated
    () => {
      copy[rng.int(copy.length)] = rng.int(256);
      return copy;
    },
  ])();
}

interface Target {
  port: number;
  /** Tokens of the locks held through the run, for the fuzzer to aim at. */
  tokens: number[];
  /** distlockd client ids the fuzzer may use (never a holder's). */
  ids: string[];
}

interface Tally {
  cases: number;
  byKind: Record<string, number>;
  violations: string[];
  silent: Probe[];
}

/** One fuzz case; resolves once its connections are done with (silent ones are kept open). */
async function fuzzCase(rng: Rng, target: Target, tally: Tally): Promise<void> {
  const kind = rng.pick(
    [
      "random-bytes",
      "lines",
      "lines",
      "lines",
      "frames",
      "frames",
      "huge-line",
      "half-then-silence",
      "churn",
    ] as const,
  );
  tally.byKind[kind] = (tally.byKind[kind] ?? 0) + 1;
  const check = (probe: Probe, what: string) => {
    const bad = malformed(probe);
    if (bad) tally.violations.push(`${kind} (${what}): ${bad}`);
  };
  const finish = async (probe: Probe, what: string) => {
    if (rng.chance(0.7)) await probe.settle(15, 300);
    check(probe, what);
    if (rng.chance(0.5)) probe.conn.close();
    else probe.conn.abort();
  };

  switch (kind) {
    case "random-bytes": {
      const probe = await Probe.open(target.port);
      for (let i = 1 + rng.int(3); i > 0; i--) {
        probe.send(rng.bytes(1 + rng.int(4_096)));
        if (rng.chance(0.3)) await sleep(rng.int(3));
      }
      return finish(probe, "random bytes");
    }
    case "lines": {
      const probe = await Probe.open(target.port);
      const lines = Array.from(
        { length: 1 + rng.int(30) },
        () =>
          rng.chance(0.6)
            ? mutate(rng, requestLine(rng, target.tokens))
            : requestLine(rng, target.tokens),
      );
      const text = lines.join(rng.chance(0.8) ? "\n" : "\r\n") + (rng.chance(0.9) ? "\n" : "");
      for (const piece of pieces(rng, encoder.encode(text))) {
        probe.send(piece);
        if (rng.chance(0.2)) await sleep(rng.int(3));
      }
      return finish(probe, lines.slice(0, 3).join(" | ").slice(0, 160));
    }
    case "frames": {
      const probe = await Probe.open(target.port);
      const frames = Array.from({ length: 1 + rng.int(20) }, () => frame(rng, target.ids));
      // The first byte picks the protocol: begin with a real command byte.
      probe.send(encodeDistlockdRequest(DistlockdCommand.HEALTH, "h", rng.pick(target.ids)));
      for (const bytes of frames) {
        for (const piece of pieces(rng, bytes)) probe.send(piece);
        if (rng.chance(0.2)) await sleep(rng.int(3));
      }
      return finish(probe, `${frames.length} frames`);
    }
    case "huge-line": {
      const probe = await Probe.open(target.port);
      const size = (64 + rng.int(448)) * 1024;
      probe.send("t1 ACQUIRE ");
      const body = rng.bytes(64 * 1024).map((b) => (b === 0x0a ? 0x20 : b));
      for (let sent = 0; sent < size; sent += body.length) probe.send(body);
      probe.send("\nt2 HEALTH\n");
      const started = performance.now();
      while (!/^t2 OK$/m.test(decoder.decode(probe.received())) && !probe.isClosed) {
        if (performance.now() - started > 10_000) break;
        await sleep(10);
      }
      const text = decoder.decode(probe.received());
      // Answered with the tag the line starts with, so that request fails at once.
      if (!/^t1 ERR LINE_TOO_LONG /m.test(text) || !/^t2 OK$/m.test(text)) {
        tally.violations.push(
          `huge-line (${size} bytes): expected LINE_TOO_LONG then t2 OK, got ${
            JSON.stringify(text.slice(0, 200))
          }`,
        );
      }
      return finish(probe, `${size} byte line`);
    }
    case "half-then-silence": {
      const probe = await Probe.open(target.port);
      probe.send(
        rng.pick([
          () => encoder.encode("t1 ACQU"),
          () => encoder.encode(`t1 ACQUIRE ${"y".repeat(rng.int(4_000))}`),
          () => new Uint8Array([1, 0]),
          () => new Uint8Array([1, 0, 200, 0, 3, 120]), // a header promising more
          () => rng.bytes(1 + rng.int(20)).map((b) => (b === 0x0a ? 0x41 : b)),
        ])(),
      );
      tally.silent.push(probe); // the idle timeout must close it
      return;
    }
    case "churn": {
      const count = 10 + rng.int(50);
      const probes = await Promise.all(
        Array.from({ length: count }, () => Probe.open(target.port)),
      );
      for (const probe of probes) {
        if (rng.chance(0.5)) probe.send(rng.bytes(1 + rng.int(20)));
        if (rng.chance(0.5)) probe.conn.close();
        else probe.conn.abort();
      }
      return;
    }
  }
}

/**
 * Runs cases, IN_FLIGHT at a time, until `maxCases` or `budgetMs` is
 * reached. Each worker draws from its own stream derived from `seed`, so
 * cases interleave freely while a seed still yields the same cases.
 */
async function fuzz(
  seed: number,
  target: Target,
  maxCases: number,
  budgetMs: number,
  onTick: () => Promise<void>,
): Promise<Tally> {
  const tally: Tally = { cases: 0, byKind: {}, violations: [], silent: [] };
  const deadline = performance.now() + budgetMs;
  let nextTick = performance.now() + 1_000;
  const worker = async (rng: Rng) => {
    while (tally.cases < maxCases && performance.now() < deadline) {
      tally.cases++;
      await within(fuzzCase(rng, target, tally), 30_000, "one fuzz case");
      if (performance.now() >= nextTick) {
        nextTick = performance.now() + 1_000;
        await onTick();
      }
    }
  };
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, (_, i) => worker(prng((seed ^ (i * 0x9e3779b9)) >>> 0))),
  );
  return tally;
}

/** Waits until every half-line connection has been closed by the server. */
async function silentClosed(tally: Tally): Promise<void> {
  await within(
    Promise.all(tally.silent.map((probe) => probe.closed)),
    IDLE_MS * 10,
    `the idle close of ${tally.silent.filter((p) => !p.isClosed).length} silent connections`,
  );
  for (const probe of tally.silent) {
    const bad = malformed(probe);
    if (bad) tally.violations.push(`half-then-silence: ${bad}`);
  }
}

function report(tally: Tally): string {
  return `seed ${SEED}: ${tally.cases} cases ${JSON.stringify(tally.byKind)}`;
}

describe(`the lock server under a protocol fuzzer (seed ${SEED})`, () => {
  let child: Child;
  let port: number;
  let witness: LockClient;
  let keeper: LockClient;
  let kept: HeldLock;
  let raw: RawConnection;
  let rawToken: number;
  let distlockd: RawConnection;
  const distlockdId = crypto.randomUUID();

  before(async () => {
    const proc = await serveProcess(detectRuntimeName(), [
      "--idle-timeout",
      String(IDLE_MS),
      "--ttl",
      "60000",
    ]);
    child = proc.child;
    port = proc.port;
    witness = new LockClient({ port });
    keeper = new LockClient({ port });
    // A short lease: it is renewed several times while the fuzzer runs.
    kept = await keeper.lock(KEPT, { ttl: 1_500 });
    raw = await RawConnection.open(port);
    const granted = await raw.ask(`ACQUIRE ${RAW_KEPT} 0 600000`);
    rawToken = Number(/ OK (\d+) /.exec(granted)?.[1]);
    distlockd = await RawConnection.open(port);
    distlockd.send(encodeDistlockdRequest(DistlockdCommand.ACQUIRE, DISTLOCKD_KEPT, distlockdId));
    assert.deepEqual(await distlockd.waitBytes(3), [0, 0, 0], "the distlockd holder's grant");
  });
  after(async () => {
    raw?.close();
    distlockd?.close();
    await keeper?.close();
    await witness?.close();
    child?.process.kill("SIGKILL");
  });

  test("no input crashes, hangs or bloats it, no holder loses its lock, and every reply is well-formed", async () => {
    const rssBefore = await residentKb(child.pid);
    let rssPeak = rssBefore;
    const target: Target = {
      port,
      tokens: [kept.token, rawToken, 1, Number.MAX_SAFE_INTEGER],
      ids: Array.from({ length: 4 }, () => crypto.randomUUID()),
    };
    const tally = await fuzz(SEED, target, MAX_CASES, BUDGET_MS, async () => {
      rssPeak = Math.max(rssPeak, await residentKb(child.pid));
      assert.equal(
        await within(witness.health(), 10_000, "HEALTH during the fuzzing"),
        true,
        `the server stopped answering HEALTH (seed ${SEED})`,
      );
    });
    await silentClosed(tally);
    rssPeak = Math.max(rssPeak, await residentKb(child.pid));
    const context = report(tally);
    assert.deepEqual(tally.violations.slice(0, 10), [], context);
    assert.ok(tally.cases >= 100, `only ${context}`);

    // A fresh client locks and releases.
    const fresh = new LockClient({ port });
    try {
      const lease = await within(fresh.acquire("after-fuzz", { timeout: 5_000 }), 10_000, "lock");
      assert.ok(lease.token > kept.token);
      assert.equal(await fresh.release("after-fuzz"), true);
    } finally {
      await fresh.close();
    }

    // Every holder still holds, with its token.
    assert.equal(kept.signal.aborted, false, `the renewing holder lost its lock (${context})`);
    assert.equal((await witness.status(KEPT))?.token, kept.token);
    assert.equal((await keeper.renew(KEPT, 1_500)).token, kept.token);
    assert.match(await raw.ask(`RENEW ${RAW_KEPT} ${rawToken}`), new RegExp(` OK ${rawToken} `));
    distlockd.bytes = [];
    distlockd.send(encodeDistlockdRequest(DistlockdCommand.ACQUIRE, DISTLOCKD_KEPT, distlockdId));
    assert.deepEqual(
      await distlockd.waitBytes(3),
      [0, 0, 0],
      "the distlockd holder re-acquires its own",
    );
    assert.equal((await witness.status(DISTLOCKD_KEPT))?.host, "");

    // STATS add up once the fuzzer's connections are gone.
    let stats = await witness.stats();
    const settleBy = performance.now() + 10_000;
    while (stats.connections > 4 && performance.now() < settleBy) {
      await sleep(50);
      stats = await witness.stats();
    }
    assert.equal(stats.connections, 4, `witness, keeper, raw and distlockd holders (${context})`);
    assert.equal(stats.held, 3);
    assert.equal(stats.waiting, 0);
    assert.equal(stats.names, 3);
    assert.ok(stats.operations > tally.cases, `${stats.operations} operations`);
    assert.ok(Number.isFinite(stats.opsPerSecond) && stats.opsPerSecond >= 0);

    const grown = rssPeak - rssBefore;
    console.log(`server fuzz: ${context}; server memory ${rssBefore} KB, peak +${grown} KB`);
    assert.ok(grown < MAX_GROWTH_KB, `the server grew by ${grown} KB (${context})`);

    // And it still shuts down cleanly, having logged no internal error.
    await kept.release();
    process.kill(child.pid, "SIGTERM"); // not child.kill(): Deno then misreports the exit code
    const result = await within(child.done, 10_000, "the server's exit");
    assert.equal(result.code, 0, result.stderr);
    const internal = result.stderr.split("\n").filter((line) => /internal error/.test(line));
    assert.deepEqual(internal.slice(0, 1).map((line) => line.slice(0, 600)), [], context);
  });
});

describe(`the lock server with a token under a protocol fuzzer (seed ${SEED})`, () => {
  let child: Child;
  let dir: string;
  const secret = `fuzz-${crypto.randomUUID()}`;

  before(async () => {
    dir = await tempDir();
    await writeFile(`${dir}/token`, secret, { mode: 0o600 });
    const proc = await serveProcess(detectRuntimeName(), [
      "--idle-timeout",
      String(IDLE_MS),
      "--token-file",
      `${dir}/token`,
    ]);
    child = proc.child;
  });
  after(async () => {
    child?.process.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  test("unauthenticated input takes nothing and breaks nothing; a client with the token still locks", async () => {
    const port = Number(/:(\d+)/.exec(child.stdout())![1]);
    const keeper = new LockClient({ port, token: secret });
    try {
      const held = await keeper.lock(KEPT, { ttl: 1_500 });
      const target: Target = { port, tokens: [held.token], ids: [crypto.randomUUID()] };
      const tally = await fuzz(SEED ^ 0x5eed, target, MAX_CASES, AUTH_BUDGET_MS, async () => {
        assert.equal(await within(keeper.health(), 10_000, "HEALTH"), true);
      });
      await silentClosed(tally);
      const context = report(tally);
      assert.deepEqual(tally.violations.slice(0, 10), [], context);
      assert.equal(held.signal.aborted, false, context);
      const stats = await keeper.stats();
      assert.equal(stats.held, 1, context);
      assert.equal((await keeper.status(KEPT))?.token, held.token);
      await held.release();
      const again = await keeper.acquire(KEPT, { timeout: 0 });
      assert.ok(again.token > held.token);
      process.kill(child.pid, "SIGTERM");
      const result = await within(child.done, 10_000, "the server's exit");
      assert.equal(result.code, 0, result.stderr);
      const internal = result.stderr.split("\n").filter((line) => /internal error/.test(line));
      assert.deepEqual(internal.slice(0, 1).map((line) => line.slice(0, 600)), [], context);
    } finally {
      await keeper.close();
    }
  });
});
