// A LockClient facing a server that answers something malformed, refuses a
// renewal, or stalls: each call must settle with the right error, in time,
// over a few connections, never by reconnecting and resending in a loop.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  lock,
  LockClient,
  LockError,
  LockLostError,
  LockProtocolError,
  LockTimeoutError,
  serve,
} from "../mod.ts";
import { type Child, childRuntimes } from "./_processes.ts";
import { fakeServer, type Script } from "./_fake_lock_server.ts";
import { serveProcess, signal, within } from "./_server_helpers.ts";
import { eventually } from "./_waiting.ts";

/** Grants ACQUIRE (token 7) and answers everything else OK. */
const GRANT: Script = (command, tag) =>
  command === "ACQUIRE" ? `${tag} OK 7 10000 0\n` : `${tag} OK\n`;

/** Answers ACQUIRE with `reply` (its tag first), everything else as GRANT does. */
const acquireAnswer = (reply: string): Script => (command, tag, count) =>
  command === "ACQUIRE" ? `${tag} ${reply}\n` : GRANT(command, tag, count);

const MALFORMED: Record<string, Script> = {
  "a line that is not a reply": acquireAnswer("BOGUS"),
  "a holder that is not JSON": acquireAnswer("QUEUED 1 {not json"),
  "a grant whose token is not a number": acquireAnswer("OK abc xyz 0"),
  "a grant without a ttl": acquireAnswer("OK 7"),
  "a grant with a negative wait": acquireAnswer("OK 7 10000 -5"),
  "a grant whose token is not a safe integer": acquireAnswer("OK 9999999999999999 10000 0"),
  "a reply line longer than 64 KB": (command, tag, count) =>
    command === "ACQUIRE"
      ? `${tag} QUEUED 1 "${"x".repeat(70_000)}"\n`
      : GRANT(command, tag, count),
};

// Within this, an op fails at once; a reconnect loop would open thousands.
const SETTLE_MS = 3_000;
const FEW_CONNECTIONS = 3;

type FakeServer = Awaited<ReturnType<typeof fakeServer>>;

/** Runs `fn` with a fake server following `script` and a LockClient on it; closes both. */
async function withClient(
  script: Script,
  fn: (server: FakeServer, client: LockClient) => Promise<void>,
): Promise<void> {
  const server = await fakeServer(script);
  const client = new LockClient({ port: server.port });
  try {
    await fn(server, client);
  } finally {
    await client.close();
    await server.close();
  }
}

/** The error `call` rejects with, within SETTLE_MS. */
const settledError = (call: Promise<unknown>, what: string) =>
  within(call.catch((e) => e), SETTLE_MS, `${what} settles`);

describe("LockClient against a server that answers something malformed", () => {
  for (const [what, script] of Object.entries(MALFORMED)) {
    test(`LockClient.acquire() fails with LockProtocolError on ${what}, without reconnecting in a loop`, async () => {
      await withClient(script, async (server, client) => {
        const error = await settledError(client.acquire("job"), "acquire()");
        assert.ok(error instanceof LockProtocolError, String(error));
        assert.ok(server.stats.connections <= FEW_CONNECTIONS, `${server.stats.connections}`);
        assert.ok(server.count("ACQUIRE") <= FEW_CONNECTIONS, `${server.count("ACQUIRE")}`);
      });
    });

    test(`lock(name, { server }) fails with LockProtocolError on ${what}, without reconnecting in a loop`, async () => {
      const server = await fakeServer(script);
      try {
        const error = await settledError(
          lock("job", { server: `127.0.0.1:${server.port}` }),
          "lock()",
        );
        assert.ok(error instanceof LockProtocolError, String(error));
        assert.ok(server.stats.connections <= FEW_CONNECTIONS, `${server.stats.connections}`);
        assert.ok(server.count("ACQUIRE") <= FEW_CONNECTIONS, `${server.count("ACQUIRE")}`);
      } finally {
        await server.close();
      }
    });
  }

  test("an acquire whose connection is lost (not refused) is still sent again on a new one", async () => {
    const script: Script = (command, tag, count) =>
      command === "ACQUIRE" && count === 1 ? "drop" : GRANT(command, tag, count);
    await withClient(script, async (server, client) => {
      const lease = await within(client.acquire("job"), SETTLE_MS, "acquire() after a drop");
      assert.equal(lease.token, 7);
      assert.equal(server.count("ACQUIRE"), 2);
      assert.equal(server.stats.connections, 2);
    });
  });

  test("renew() fails with LockProtocolError on a malformed OK, and other calls are not resent", async () => {
    const script: Script = (command, tag, count) =>
      command === "RENEW" ? `${tag} OK 7 abc\n` : GRANT(command, tag, count);
    await withClient(script, async (server, client) => {
      await client.acquire("job");
      const error = await settledError(client.renew("job", 5_000), "renew()");
      assert.ok(error instanceof LockProtocolError, String(error));
      assert.equal(server.count("RENEW"), 1);
      assert.equal(server.stats.connections, 1);
    });
  });

  test("renew() reports an ERR other than NOT_HOLDER as the server's refusal, not as a lost lock", async () => {
    const script: Script = (command, tag, count) =>
      command === "RENEW"
        ? `${tag} ERR SHUTTING_DOWN The server is shutting down.\n`
        : GRANT(command, tag, count);
    await withClient(script, async (_server, client) => {
      await client.acquire("job");
      const error = await settledError(client.renew("job", 5_000), "renew()");
      assert.ok(error instanceof LockError, String(error));
      assert.ok(!(error instanceof LockLostError), String(error));
      assert.match(error.message, /SHUTTING_DOWN/);
    });
  });
});

