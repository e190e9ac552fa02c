// The socket kind within one process: the public API, SocketLock's surface,
// the key file, the handshake's words and bounds, and the lock file format.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmod, readFile, rm, stat, writeFile } from "node:fs/promises";
import * as net from "node:net";
import {
  inspect,
  InvalidLockNameError,
  lock,
  LockError,
  LockPermissionError,
  SocketLock,
  tryLock,
} from "../mod.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { hmacKey, hmacSha256, sha256 } from "../lib/socket/_hmac_sha256.ts";
import {
  hmacAnswer,
  importHmacKey,
  parseRequest,
  probeAnswer,
  randomHex,
} from "../lib/socket/handshake.ts";
import { formatLockFile, lockPaths, parseLockFile } from "../lib/socket/lock_file.ts";
import { KEY_FILE, loadSecret } from "../lib/socket/secret.ts";
import { socketTarget } from "../lib/socket/socket_target.ts";
import { resolveSocketSettings } from "../lib/socket/socket_settings.ts";
import { verifyHolder } from "../lib/socket/verify_holder.ts";
import { tempDir } from "./_processes.ts";

const hex = (bytes: ArrayBuffer | Uint8Array) =>
  Array.from(new Uint8Array(bytes as ArrayBuffer), (b) => b.toString(16).padStart(2, "0")).join("");
const unique = (prefix: string) => `${prefix}-${randomHex(6)}`;

/** Sends `data` to 127.0.0.1:`port` and collects the reply until close or `ms`. */
/**
 * Sends `data` and collects the reply until the holder closes the
 * connection. `closedByPeer` is false if our own 10 s timer ended it.
 */
function exchange(
  port: number,
  data: string | Uint8Array,
): Promise<{ reply: string; closedByPeer: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let reply = "";
    let closedByPeer = true;
    const timer = setTimeout(() => {
      closedByPeer = false;
      socket.destroy();
    }, 10_000);
    socket.on("data", (chunk) => (reply += chunk.toString("latin1")));
    // A reset (the holder cutting a flood off) just ends the reply.
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ reply, closedByPeer });
    });
    socket.on("connect", () => socket.write(data));
  });
}

