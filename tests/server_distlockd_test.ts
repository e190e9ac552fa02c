// distlockd's binary protocol on the lock server's port: its frames and
// replies byte for byte, client-id ownership, crash release, and a
// distlockd-style Python client sharing locks with our own clients.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { LockClient, type LockServer, serve } from "../mod.ts";
import {
  DistlockdCommand,
  type DistlockdResponse,
  DistlockdResponseReader,
  encodeDistlockdRequest,
} from "../lib/server/distlockd_frames.ts";
import { type Child, fixture, spawnCommand } from "./_processes.ts";
import { RawConnection, sleep, within } from "./_server_helpers.ts";

/** A raw distlockd connection: send a frame, read one reply. */
class DistlockdConnection {
  #raw: RawConnection;
  #replies: DistlockdResponse[] = [];
  #reader = new DistlockdResponseReader();
  #seen = 0;

  constructor(raw: RawConnection) {
    this.#raw = raw;
  }

  get raw(): RawConnection {
    return this.#raw;
  }

  async send(command: number, name: string, clientId: string): Promise<DistlockdResponse> {
    this.#raw.send(encodeDistlockdRequest(command, name, clientId));
    const want = this.#replies.length + 1;
    await within(
      (async () => {
        while (this.#replies.length < want) {
          const bytes = await this.#raw.waitBytes(this.#seen + 1);
          this.#reader.push(new Uint8Array(bytes.slice(this.#seen)), (r) => this.#replies.push(r));
          this.#seen = bytes.length;
        }
      })(),
      5_000,
      "a distlockd reply",
    );
    return this.#replies[want - 1];
  }
}