describe("LockClient.renew() with an unusable ttl", () => {
  test("renew() with a ttl of 0, -1, 0.5 or NaN throws LockError naming the option, and the lock stays held", async () => {
    await using server = await serve({ port: 0 });
    const client = new LockClient({ port: server.address.port });
    try {
      const held = await client.lock("job", { ttl: 5_000 });
      for (const ttl of [0, -1, Number.NaN, 0.5]) {
        const error = await client.renew("job", ttl).catch((e) => e);
        assert.ok(error instanceof LockError, String(error));
        assert.ok(!(error instanceof LockLostError), `renew(${ttl}): ${error}`);
        assert.match(error.message, /Option ttl must be/);
      }
      assert.equal(held.signal.aborted, false);
      assert.equal((await client.status("job"))?.token, held.token);
      assert.equal((await client.renew("job", 2_000)).ttl, 2_000);
      await held.release();
    } finally {
      await client.close();
    }
  });
});

describe("LockClient.acquire() against a stalled server", () => {
  const kids: Child[] = [];
  after(() => {
    for (const kid of kids) {
      signal(kid.pid, "SIGCONT");
      signal(kid.pid, "SIGKILL");
    }
  });

  for (const rt of childRuntimes(1)) {
    test(`acquire() with a timeout rejects with LockTimeoutError in time when a ${rt} server is stopped, and a grant after it resumes is released`, async () => {
      const proc = await serveProcess(rt);
      kids.push(proc.child);
      const open = new LockClient({ port: proc.port });
      const fresh = new LockClient({ port: proc.port });
      const checker = new LockClient({ port: proc.port });
      try {
        assert.equal(await open.health(), true); // its connection is open before the stop
        signal(proc.child.pid, "SIGSTOP");
        const started = performance.now();
        const errors = await within(
          Promise.all([
            open.acquire("job", { timeout: 300 }).catch((e) => e),
            fresh.acquire("job", { timeout: 300 }).catch((e) => e),
          ]),
          4_000,
          "both acquires settle",
        );
        const elapsed = performance.now() - started;
        for (const error of errors) assert.ok(error instanceof LockTimeoutError, String(error));
        assert.ok(elapsed >= 290 && elapsed < 2_500, `settled after ${elapsed} ms`);
        signal(proc.child.pid, "SIGCONT");
        // HEALTH follows the ACQUIRE and the CANCEL on that connection: once
        // it is answered, the server has granted the (free) name to the wait
        // given up on, and the client must give it back.
        assert.equal(await within(open.health(), 10_000, "HEALTH after SIGCONT"), true);
        assert.ok(
          await eventually(async () => (await checker.status("job")) === null, 10_000),
          "the grant that came after the timeout was released",
        );
        assert.ok((await checker.stats()).connections <= FEW_CONNECTIONS + 1);
      } finally {
        signal(proc.child.pid, "SIGCONT");
        signal(proc.child.pid, "SIGKILL");
        for (const client of [open, fresh, checker]) await client.close();
      }
    });
  }
});