describe("socket kind in one process", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const freshDir = async () => {
    const dir = await tempDir();
    dirs.push(dir);
    return dir;
  };

  test("lock() defaults to the socket kind and records pid, host, port and time in <name>.lock", async () => {
    const dir = await freshDir();
    const name = unique("basic");
    const held = await lock(name, { dir });
    try {
      assert.equal(held.kind, "socket");
      assert.equal(held.info.pid, runtime.pid);
      assert.equal(held.info.host, runtime.hostname());
      assert.ok((held.info.port as number) > 0);
      assert.ok(Math.abs(held.info.acquiredAt - Date.now()) < 10_000);
      const record = parseLockFile(await readFile(`${dir}/${name}.lock`, "utf8"));
      assert.equal(record?.port, held.info.port);
      assert.equal(record?.pid, runtime.pid);
      assert.equal(record?.token, held.token);
      assert.equal((await stat(`${dir}/${name}.lock`)).mode & 0o777, 0o600);
    } finally {
      await held.release();
    }
    await assert.rejects(readFile(`${dir}/${name}.lock`, "utf8"), { code: "ENOENT" });
  });

  test("release() is idempotent and the next holder gets a larger token", async () => {
    const dir = await freshDir();
    const name = unique("token");
    const first = await lock(name, { dir });
    await first.release();
    await first.release();
    const second = await tryLock(name, { dir });
    assert.ok(second);
    assert.ok(second.token > first.token, `${second.token} > ${first.token}`);
    await second.release();
  });

  test("a release leaves its token in <name>.lock.last, and the next holder outgrows it", async () => {
    const dir = await freshDir();
    const name = unique("last");
    const last = `${dir}/${name}.lock.last`;
    // A token from a clock far ahead, as a holder before a clock step back left it.
    const ahead = Math.floor(Date.now() * 1000) + 1e12;
    await writeFile(last, JSON.stringify({ pid: 1, port: 1, acquiredAt: 1, token: ahead }));
    const held = await lock(name, { dir });
    assert.equal(held.token, ahead + 1);
    await held.release();
    assert.equal(parseLockFile(await readFile(last, "utf8"))?.token, ahead + 1);
    await assert.rejects(readFile(`${dir}/${name}.lock`, "utf8"), { code: "ENOENT" });
  });

  test("a second lock() in the same process waits for the first and times out", async () => {
    const dir = await freshDir();
    const name = unique("local");
    const held = await lock(name, { dir });
    try {
      assert.equal(await tryLock(name, { dir }), null);
      await assert.rejects(lock(name, { dir, timeout: 50 }), { name: "LockTimeoutError" });
    } finally {
      await held.release();
    }
  });

  test("repeated tries on a held lock reuse the verified connection until the holder lets go", async () => {
    const dir = await freshDir();
    const settings = await resolveSocketSettings(runtime, unique("reuse"), { dir });
    const holder = await socketTarget(runtime, settings).tryAcquire();
    assert.ok(holder.acquired);
    let connects = 0;
    const counting = {
      ...runtime,
      connect: (...args: Parameters<typeof runtime.connect>) => {
        connects++;
        return runtime.connect(...args);
      },
    };
    const contender = socketTarget(counting, settings);
    for (let i = 0; i < 3; i++) {
      const attempt = await contender.tryAcquire();
      assert.equal(attempt.acquired, false);
      if (!attempt.acquired) attempt.cancelWake?.();
    }
    assert.equal(connects, 1, "one handshake for three tries");
    const waiting = await contender.tryAcquire();
    assert.equal(waiting.acquired, false);
    if (waiting.acquired) return;
    const woken = waiting.wake!;
    await holder.grant.release();
    // The verified connection is unref'd (a tryLock() must not keep the
    // process alive); a waiter's backoff timer keeps it alive, as this one does.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      woken, // the holder closed the verified connection
      new Promise((_, reject) => timer = setTimeout(() => reject(new Error("not woken")), 5_000)),
    ]);
    clearTimeout(timer);
    waiting.cancelWake?.();
    const next = await contender.tryAcquire();
    assert.ok(next.acquired, "free once the holder let go");
    await next.grant.release();
  });

  test("inspect() reports the verified holder and null once it is free", async () => {
    const dir = await freshDir();
    const name = unique("inspect");
    const held = await lock(name, { dir });
    assert.equal((await inspect(name, { dir }))?.port, held.info.port);
    await held.release();
    assert.equal(await inspect(name, { dir }), null);
  });

  test("SocketLock offers acquire, tryAcquire, release, getLockInfo, pid and port", async () => {
    const dir = await freshDir();
    const lockObject = new SocketLock(unique("class"), { dir });
    assert.equal(lockObject.pid, null);
    assert.equal(lockObject.port, null);
    assert.equal(await lockObject.getLockInfo(), null);
    assert.equal(await lockObject.tryAcquire(), true);
    assert.equal(lockObject.pid, runtime.pid);
    assert.ok((lockObject.port ?? 0) > 0);
    assert.equal((await lockObject.getLockInfo())?.port, lockObject.port);
    await assert.rejects(lockObject.acquire(), LockError);
    await lockObject.release();
    await lockObject.release();
    assert.equal(lockObject.port, null);
    await lockObject.acquire({ timeout: 1_000 });
    await lockObject[Symbol.asyncDispose]();
    assert.equal(lockObject.held, null);
  });

  test("a second acquire() on one SocketLock while the first is under way is refused, not queued", async () => {
    const dir = await freshDir();
    const lockObject = new SocketLock(unique("twice"), { dir });
    const [first, second] = await Promise.allSettled([
      lockObject.acquire({ timeout: 5_000 }),
      lockObject.acquire({ timeout: 5_000 }),
    ]);
    assert.equal(first.status, "fulfilled");
    assert.equal(second.status, "rejected");
    assert.ok(second.reason instanceof LockError, String(second.reason));
    assert.match(second.reason.message, /being acquired by this object already/);
    await lockObject.release();
    assert.equal(lockObject.held, null);
    assert.equal(await inspect(lockObject.name, { dir }), null, "nobody holds it after release");
  });

  test("bad names and options get clear errors", async () => {
    const dir = await freshDir();
    assert.throws(() => new SocketLock("../x"), InvalidLockNameError);
    await assert.rejects(lock("a/b", { dir }), InvalidLockNameError);
    await assert.rejects(lock("x", { dir, handshakeTimeout: -1 }), /handshakeTimeout/);
    await assert.rejects(
      lock("x", { dir, compat: "nope" as "socketlock" }),
      /compat must be "socketlock"/,
    );
  });

  test("the per-user key is made once, 0600, and shared by every loader", async () => {
    const dir = await freshDir();
    const [a, b] = await Promise.all([loadSecret(runtime, dir), loadSecret(runtime, dir)]);
    assert.equal(a.length, 32);
    assert.deepEqual(a, b);
    assert.equal((await stat(`${dir}/${KEY_FILE}`)).mode & 0o777, 0o600);
    assert.match(await readFile(`${dir}/${KEY_FILE}`, "utf8"), /^[0-9a-f]{64}\n$/);
  });

  test("a key file readable by others is refused with what to do", async () => {
    const dir = await freshDir();
    await writeFile(`${dir}/${KEY_FILE}`, `${"ab".repeat(32)}\n`);
    await chmod(`${dir}/${KEY_FILE}`, 0o644);
    await assert.rejects(loadSecret(runtime, dir), (error: unknown) => {
      assert.ok(error instanceof LockPermissionError);
      assert.match(error.message, /mode 0600/);
      return true;
    });
  });

  test("a holder answers Python socketlock's SOCKETLOCK_CHECK probe with its constant", async () => {
    const dir = await freshDir();
    const name = unique("probe");
    const held = await lock(name, { dir });
    try {
      const { reply } = await exchange(held.info.port as number, "SOCKETLOCK_CHECK");
      const expected = "SOCKETLOCK_ACTIVE:" +
        hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`socketlock_${name}`)))
          .slice(0, 16);
      assert.equal(reply, expected);
      assert.equal(probeAnswer(name), expected);
    } finally {
      await held.release();
    }
  });

  test("a keyed holder's probe answer never depends on its signatureSeed, nor does it keep SOCKETLOCK_WAIT1 connections", async () => {
    const dir = await freshDir();
    const name = unique("seeded");
    const held = await lock(name, { dir, signatureSeed: "a secret seed" });
    try {
      // The seed is the HMAC key: its hash must not be handed to anyone who asks.
      const probe = await exchange(held.info.port as number, "SOCKETLOCK_CHECK");
      assert.equal(probe.reply, probeAnswer(name));
      assert.deepEqual(
        await exchange(held.info.port as number, "SOCKETLOCK_WAIT1\n"),
        { reply: "", closedByPeer: true },
        "the holder closes a SOCKETLOCK_WAIT1 connection at once, unanswered",
      );
    } finally {
      await held.release();
    }
  });

  test("a holder cuts off a 1 MB line and a half handshake, and keeps answering", async () => {
    const dir = await freshDir();
    const name = unique("bounds");
    const held = await lock(name, { dir });
    const half = net.connect({ host: "127.0.0.1", port: held.info.port as number });
    try {
      half.on("error", () => {});
      half.write("SOCKETLOCK_HMAC1 0123"); // and then nothing
      assert.deepEqual(
        await exchange(held.info.port as number, new Uint8Array(1 << 20).fill(65)),
        { reply: "", closedByPeer: true },
        "the holder cuts the 1 MB sender off, unanswered",
      );
      const record = parseLockFile(await readFile(`${dir}/${name}.lock`, "utf8"))!;
      const verdict = await verifyHolder(runtime, record, {
        name,
        key: importHmacKey(await loadSecret(runtime, dir)),
        probe: "",
        timeout: 1_000,
      });
      assert.equal(verdict.live, true);
      if (verdict.live) verdict.conn?.close();
    } finally {
      half.destroy();
      await held.release();
    }
  });

  test("a keyed answer for the wrong lock id is refused by the holder", async () => {
    const dir = await freshDir();
    const held = await lock(unique("wrong-id"), { dir });
    try {
      const { reply } = await exchange(
        held.info.port as number,
        `SOCKETLOCK_HMAC1 ${randomHex(16)} ${randomHex(16)}\n`,
      );
      assert.equal(reply, "SOCKETLOCK_NO\n");
    } finally {
      await held.release();
    }
  });
});

