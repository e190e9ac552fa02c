// `-v` (verbose) logs every grant, release and expiry, whichever protocol
// the client speaks, and whichever way a lock is released: by request, by
// QUIT, or by the connection closing.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { serve } from "../mod.ts";
import { DistlockdCommand, encodeDistlockdRequest } from "../lib/server/distlockd_frames.ts";
import { RawConnection, sleep } from "./_server_helpers.ts";

/** A verbose server whose log lines are collected as `level message {fields}`. */
async function verboseServer(ttl: number) {
  const logs: string[] = [];
  const server = await serve({
    port: 0,
    ttl,
    verbose: true,
    logger: {
      log: (level, message, fields) => logs.push(`${level} ${message} ${JSON.stringify(fields)}`),
    },
  });
  /** Resolves with the first log line matching `pattern`, within 3 s. */
  const logged = async (pattern: RegExp) => {
    for (const started = performance.now(); performance.now() - started < 3_000;) {
      const line = logs.find((l) => pattern.test(l));
      if (line) return line;
      await sleep(10);
    }
    throw new Error(`no log line matching ${pattern}; logged:\n${logs.join("\n")}`);
  };
  return { server, logs, logged };
}

describe("a verbose lock server", () => {
  test("logs a distlockd client's release and the expiry of its lease", async () => {
    const { server, logs, logged } = await verboseServer(200);
    const d = await RawConnection.open(server.address.port);
    try {
      const id = crypto.randomUUID();
      d.send(encodeDistlockdRequest(DistlockdCommand.ACQUIRE, "released-one", id));
      await d.waitBytes(3);
      d.send(encodeDistlockdRequest(DistlockdCommand.RELEASE, "released-one", id));
      await d.waitBytes(6);
      assert.match(
        await logged(/^debug released .*"released-one"/),
        /"client":"distlockd#\d+","name":"released-one","token":\d+/,
      );
      d.send(encodeDistlockdRequest(DistlockdCommand.ACQUIRE, "expiring-one", id));
      await d.waitBytes(9);
      assert.match(
        await logged(/^debug lease expired .*"expiring-one"/),
        /"client":"distlockd#\d+","name":"expiring-one","token":\d+/,
      );
      // A release that releases nothing is not logged as one.
      d.send(encodeDistlockdRequest(DistlockdCommand.RELEASE, "never-held", id));
      await d.waitBytes(12);
      assert.ok(!logs.some((l) => l.includes("never-held")), logs.join("\n"));
    } finally {
      d.close();
      await server.close();
    }
  });

  test("logs each lock a distlockd client loses when its last connection closes", async () => {
    const { server, logged } = await verboseServer(10_000);
    const d = await RawConnection.open(server.address.port);
    try {
      d.send(encodeDistlockdRequest(DistlockdCommand.ACQUIRE, "kept-one", "client-x"));
      await d.waitBytes(3);
      d.close();
      assert.match(
        await logged(/^debug released .*"kept-one"/),
        /"name":"kept-one","token":\d+,"reason":"distlockd client gone"/,
      );
    } finally {
      await server.close();
    }
  });

  test("logs by name each lock released by QUIT or by a closed connection", async () => {
    const { server, logs, logged } = await verboseServer(10_000);
    const a = await RawConnection.open(server.address.port);
    const b = await RawConnection.open(server.address.port);
    try {
      assert.match(await a.ask("ACQUIRE quit-one"), /^q\d+ OK /);
      assert.match(await b.ask("ACQUIRE closed-one"), /^q\d+ OK /);
      await a.ask("QUIT");
      assert.match(await logged(/^debug released .*"quit-one"/), /"reason":"QUIT"/);
      b.close();
      assert.match(
        await logged(/^debug released .*"closed-one"/),
        /"reason":"connection closed"/,
      );
      assert.equal(logs.filter((l) => /^debug released /.test(l)).length, 2, logs.join("\n"));
    } finally {
      a.close();
      b.close();
      await server.close();
    }
  });
});
