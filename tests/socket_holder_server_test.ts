// The shared holder listener's lifetime: one listener serves every lock a
// process holds, stays open LINGER_MS after the last release for the next
// acquisition, and then closes. Runs under Deno, Bun and Node.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { errorCode, type Runtime, runtime } from "../lib/runtime/mod.ts";
import { LINGER_MS, MAX_UNANSWERED, serveHolder } from "../lib/socket/holder_server.ts";
import * as net from "node:net";
import { randomHex } from "../lib/socket/handshake.ts";
import { eventually } from "./_waiting.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A runtime of its own: listeners are shared per runtime object, so no other test's locks keep this one's open. */
function isolatedRuntime(): Runtime {
  return Object.create(runtime) as Runtime;
}

async function listening(port: number): Promise<boolean> {
  try {
    const conn = await runtime.connect({ transport: "tcp", hostname: "127.0.0.1", port }, 2_000);
    conn.abort();
    return true;
  } catch (error) {
    // Reset: the connection sat in the backlog of a listener that closed.
    const code = errorCode(error);
    if (code === "ECONNREFUSED" || code === "ECONNRESET") return false;
    throw error;
  }
}

/** Polls until the port refuses; false if it still listens after `ms` (and once more then). */
async function closesWithin(port: number, ms: number): Promise<boolean> {
  const refuses = async () => !(await listening(port));
  return await eventually(refuses, ms) || await refuses();
}

const entry = () => ({ name: "linger", id: randomHex(16), key: null });

describe(`holder listener (${runtime.name})`, () => {
  test("locks share one listener, which outlives a release by LINGER_MS counted from the last one", async () => {
    const rt = isolatedRuntime();
    const first = await serveHolder(rt, entry(), false);
    const second = await serveHolder(rt, entry(), false);
    assert.equal(second.port, first.port, "one listener for both locks");
    await first.stop();
    await second.stop();
    const releasedAt = Date.now();
    // Taken again within the linger: the same listener, still open.
    const again = await serveHolder(rt, entry(), false);
    assert.equal(again.port, first.port, "the lingering listener is reused");
    // Released late in the first linger: the listener must stay open past
    // the first linger's end, until LINGER_MS after this release.
    await sleep(LINGER_MS * 0.6);
    await again.stop();
    const lastReleaseAt = Date.now();
    await sleep(Math.max(0, releasedAt + LINGER_MS * 1.25 - Date.now()));
    if (Date.now() < lastReleaseAt + LINGER_MS) {
      assert.ok(await listening(first.port), "open until LINGER_MS after the last release");
    }
    assert.ok(
      await closesWithin(first.port, Math.max(0, lastReleaseAt + LINGER_MS * 3 - Date.now())),
      "closed once unused for LINGER_MS",
    );
  });

  test("a listener in use is never closed by the linger of an earlier release", async () => {
    const rt = isolatedRuntime();
    const brief = await serveHolder(rt, entry(), false);
    await brief.stop();
    const held = await serveHolder(rt, entry(), false);
    assert.equal(held.port, brief.port);
    // The first release's linger ends while this lock is held.
    await sleep(LINGER_MS * 1.5);
    assert.ok(await listening(held.port), "still open while a lock is held");
    await held.stop();
    assert.ok(await closesWithin(held.port, LINGER_MS * 3), "closed after the last release");
  });

  test("a loop of lock and release sets one linger timer, not one per release", async () => {
    const rt = isolatedRuntime();
    let timers = 0;
    rt.setTimer = (fn, ms) => {
      timers++;
      return runtime.setTimer(fn, ms);
    };
    let port = 0;
    for (let i = 0; i < 100; i++) {
      const served = await serveHolder(rt, entry(), false);
      port = served.port;
      await served.stop();
    }
    assert.equal(timers, 1);
    assert.ok(await closesWithin(port, LINGER_MS * 3), "closed after the last release");
  });

  test("peers sending half a request hold at most MAX_UNANSWERED connections; the holder goes on answering", async () => {
    const rt = isolatedRuntime();
    const served = await serveHolder(rt, entry(), false);
    const half: net.Socket[] = [];
    try {
      for (let i = 0; i < MAX_UNANSWERED + 8; i++) {
        const socket = net.connect(served.port, "127.0.0.1");
        socket.on("error", () => {});
        await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
        socket.write("SOCKETLOCK_HMAC1 "); // and never the rest
        half.push(socket);
      }
      // Those over the limit are closed at once.
      const closed = () => half.filter((socket) => socket.closed || socket.readyState === "closed");
      assert.ok(await eventually(() => closed().length >= 8, 5_000), `${closed().length} closed`);
      assert.ok(closed().length <= 8 + 1, `${closed().length} closed`);
      for (const socket of half) socket.destroy();
      // Once they are gone, a contender is answered again.
      assert.ok(
        await eventually(async () => {
          const conn = await rt.connect(
            { transport: "tcp", hostname: "127.0.0.1", port: served.port },
            2_000,
          );
          const reply = new Promise<string>((resolve) => {
            conn.onData((chunk) => resolve(new TextDecoder().decode(chunk)));
            conn.onClose(() => resolve(""));
          });
          conn.write(new TextEncoder().encode("SOCKETLOCK_CHECK"));
          const text = await reply;
          conn.abort();
          return text.startsWith("SOCKETLOCK_ACTIVE:");
        }, 5_000),
        "answered once the half requests are gone",
      );
    } finally {
      for (const socket of half) socket.destroy();
      await served.stop();
    }
  });
});
