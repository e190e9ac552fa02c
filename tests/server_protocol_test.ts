// The lock server's wire formats without sockets: request parsing, bounded
// line splitting, name escaping, distlockd frames, the HMAC challenge, and
// server addresses.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  decodeName,
  encodeName,
  LineReader,
  parseReply,
  parseRequest,
  WAIT_FOREVER,
} from "../lib/server/protocol.ts";
import {
  DistlockdCommand,
  type DistlockdRequest,
  DistlockdRequestReader,
  DistlockdResponseReader,
  DistlockdStatus,
  encodeDistlockdRequest,
  encodeDistlockdResponse,
} from "../lib/server/distlockd_frames.ts";
import { importAuthKey, newNonce, signChallenge, verifyChallenge } from "../lib/server/auth.ts";
import { parseServerAddress } from "../lib/server/server_address.ts";
import { LockError, LockProtocolError } from "../mod.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("the line protocol", () => {
  test("parseRequest() reads every command with its optional arguments", () => {
    assert.deepEqual(parseRequest("a1 ACQUIRE job"), {
      tag: "a1",
      command: "ACQUIRE",
      name: "job",
      wait: 0,
    });
    assert.deepEqual(parseRequest("a2 acquire job 5000 20000"), {
      tag: "a2",
      command: "ACQUIRE",
      name: "job",
      wait: 5000,
      ttl: 20000,
    });
    assert.deepEqual(parseRequest("a3 ACQUIRE job forever"), {
      tag: "a3",
      command: "ACQUIRE",
      name: "job",
      wait: WAIT_FOREVER,
    });
    assert.deepEqual(parseRequest("a4 RELEASE job 1700000000000123"), {
      tag: "a4",
      command: "RELEASE",
      name: "job",
      token: 1700000000000123,
    });
    assert.deepEqual(parseRequest("a5 RENEW job - 3000"), {
      tag: "a5",
      command: "RENEW",
      name: "job",
      ttl: 3000,
    });
    assert.deepEqual(parseRequest("a6 CANCEL a2"), { tag: "a6", command: "CANCEL", target: "a2" });
    assert.deepEqual(parseRequest("a7 HELLO 42 web-3"), {
      tag: "a7",
      command: "HELLO",
      pid: 42,
      host: "web-3",
      isolate: "",
    });
    assert.deepEqual(parseRequest("a8 HELLO 42 web-3 4f1c-9a"), {
      tag: "a8",
      command: "HELLO",
      pid: 42,
      host: "web-3",
      isolate: "4f1c-9a",
    });
    for (const command of ["HEALTH", "STATS", "QUIT"]) {
      assert.deepEqual(parseRequest(`t ${command}`), { tag: "t", command });
    }
    assert.deepEqual(parseRequest("t STATUS a%20b"), { tag: "t", command: "STATUS", name: "a b" });
  });

  test("parseRequest() answers malformed lines with an error code and the usage", () => {
    const cases: [string, string, string][] = [
      ["", "*", "BAD_REQUEST"],
      ["no-command", "no-command", "BAD_REQUEST"],
      ["t FROB x", "t", "UNKNOWN_COMMAND"],
      ["t ACQUIRE", "t", "BAD_REQUEST"],
      ["t ACQUIRE job soon", "t", "BAD_REQUEST"],
      ["t ACQUIRE job 10 0", "t", "BAD_REQUEST"],
      ["t ACQUIRE job 10 20 30", "t", "BAD_REQUEST"],
      ["t RELEASE job -5", "t", "BAD_REQUEST"],
      ["t RELEASE job 99999999999999999", "t", "BAD_REQUEST"],
      ["t STATUS %zz", "t", "BAD_REQUEST"],
      ["t AUTH abc def", "t", "BAD_REQUEST"],
      ["t HEALTH now", "t", "BAD_REQUEST"],
      ["t HELLO 42 web-3 not/an/isolate", "t", "BAD_REQUEST"],
      ["t HELLO 42 web-3 a b", "t", "BAD_REQUEST"],
      ["ba!d HEALTH", "*", "BAD_REQUEST"],
      [`${"x".repeat(33)} HEALTH`, "*", "BAD_REQUEST"],
    ];
    for (const [line, tag, error] of cases) {
      const parsed = parseRequest(line);
      assert.ok("error" in parsed, `${JSON.stringify(line)} is refused`);
      assert.equal(parsed.tag, tag, line);
      assert.equal(parsed.error, error, line);
      assert.ok(parsed.message.length > 10, "the message says what to do");
    }
    const unknown = parseRequest("t FROB");
    assert.ok("error" in unknown && /ACQUIRE/.test(unknown.message), "lists the commands");
  });

  test("names with spaces, percent signs and control characters survive encoding", () => {
    for (const name of ["plain", "with space", "100%", "tab\there", "new\nline", "ünïcødé ✓"]) {
      const token = encodeName(name);
      assert.ok(
        !/[\s%]/.test(token.replace(/%[0-9A-F]{2}/g, "")),
        `${JSON.stringify(token)} is one token`,
      );
      assert.equal(decodeName(token), name);
    }
    assert.equal(decodeName("%E0%A4%A"), null);
  });

  test("parseReply() splits replies and refuses lines from another protocol", () => {
    assert.deepEqual(parseReply("a1 OK 17 10000 0"), { tag: "a1", kind: "OK", rest: "17 10000 0" });
    assert.deepEqual(parseReply("* LOST job 17 expired"), {
      tag: "*",
      kind: "LOST",
      rest: "job 17 expired",
    });
    assert.deepEqual(parseReply("a2 CANCELLED"), { tag: "a2", kind: "CANCELLED", rest: "" });
    assert.throws(() => parseReply("+PONG"), LockProtocolError);
    assert.throws(() => parseReply("HTTP/1.1 400 Bad Request"), /not a socketlock reply/);
  });

  test("LineReader joins lines split across chunks and strips CRLF", () => {
    const reader = new LineReader(64);
    const lines: string[] = [];
    for (const chunk of ["a1 HEA", "LTH\r\na2 ST", "ATS\n", "\n", "a3 QUIT\n"]) {
      reader.push(bytes(chunk), (line) => lines.push(line), () => assert.fail("not too long"));
    }
    assert.deepEqual(lines, ["a1 HEALTH", "a2 STATS", "", "a3 QUIT"]);
    assert.equal(reader.buffered, 0);
  });

  test("LineReader keeps multi-byte characters whole wherever a chunk ends", () => {
    const text = "a1 STATUS ünïcødé✓𝄞\nb2 HEALTH\n";
    const all = bytes(text);
    for (let cut = 0; cut <= all.length; cut++) {
      const reader = new LineReader(100);
      const lines: string[] = [];
      reader.push(
        all.subarray(0, cut),
        (line) => lines.push(line),
        () => assert.fail("not too long"),
      );
      reader.push(all.subarray(cut), (line) => lines.push(line), () => assert.fail("not too long"));
      assert.deepEqual(lines, ["a1 STATUS ünïcødé✓𝄞", "b2 HEALTH"], `cut at byte ${cut}`);
    }
  });

  test("LineReader reports an over-long line once, holds no more than the limit, and goes on", () => {
    const reader = new LineReader(100);
    const lines: string[] = [];
    let tooLong = 0;
    const onLine = (line: string) => lines.push(line);
    reader.push(bytes("a1 HEALTH\n" + "x".repeat(60)), onLine, () => tooLong++);
    for (let i = 0; i < 1_000; i++) {
      reader.push(bytes("y".repeat(1_000)), onLine, () => tooLong++);
      assert.ok(reader.buffered <= 100);
    }
    reader.push(
      bytes("zzz\na2 STATS\n" + "q".repeat(200) + "\na3 QUIT\n"),
      onLine,
      () => tooLong++,
    );
    assert.deepEqual(lines, ["a1 HEALTH", "a2 STATS", "a3 QUIT"]);
    assert.equal(tooLong, 2);
  });
});

