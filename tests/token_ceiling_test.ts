// Tokens recorded or announced by another process are floors for ours, but
// one that no holder of ours could have issued (above 2^52, microseconds in
// the year 2112) is not taken up: near 2^53 it would leave no room for
// tokens to grow, and every later lock of the process would fail. A real
// holder whose clock ran days ahead is still outgrown.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { lock, tryLock } from "../mod.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { abstractName } from "../lib/port/port_name.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { tempDir } from "./_processes.ts";

const TWO_DAYS_US = 2 * 86_400_000_000;

test("socket: a .last at 2^53 - 2 is no floor, and every later lock of the process works", async () => {
  const dir = await tempDir();
  const other = await tempDir();
  try {
    await writeFile(
      `${dir}/a.lock.last`,
      JSON.stringify({ pid: 1, port: 80, acquiredAt: 1, token: Number.MAX_SAFE_INTEGER - 1 }),
      { mode: 0o600 },
    );
    for (const [name, where] of [["a", dir], ["b", other], ["a", dir]] as const) {
      const held = await tryLock(name, { dir: where });
      assert.ok(held, `${name} taken`);
      assert.ok(held.token < 2 ** 52, `token ${held.token} follows the clock`);
      await held.release();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(other, { recursive: true, force: true });
  }
});

test("socket: a .last from a clock two days ahead is outgrown", async () => {
  const dir = await tempDir();
  try {
    const ahead = Date.now() * 1000 + TWO_DAYS_US;
    await writeFile(
      `${dir}/a.lock.last`,
      JSON.stringify({ pid: 1, port: 80, acquiredAt: 1, token: ahead }),
      { mode: 0o600 },
    );
    const held = await tryLock("a", { dir });
    assert.ok(held);
    assert.ok(held.token > ahead, `${held.token} > ${ahead}`);
    await held.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("port: a holder greeting with a token two days ahead (its clock) is outgrown", async () => {
  const key = `ahead-${randomHex(4)}`;
  const ahead = Date.now() * 1000 + TWO_DAYS_US;
  const holder = await runtime.listen({ transport: "unix", path: abstractName(key) }, (conn) => {
    conn.write(new TextEncoder().encode(`PORTLOCK_HELD ${ahead}\n`));
  });
  setTimeout(() => holder.close(), 300);
  const held = await lock(key, { kind: "port", timeout: 5_000 });
  assert.ok(held.token > ahead, `${held.token} > ${ahead}`);
  await held.release();
});