describe("distlockd clients on the lock server", () => {
  let server: LockServer;
  let port: number;
  const raws: RawConnection[] = [];
  const kids: Child[] = [];
  const clients: LockClient[] = [];
  const distlockd = async () => {
    const raw = await RawConnection.open(port);
    raws.push(raw);
    return new DistlockdConnection(raw);
  };
  before(async () => {
    server = await serve({ port: 0 });
    port = server.address.port;
  });
  after(async () => {
    for (const kid of kids) kid.process.kill("SIGKILL");
    for (const raw of raws) raw.close();
    for (const c of clients) await c.close();
    await server.close();
  });

  test("ACQUIRE, RELEASE and HEALTH answer as distlockd does, with ownership by client id", async () => {
    const a = await distlockd();
    const b = await distlockd();
    const ok = { status: 0, message: "" };
    assert.deepEqual(await a.send(DistlockdCommand.HEALTH, "health", "a"), ok);
    assert.deepEqual(await a.send(DistlockdCommand.ACQUIRE, "d-job", "a"), ok);
    assert.deepEqual(
      await a.send(DistlockdCommand.ACQUIRE, "d-job", "a"),
      ok,
      "re-entrant for its holder",
    );
    assert.deepEqual(await b.send(DistlockdCommand.ACQUIRE, "d-job", "b"), {
      status: 2,
      message: "Lock is busy",
    });
    assert.deepEqual(await b.send(DistlockdCommand.RELEASE, "d-job", "b"), {
      status: 1,
      message: "Invalid release",
    });
    assert.deepEqual(await b.send(0x09, "d-job", "b"), { status: 3, message: "Invalid command" });
    assert.deepEqual(
      await b.send(DistlockdCommand.RELEASE, "d-job", "a"),
      ok,
      "distlockd trusts the client id",
    );
    assert.deepEqual(await b.send(DistlockdCommand.ACQUIRE, "d-job", "b"), ok);
  });

  test("a lock of a distlockd client goes to our waiter the moment its connection closes", async () => {
    const holder = await distlockd();
    assert.equal((await holder.send(DistlockdCommand.ACQUIRE, "d-crash", "crashing")).status, 0);
    const waiter = new LockClient({ port });
    clients.push(waiter);
    const waiting = waiter.acquire("d-crash", { timeout: 5_000 });
    await sleep(50);
    const closed = performance.now();
    holder.raw.close();
    await within(waiting, 3_000, "our waiter's grant");
    assert.ok(performance.now() - closed < 2_000);
    assert.doesNotMatch(String((await waiter.status("d-crash"))?.client), /^distlockd/);
    await waiter.release("d-crash");
  });

  test("our holders are busy to distlockd clients, and a distlockd-style Python client waits its turn", async () => {
    const ours = new LockClient({ port });
    clients.push(ours);
    await ours.acquire("d-shared");
    const peer = spawnCommand("python3", [
      fixture("server_distlockd_peer.py"),
      String(port),
      "d-shared",
      "cycle",
    ]);
    kids.push(peer);
    await sleep(300);
    assert.equal(peer.stdout(), "", "the peer polls while we hold the lock");
    await ours.release("d-shared");
    await peer.waitFor("acquired", 10_000);
    const next = await within(
      ours.acquire("d-shared", { timeout: 10_000 }),
      15_000,
      "the lock back",
    );
    assert.ok(next.token > 0);
    await ours.release("d-shared");
    const result = await within(peer.done, 10_000, "the peer's exit");
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /acquired\nreleased/);
  });

  test("a killed distlockd-style Python holder's lock is freed at once, not after its lease", async () => {
    const peer = spawnCommand("python3", [
      fixture("server_distlockd_peer.py"),
      String(port),
      "d-killed",
      "hold",
    ]);
    kids.push(peer);
    await peer.waitFor("acquired", 10_000);
    const ours = new LockClient({ port });
    clients.push(ours);
    const waiting = ours.acquire("d-killed", { timeout: 8_000 });
    await sleep(50);
    const killed = performance.now();
    peer.process.kill("SIGKILL");
    await within(waiting, 9_000, "the grant");
    assert.ok(performance.now() - killed < 3_000, "far sooner than the 10 s lease");
    await ours.release("d-killed");
  });

  test("a distlockd holder's client id is never shown to others, so nobody else can release its lock", async () => {
    const clientId = crypto.randomUUID();
    const holder = await distlockd();
    assert.equal((await holder.send(DistlockdCommand.ACQUIRE, "d-secret", clientId)).status, 0);
    const peer = await RawConnection.open(port);
    raws.push(peer);
    peer.send("1 ACQUIRE d-secret 0\n2 STATUS d-secret\n3 ACQUIRE d-secret 100\n");
    const busy = await peer.waitLine(/^1 BUSY /);
    await peer.waitLine(/^2 OK /);
    await peer.waitLine(/^3 TIMEOUT /, 3_000);
    assert.doesNotMatch(peer.text, new RegExp(clientId), "the id in a reply to someone else");
    const shown = JSON.parse(busy.slice("1 BUSY ".length)).client as string;
    assert.match(shown, /^distlockd#\d+$/);
    // What others see is a label, not a credential.
    const thief = await distlockd();
    assert.deepEqual(await thief.send(DistlockdCommand.RELEASE, "d-secret", shown), {
      status: 1,
      message: "Invalid release",
    });
    assert.deepEqual(await holder.send(DistlockdCommand.RELEASE, "d-secret", clientId), {
      status: 0,
      message: "",
    });
  });

  test("with a token set, a distlockd connection is closed at its first frame, even an oversized one", async () => {
    const guarded = await serve({ port: 0, token: "secret" });
    try {
      const raw = await RawConnection.open(guarded.address.port);
      raws.push(raw);
      // A header announcing a 60,000-byte name: over the limit, so its body
      // would be skipped unread.
      raw.send(new Uint8Array([DistlockdCommand.ACQUIRE, 0xea, 0x60, 0, 2]));
      await within(raw.closed, 3_000, "the close");
      assert.match(raw.text, /requires authentication/);
    } finally {
      await guarded.close();
    }
  });

  test("with a token set, a distlockd connection trickling a frame that never ends is closed at the auth deadline", async () => {
    const guarded = await serve({ port: 0, token: "secret", idleTimeout: 400 });
    try {
      const raw = await RawConnection.open(guarded.address.port);
      raws.push(raw);
      const started = performance.now();
      // A header for a 200-byte name, then one byte of it every 50 ms: any
      // byte counts as activity, so only the auth deadline can end it.
      raw.send(new Uint8Array([DistlockdCommand.ACQUIRE, 0, 200, 0, 2]));
      const trickle = setInterval(() => raw.send("x"), 50);
      try {
        await within(raw.closed, 5_000, "the server closes the connection");
      } finally {
        clearInterval(trickle);
      }
      assert.ok(performance.now() - started >= 300);
    } finally {
      await guarded.close();
    }
  });

  test("with a token set, distlockd frames are refused with a message saying why", async () => {
    const guarded = await serve({ port: 0, token: "secret" });
    try {
      const raw = await RawConnection.open(guarded.address.port);
      raws.push(raw);
      const conn = new DistlockdConnection(raw);
      const reply = await conn.send(DistlockdCommand.ACQUIRE, "x", "id");
      assert.equal(reply.status, 1);
      assert.match(reply.message, /requires authentication/);
      await within(raw.closed, 3_000, "the close");
    } finally {
      await guarded.close();
    }
  });
});