describe("distlockd's frames", () => {
  test("requests round-trip through the reader, byte by byte", () => {
    const reader = new DistlockdRequestReader(256, 256);
    const frames: DistlockdRequest[] = [];
    const all = [
      encodeDistlockdRequest(DistlockdCommand.ACQUIRE, "job", "client-1"),
      encodeDistlockdRequest(DistlockdCommand.RELEASE, "jöb", "client-1"),
      encodeDistlockdRequest(DistlockdCommand.HEALTH, "health", "c"),
    ];
    const joined = new Uint8Array(all.reduce((n, f) => n + f.length, 0));
    let at = 0;
    for (const frame of all) {
      joined.set(frame, at);
      at += frame.length;
    }
    for (const byte of joined) {
      reader.push(new Uint8Array([byte]), { frame: (f) => frames.push(f) });
    }
    assert.deepEqual(frames, [
      { command: 1, name: "job", clientId: "client-1" },
      { command: 2, name: "jöb", clientId: "client-1" },
      { command: 3, name: "health", clientId: "c" },
    ]);
    assert.equal(reader.buffered, 0);
  });

  test("a request over the limits is reported and skipped without being buffered", () => {
    const reader = new DistlockdRequestReader(16, 64);
    const seen: string[] = [];
    const handlers = {
      frame: (f: DistlockdRequest) => seen.push(`frame ${f.name}`),
      oversize: (command: number, name: number) => seen.push(`oversize ${command} ${name}`),
    };
    const big = encodeDistlockdRequest(DistlockdCommand.ACQUIRE, "n".repeat(60_000), "id");
    for (let i = 0; i < big.length; i += 4_096) {
      reader.push(big.subarray(i, i + 4_096), handlers);
      assert.ok(reader.buffered < 4_096 + 5);
    }
    reader.push(encodeDistlockdRequest(DistlockdCommand.ACQUIRE, "ok", "id"), handlers);
    assert.deepEqual(seen, ["oversize 1 60000", "frame ok"]);
  });

  test("responses have distlockd's layout: status, u16 length, message", () => {
    const frame = encodeDistlockdResponse(DistlockdStatus.TIMEOUT, "Lock is busy");
    assert.deepEqual([...frame.subarray(0, 3)], [2, 0, 12]);
    const seen: unknown[] = [];
    const reader = new DistlockdResponseReader();
    reader.push(frame.subarray(0, 2), (r) => seen.push(r));
    reader.push(frame.subarray(2), (r) => seen.push(r));
    reader.push(encodeDistlockdResponse(DistlockdStatus.OK), (r) => seen.push(r));
    assert.deepEqual(seen, [{ status: 2, message: "Lock is busy" }, { status: 0, message: "" }]);
  });
});