describe("socket kind building blocks", () => {
  test("verifyHolder: only a refused connection proves death; EAGAIN and a timeout are silence, EMFILE is thrown", async () => {
    const record = { pid: 1, port: 9, acquiredAt: 0, host: "", name: "x", id: "" };
    const settings = { name: "x", key: importHmacKey(new Uint8Array(32)), probe: "", timeout: 100 };
    const failing = (code: string) => ({
      ...runtime,
      connect: () => Promise.reject(Object.assign(new Error(code), { code })),
    });
    for (const [code, silent] of [["ECONNREFUSED", false], ["EAGAIN", true], ["ETIMEDOUT", true]]) {
      const verdict = await verifyHolder(failing(code as string), record, settings);
      assert.equal(verdict.live, false, String(code));
      assert.equal(!verdict.live && verdict.silent, silent, String(code));
    }
    await assert.rejects(verifyHolder(failing("EMFILE"), record, settings), { code: "EMFILE" });
  });

  test("the synchronous SHA-256 and HMAC agree with crypto.subtle", async () => {
    assert.equal(
      hex(sha256(new TextEncoder().encode("abc"))),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    for (const length of [0, 1, 55, 56, 63, 64, 65, 119, 120, 200, 1000]) {
      const data = crypto.getRandomValues(new Uint8Array(length));
      assert.equal(hex(sha256(data)), hex(await crypto.subtle.digest("SHA-256", data)));
      for (const keyLength of [1, 32, 64, 65, 100]) {
        const secret = crypto.getRandomValues(new Uint8Array(keyLength));
        const key = await crypto.subtle.importKey(
          "raw",
          secret,
          { name: "HMAC", hash: "SHA-256" },
          false,
          ["sign"],
        );
        assert.equal(
          hex(hmacSha256(hmacKey(secret), data)),
          hex(await crypto.subtle.sign("HMAC", key, data)),
        );
      }
    }
  });

  test("the keyed answer depends on the key, the name, the lock id and the challenge", () => {
    const key = importHmacKey(new Uint8Array(32).fill(7));
    const [id, challenge] = [randomHex(16), randomHex(16)];
    const base = hmacAnswer(key, "n", id, challenge);
    assert.match(base, /^[0-9a-f]{64}$/);
    assert.notEqual(hmacAnswer(importHmacKey(new Uint8Array(32)), "n", id, challenge), base);
    assert.notEqual(hmacAnswer(key, "m", id, challenge), base);
    assert.notEqual(hmacAnswer(key, "n", randomHex(16), challenge), base);
    assert.notEqual(hmacAnswer(key, "n", id, randomHex(16)), base);
  });

  test("requests are told apart by their first 16 bytes and bounded in length", () => {
    assert.deepEqual(parseRequest("SOCKETLOCK_CHECK"), { type: "check" });
    assert.deepEqual(parseRequest("SOCKETLOCK_CH"), { type: "incomplete" });
    assert.deepEqual(parseRequest("SOCKETLOCK_WAIT1\n"), { type: "wait" });
    const [id, challenge] = [randomHex(16), randomHex(16)];
    assert.deepEqual(parseRequest(`SOCKETLOCK_HMAC1 ${id} ${challenge}\n`), {
      type: "hmac",
      id,
      challenge,
    });
    assert.deepEqual(parseRequest(`SOCKETLOCK_HMAC1 ${id}`), { type: "incomplete" });
    assert.deepEqual(parseRequest(`SOCKETLOCK_HMAC1 ${"a".repeat(200)}`), { type: "invalid" });
    assert.deepEqual(parseRequest("GET / HTTP/1.1\r\n"), { type: "invalid" });
    assert.deepEqual(parseRequest(`SOCKETLOCK_HMAC1 ${id} xyz\n`), { type: "invalid" });
  });

  test("compat lock files are Python socketlock's indent=2 JSON, non-ASCII escaped", () => {
    const text = formatLockFile({
      pid: 42,
      port: 4321,
      acquiredAt: 1_700_000_000_123.5,
      host: "h",
      name: "é",
      id: "0".repeat(32),
      token: 9,
    }, true);
    assert.ok(text.startsWith(
      '{\n  "port": 4321,\n  "pid": 42,\n  "timestamp": 1700000000.1235,\n  "name": "\\u00e9",\n',
    ));
    assert.equal(lockPaths("/tmp", "app", true).file, "/tmp/.app.lock");
    assert.equal(lockPaths("/d", "app", false).file, "/d/app.lock");
    const parsed = parseLockFile(text)!;
    assert.equal(parsed.acquiredAt, 1_700_000_000_123.5);
    assert.equal(parsed.name, "é");
  });

  test("garbage, empty, truncated and wrongly typed lock files parse as null", () => {
    for (
      const text of [
        "",
        "garbage",
        "{",
        "[]",
        "null",
        '{"port": 0, "pid": 1, "acquiredAt": 1}',
        '{"port": 70000, "pid": 1, "acquiredAt": 1}',
        '{"port": 80, "pid": -1, "acquiredAt": 1}',
        '{"port": 80, "pid": 1}',
        '{"port": 80, "pid": 1, "acquiredAt": 1, "id": "../x"}',
      ]
    ) assert.equal(parseLockFile(text), null, text);
  });
});