describe("the HMAC challenge", () => {
  test("a proof made with the same secret verifies, and one made with another does not", async () => {
    const key = await importAuthKey("correct horse");
    const other = await importAuthKey("battery staple");
    const server = newNonce();
    const client = newNonce();
    assert.match(server, /^[0-9a-f]{32}$/);
    assert.notEqual(server, client);
    const mac = await signChallenge(key, "client", server, client);
    assert.match(mac, /^[0-9a-f]{64}$/);
    assert.equal(await verifyChallenge(key, "client", server, client, mac), true);
    assert.equal(await verifyChallenge(other, "client", server, client, mac), false);
    assert.equal(await verifyChallenge(key, "server", server, client, mac), false, "roles differ");
    assert.equal(
      await verifyChallenge(key, "client", newNonce(), client, mac),
      false,
      "nonces bind it",
    );
    assert.equal(await verifyChallenge(key, "client", server, client, "zz"), false);
  });
});

describe("server addresses", () => {
  test("parseServerAddress() reads host:port, [v6]:port and a bare host", () => {
    assert.deepEqual(parseServerAddress("127.0.0.1:7000"), { hostname: "127.0.0.1", port: 7000 });
    assert.deepEqual(parseServerAddress("[::1]:9"), { hostname: "::1", port: 9 });
    assert.deepEqual(parseServerAddress("locks.internal"), {
      hostname: "locks.internal",
      port: 8888,
    });
    for (const bad of ["", "host:", "host:99999", "a b:1", "::1:80"]) {
      assert.throws(() => parseServerAddress(bad), LockError, bad);
    }
  });
});
