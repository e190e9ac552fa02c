// Conformance of the Runtime adapter for the runtime running this file; the
// same file runs under `deno test -A`, `bun test` and `node --test`.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn as spawnChild } from "node:child_process";
import { closeSync, constants, existsSync, openSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import * as net from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  type Connection,
  errorCode,
  type Listener,
  runtime,
  type SocketAddress,
} from "../lib/runtime/mod.ts";

import { spawnCommand } from "./_processes.ts";

const LOOPBACK = "127.0.0.1";

/** Rejects after `ms` so that no wait in these tests can hang the runner. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function rejectsWithCode(promise: Promise<unknown>, code: string) {
  await assert.rejects(promise, (error) => {
    assert.equal(errorCode(error), code, String(error));
    return true;
  });
}

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), "socketlock-runtime-test-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Collects what a connection receives and whether it was closed. */
function observe(conn: Connection) {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let waiter: { bytes: number; resolve: () => void } | null = null;
  let closedResolve!: () => void;
  const closed = new Promise<void>((resolve) => (closedResolve = resolve));
  conn.onData((chunk) => {
    chunks.push(chunk);
    size += chunk.length;
    if (waiter && size >= waiter.bytes) waiter.resolve();
  });
  conn.onClose(() => closedResolve());
  return {
    closed,
    received(bytes: number): Promise<Uint8Array> {
      const done = () => {
        const all = new Uint8Array(size);
        let offset = 0;
        for (const chunk of chunks) {
          all.set(chunk, offset);
          offset += chunk.length;
        }
        return all;
      };
      if (size >= bytes) return Promise.resolve(done());
      return within(
        new Promise<void>((resolve) => (waiter = { bytes, resolve })).then(done),
        5_000,
        `receiving ${bytes} bytes (got ${size})`,
      );
    },
  };
}

/** Runs `fn` with a listener that echoes every chunk, closing everything after. */
async function withEcho(
  address: SocketAddress,
  fn: (listener: Listener, track: (conn: Connection) => Connection) => Promise<void>,
) {
  const open: Connection[] = [];
  const track = (conn: Connection) => (open.push(conn), conn);
  const listener = await runtime.listen(address, (conn) => {
    track(conn);
    conn.onData((chunk) => conn.write(chunk));
  });
  try {
    await fn(listener, track);
  } finally {
    for (const conn of open) conn.close();
    await listener.close();
  }
}

function deadPid(): Promise<number> {
  return within(
    new Promise((resolve, reject) => {
      const child = spawnChild("true");
      child.once("error", reject);
      child.once("exit", () => resolve(child.pid!));
    }),
    5_000,
    "a child running `true` to exit",
  );
}

function pattern(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff;
  return bytes;
}

describe(`runtime adapter (${runtime.name}): files`, () => {
  test("mkdir() creates missing parents with mode 0700 and succeeds if the directory exists", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "a", "b");
      await runtime.mkdir(path, 0o700);
      await runtime.mkdir(path, 0o700);
      const stat = await runtime.lstat(path);
      assert.equal(stat.isDirectory, true);
      assert.equal(stat.mode, 0o700);
    });
  });

  test("writeFileExclusive() creates a 0600 file and throws EEXIST the second time", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "f.json");
      await runtime.writeFileExclusive(path, "first", 0o600);
      const stat = await runtime.lstat(path);
      assert.equal(stat.isFile, true);
      assert.equal(stat.mode, 0o600);
      assert.equal(stat.size, 5);
      assert.equal(stat.uid, runtime.uid());
      assert.ok(Math.abs(stat.mtimeMs - Date.now()) < 60_000);
      await rejectsWithCode(runtime.writeFileExclusive(path, "second", 0o600), "EEXIST");
      assert.equal(await runtime.readFile(path), "first");
    });
  });

  test("writeFile() replaces a file and readFile() reads it as UTF-8", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "f.txt");
      await runtime.writeFile(path, "old content", 0o600);
      await runtime.writeFile(path, "new ✓", 0o600);
      assert.equal(await runtime.readFile(path), "new ✓");
      await rejectsWithCode(runtime.readFile(join(dir, "missing")), "ENOENT");
    });
  });

  test("updateFile() reads a file and writes the update in place, without truncating; ENOENT if missing", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "f");
      await rejectsWithCode(runtime.updateFile(path, () => "1"), "ENOENT");
      await runtime.writeFile(path, "0000000042", 0o600);
      const seen: string[] = [];
      assert.equal(await runtime.updateFile(path, (text) => (seen.push(text), "43")), "0000000042");
      assert.deepEqual(seen, ["0000000042"]);
      assert.equal(await runtime.readFile(path), "4300000042");
      assert.equal(await runtime.updateFile(path, () => null), "4300000042");
      assert.equal(await runtime.readFile(path), "4300000042", "null writes nothing");
      assert.equal((await runtime.lstat(path)).mode, 0o600);
    });
  });

  test("readFile() and updateFile() of a FIFO return at once instead of blocking in open()", {
    skip: process.platform !== "linux",
  }, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "fifo.lock");
      const made = spawnChild("mkfifo", [path]);
      await within(new Promise((resolve) => made.once("exit", resolve)), 5_000, "mkfifo");
      assert.equal(await within(runtime.readFile(path), 5_000, "readFile of a FIFO"), "");
      // Opened for writing too, it still reads as empty rather than EAGAIN.
      assert.equal(await within(runtime.updateFile(path, () => null), 5_000, "updateFile"), "");
    });
  });

  test("readDir() lists entry names and throws ENOENT for a missing directory", async () => {
    await withTempDir(async (dir) => {
      await runtime.writeFile(join(dir, "a"), "", 0o600);
      await runtime.mkdir(join(dir, "b"), 0o700);
      assert.deepEqual((await runtime.readDir(dir)).sort(), ["a", "b"]);
      await rejectsWithCode(runtime.readDir(join(dir, "missing")), "ENOENT");
    });
  });

  test("remove() deletes a file and throws ENOENT once it is gone", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "f");
      await runtime.writeFile(path, "x", 0o600);
      await runtime.remove(path);
      await rejectsWithCode(runtime.lstat(path), "ENOENT");
      await rejectsWithCode(runtime.remove(path), "ENOENT");
    });
  });

  test("rename() replaces the target", async () => {
    await withTempDir(async (dir) => {
      await runtime.writeFile(join(dir, "from"), "new", 0o600);
      await runtime.writeFile(join(dir, "to"), "old", 0o600);
      await runtime.rename(join(dir, "from"), join(dir, "to"));
      assert.equal(await runtime.readFile(join(dir, "to")), "new");
      assert.deepEqual(await runtime.readDir(dir), ["to"]);
    });
  });

  test("link() makes a hard link and throws EEXIST if the target exists", async () => {
    await withTempDir(async (dir) => {
      await runtime.writeFile(join(dir, "a"), "data", 0o600);
      await runtime.link(join(dir, "a"), join(dir, "b"));
      assert.equal(await runtime.readFile(join(dir, "b")), "data");
      await rejectsWithCode(runtime.link(join(dir, "a"), join(dir, "b")), "EEXIST");
    });
  });

  test("lstat() reports a symlink without following it", async () => {
    await withTempDir(async (dir) => {
      await runtime.mkdir(join(dir, "target"), 0o700);
      await symlink(join(dir, "target"), join(dir, "link"));
      const stat = await runtime.lstat(join(dir, "link"));
      assert.equal(stat.isSymlink, true);
      assert.equal(stat.isDirectory, false);
      assert.equal(stat.isFile, false);
    });
  });

  test("readFile() of a FIFO someone holds open for writing reads as empty, not EAGAIN", async () => {
    if (runtime.platform !== "linux") return;
    await withTempDir(async (dir) => {
      const fifo = join(dir, "x.lock");
      execFileSync("mkfifo", [fifo]);
      // A planted FIFO whose planter keeps a writer open (O_RDWR never blocks on Linux).
      const writer = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
      try {
        assert.equal(await runtime.readFile(fifo), "");
      } finally {
        closeSync(writer);
      }
    });
  });

  test("realPath() resolves symlinked parents, dots and slashes; a missing path is ENOENT", async () => {
    await withTempDir(async (dir) => {
      await runtime.mkdir(join(dir, "target", "sub"), 0o700);
      await symlink(join(dir, "target"), join(dir, "link"));
      const real = await runtime.realPath(join(dir, "target", "sub"));
      assert.equal(await runtime.realPath(`${dir}/link//sub/./`), real);
      assert.equal(await runtime.realPath(`${dir}/link/../target/sub`), real);
      await rejectsWithCode(runtime.realPath(join(dir, "missing")), "ENOENT");
    });
  });

  test("lstat() tells a replaced file from the same one by device and inode", async () => {
    await withTempDir(async (dir) => {
      await runtime.writeFile(join(dir, "a"), "one", 0o600);
      const first = await runtime.lstat(join(dir, "a"));
      assert.equal((await runtime.lstat(join(dir, "a"))).ino, first.ino);
      await runtime.writeFile(join(dir, "b"), "two", 0o600);
      await runtime.rename(join(dir, "b"), join(dir, "a"));
      const second = await runtime.lstat(join(dir, "a"));
      assert.ok(first.ino > 0 && second.ino > 0);
      assert.notEqual(second.ino, first.ino);
      assert.equal(second.dev, first.dev);
    });
  });

  test("watchDir() names a removed entry, sees nothing in subdirectories, and is silent once closed", async () => {
    await withTempDir(async (dir) => {
      await runtime.mkdir(join(dir, "sub"), 0o700);
      await runtime.writeFile(join(dir, "bid.json"), "{}", 0o600);
      await runtime.writeFile(join(dir, "sub", "deep"), "x", 0o600);
      const seen: string[] = [];
      let heard: () => void = () => {};
      const watch = runtime.watchDir!(dir, (name) => {
        seen.push(name);
        if (name === "bid.json") heard();
      });
      assert.ok(watch, "a local directory can be watched");
      try {
        await runtime.remove(join(dir, "sub", "deep"));
        await runtime.remove(join(dir, "bid.json"));
        await within(new Promise<void>((resolve) => heard = resolve), 5_000, "the removal's event");
        assert.ok(!seen.includes("deep"), `events: ${seen.join(", ")}`);
      } finally {
        watch!.close();
        watch!.close(); // idempotent
      }
      const before = seen.length;
      await runtime.writeFile(join(dir, "later"), "x", 0o600);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(seen.length, before, "no event after close()");
      assert.equal(runtime.watchDir!(join(dir, "missing"), () => {}), null);
    });
  });
});

describe(`runtime adapter (${runtime.name}): sockets`, () => {
  const tcp = (port: number): SocketAddress => ({ transport: "tcp", hostname: LOOPBACK, port });

  test(
    "a loop of listen and close that awaits only promises still lets the event loop turn now and then (Node: closed listeners are freed only in a turn)",
    {
      skip: runtime.name !== "node" || process.platform !== "linux",
    },
    async () => {
      let turned = false;
      setImmediate(() => turned = true);
      const path = `\0socketlock-test-turns-${process.pid}`;
      for (let i = 0; i < 3_000 && !turned; i++) {
        const listener = await runtime.listen({ transport: "unix", path }, (conn) => conn.close());
        await listener.close();
      }
      assert.equal(turned, true, "3,000 listeners closed without a turn: none could be freed");
    },
  );

  test("listen() on port 0 reports a nonzero port, and a second listen on it throws EADDRINUSE", async () => {
    const listener = await runtime.listen(tcp(0), () => {});
    try {
      assert.ok(listener.port > 0 && listener.port < 65536);
      await rejectsWithCode(runtime.listen(tcp(listener.port), () => {}), "EADDRINUSE");
    } finally {
      await listener.close();
    }
  });

  test("a write() after close() is ignored: what close() is flushing still reaches the peer", async () => {
    const total = 4 * 1024 * 1024;
    let received = 0;
    let ended!: () => void;
    const peerClosed = new Promise<void>((resolve) => (ended = resolve));
    const listener = await runtime.listen(tcp(0), (conn) => {
      conn.onData((chunk) => void (received += chunk.length));
      conn.onClose(ended);
    });
    try {
      const client = await runtime.connect(tcp(listener.port), 5_000);
      client.write(new Uint8Array(total));
      client.close();
      client.write(new Uint8Array(10)); // late: must neither throw nor cost the queued bytes
      await within(peerClosed, 10_000, "the peer sees the close");
      assert.equal(received, total);
    } finally {
      await listener.close();
    }
  });

  test("close() frees the port at once, even while an accepted connection is open", async () => {
    await withEcho(tcp(0), async (listener, track) => {
      const client = track(await runtime.connect(tcp(listener.port), 5_000));
      const seen = observe(client);
      client.write(new Uint8Array([1]));
      await seen.received(1);
      await within(listener.close(), 1_000, "listener.close()");
      await listener.close();
      const again = await runtime.listen(tcp(listener.port), () => {});
      await again.close();
      // The accepted connection outlives its listener.
      client.write(new Uint8Array([2]));
      assert.deepEqual(await seen.received(2), new Uint8Array([1, 2]));
    });
  });

  test("connect() and write() round-trip bytes in order, including a write larger than socket buffers", async () => {
    await withEcho(tcp(0), async (listener, track) => {
      const client = track(await runtime.connect(tcp(listener.port), 5_000));
      const seen = observe(client);
      const big = pattern(8 << 20);
      client.write(new TextEncoder().encode("hello\n"));
      client.write(big);
      client.write(new TextEncoder().encode("bye\n"));
      const all = await seen.received(6 + big.length + 4);
      assert.equal(all.length, 6 + big.length + 4);
      assert.equal(new TextDecoder().decode(all.subarray(0, 6)), "hello\n");
      assert.ok(all.subarray(6, 6 + big.length).every((b, i) => b === big[i]), "payload intact");
      assert.equal(new TextDecoder().decode(all.subarray(6 + big.length)), "bye\n");
    });
  });

  test("chunks that arrive before onData() is set are delivered once it is", async () => {
    const listener = await runtime.listen(tcp(0), (conn) => {
      conn.write(new TextEncoder().encode("greeting"));
      conn.close();
    });
    try {
      const client = await runtime.connect(tcp(listener.port), 5_000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const seen = observe(client);
      assert.equal(new TextDecoder().decode(await seen.received(8)), "greeting");
      await within(seen.closed, 5_000, "onClose after the peer closed");
    } finally {
      await listener.close();
    }
  });

  test("close() on one side calls onClose on both sides, once, after flushing writes", async () => {
    let server!: ReturnType<typeof observe>;
    let serverConn: Connection | undefined;
    let accepted!: () => void;
    const connected = new Promise<void>((resolve) => (accepted = resolve));
    const listener = await runtime.listen(tcp(0), (conn) => {
      serverConn = conn;
      server = observe(conn);
      accepted();
    });
    try {
      const client = await runtime.connect(tcp(listener.port), 5_000);
      let clientCloses = 0;
      client.onClose(() => clientCloses++);
      await within(connected, 5_000, "accept");
      client.write(new TextEncoder().encode("last words"));
      client.close();
      client.close();
      client.write(new Uint8Array([9])); // dropped: written after close()
      assert.equal(new TextDecoder().decode(await server.received(10)), "last words");
      await within(server.closed, 5_000, "the server side's onClose");
      await within(
        (async () => {
          while (clientCloses === 0) await new Promise((r) => setTimeout(r, 5));
        })(),
        5_000,
        "the client side's onClose",
      );
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(clientCloses, 1);
      let late = 0;
      client.onClose(() => late++); // set after the fact: called at once
      assert.equal(late, 1);
    } finally {
      serverConn?.close();
      await listener.close();
    }
  });

  // A lock holder's waiters learn of its release from this FIN. A server
  // counts a connection until its onClose, so one whose replies are stuck
  // must not be reported closed while it still holds them (and an fd).
  test("the peer's FIN calls onClose; with our writes stuck, only once nothing is held any more", async () => {
    const peers: net.Socket[] = [];
    let accepted!: (socket: net.Socket) => void;
    // Half-open: the peer's end() sends its FIN and leaves our bytes unread.
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      peers.push(socket);
      accepted(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    const open = async () => {
      const peer = new Promise<net.Socket>((resolve) => (accepted = resolve));
      const conn = await runtime.connect(tcp(port), 5_000);
      const closes = { count: 0 };
      conn.onClose(() => closes.count++);
      return { conn, closes, peer: await within(peer, 5_000, "accept") };
    };
    const closedWithin5s = (closes: { count: number }, what: string) =>
      within(
        (async () => {
          while (closes.count === 0) await new Promise((resolve) => setTimeout(resolve, 5));
        })(),
        5_000,
        what,
      );
    const conns: Connection[] = [];
    try {
      // Nothing queued: the FIN is reported.
      const idle = await open();
      conns.push(idle.conn);
      idle.peer.end();
      await closedWithin5s(idle.closes, "onClose after the peer's FIN");
      // Our writes stuck behind a peer that reads nothing.
      const stuck = await open();
      conns.push(stuck.conn);
      const chunk = pattern(1 << 20);
      let sent = 0;
      while (sent < 64 << 20 && stuck.conn.bufferedAmount < 4 << 20) {
        stuck.conn.write(chunk);
        sent += chunk.length;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      assert.ok(stuck.conn.bufferedAmount > 0, `bytes queued in the writer after ${sent} bytes`);
      stuck.peer.end();
      await new Promise((resolve) => setTimeout(resolve, 300));
      if (stuck.closes.count > 0) {
        // Bun closes at the FIN and drops what was queued.
        assert.equal(stuck.conn.bufferedAmount, 0, "reported closed while still holding bytes");
      }
      stuck.conn.abort();
      await closedWithin5s(stuck.closes, "onClose after abort()");
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(idle.closes.count, 1, "onClose is called once");
      assert.equal(stuck.closes.count, 1, "onClose is called once");
    } finally {
      for (const conn of conns) conn.abort();
      for (const peer of peers) peer.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test("pause() holds a peer's bytes back until resume(); the writer's bufferedAmount grows, then onDrain fires", async () => {
    let accepted!: (conn: Connection) => void;
    const acceptedConn = new Promise<Connection>((resolve) => (accepted = resolve));
    const listener = await runtime.listen(tcp(0), (conn) => {
      conn.pause(); // before any byte can arrive
      accepted(conn);
    });
    const conns: Connection[] = [];
    try {
      const client = await runtime.connect(tcp(listener.port), 5_000);
      conns.push(client);
      const server = await within(acceptedConn, 5_000, "accept");
      conns.push(server);
      const chunks: Uint8Array[] = [];
      let size = 0;
      server.onData((chunk) => {
        chunks.push(chunk);
        size += chunk.length;
      });
      let drains = 0;
      client.onDrain(() => drains++);
      // Write until the OS's buffers on both sides are full and bytes queue
      // in the writer (bounded: 64 MB at most).
      const chunk = pattern(1 << 20);
      let sent = 0;
      while (sent < 64 << 20 && client.bufferedAmount < 4 << 20) {
        client.write(chunk);
        sent += chunk.length;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      assert.ok(client.bufferedAmount > 0, `bytes queued in the writer after ${sent} bytes`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(client.bufferedAmount > 0, "still queued: the paused peer reads nothing");
      assert.equal(size, 0, "nothing delivered while paused");
      server.resume();
      server.resume();
      await within(
        (async () => {
          while (size < sent) await new Promise((resolve) => setTimeout(resolve, 5));
        })(),
        20_000,
        "every byte after resume()",
      );
      const all = new Uint8Array(size);
      let offset = 0;
      for (const part of chunks) {
        all.set(part, offset);
        offset += part.length;
      }
      for (let at = 0; at < sent; at += chunk.length) {
        assert.ok(
          all.subarray(at, at + chunk.length).every((b, i) => b === chunk[i]),
          `bytes intact and in order at ${at}`,
        );
      }
      await within(
        (async () => {
          while (drains === 0) await new Promise((resolve) => setTimeout(resolve, 5));
        })(),
        5_000,
        "onDrain",
      );
      assert.equal(client.bufferedAmount, 0);
    } finally {
      for (const conn of conns) conn.abort();
      await listener.close();
    }
  });

  test("abort() closes at once, dropping bytes the OS has not taken, where close() would wait", async () => {
    let serverConn: Connection | undefined;
    const listener = await runtime.listen(tcp(0), (conn) => {
      serverConn = conn;
      conn.pause(); // reads nothing, so the client's writes back up
    });
    try {
      const client = await runtime.connect(tcp(listener.port), 5_000);
      let closes = 0;
      client.onClose(() => closes++);
      const chunk = pattern(1 << 20);
      for (let i = 0; i < 64 && client.bufferedAmount < 2 << 20; i++) {
        client.write(chunk);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      assert.ok(client.bufferedAmount > 0, "bytes queued in the writer");
      client.abort();
      client.abort();
      await within(
        (async () => {
          while (closes === 0) await new Promise((resolve) => setTimeout(resolve, 5));
        })(),
        5_000,
        "onClose after abort()",
      );
      assert.equal(closes, 1);
      client.write(chunk); // dropped: written after abort()
    } finally {
      serverConn?.abort();
      await listener.close();
    }
  });

  test("connect() to a closed port throws ECONNREFUSED", async () => {
    const listener = await runtime.listen(tcp(0), () => {});
    await listener.close();
    await rejectsWithCode(runtime.connect(tcp(listener.port), 5_000), "ECONNREFUSED");
  });

  test("an abstract unix name binds once, throws EADDRINUSE twice, echoes, and frees on close", {
    skip: runtime.platform !== "linux" && "abstract unix names are Linux's",
  }, async () => {
    const address: SocketAddress = {
      transport: "unix",
      path: `\0socketlock-test-${crypto.randomUUID()}`,
    };
    await withEcho(address, async (listener, track) => {
      assert.equal(listener.port, 0);
      await rejectsWithCode(runtime.listen(address, () => {}), "EADDRINUSE");
      const client = track(await runtime.connect(address, 5_000));
      const seen = observe(client);
      client.write(new TextEncoder().encode("ping"));
      assert.equal(new TextDecoder().decode(await seen.received(4)), "ping");
      await listener.close();
      const again = await runtime.listen(address, () => {});
      await again.close();
    });
    await rejectsWithCode(runtime.connect(address, 5_000), "ECONNREFUSED");
  });
});

describe(`runtime adapter (${runtime.name}): connects that time out`, () => {
  /** A loopback port whose listener never accepts and whose backlog is full. */
  async function droppingSyns<T>(fn: (port: number) => Promise<T>): Promise<T> {
    const script = new URL("./fixtures/full_backlog.py", import.meta.url).pathname;
    const peer = spawnCommand("python3", [script, "60"]);
    try {
      await peer.waitFor("\n", 10_000);
      return await fn(Number(peer.stdout().trim()));
    } finally {
      peer.process.kill("SIGKILL");
      await peer.done;
    }
  }
  // Sockets still trying to connect to `port` (SYN_SENT), from the kernel's
  // table: other tests' descriptors in this process (Deno runs test files as
  // workers of one process) do not count.
  const connecting = (port: number) =>
    readFileSync("/proc/net/tcp", "utf8").split("\n").filter((row) => {
      const fields = row.trim().split(/\s+/);
      return fields[2]?.endsWith(`:${port.toString(16).toUpperCase().padStart(4, "0")}`) &&
        fields[3] === "02";
    }).length;

  test("a connect to a peer dropping SYNs times out with ETIMEDOUT and leaves no socket trying", {
    skip: process.platform !== "linux" && "reads /proc/net/tcp",
  }, async () => {
    await droppingSyns(async (port) => {
      // The fixture's own fillers, past the backlog, are still trying too.
      const before = connecting(port);
      for (let i = 0; i < 10; i++) {
        await rejectsWithCode(
          runtime.connect({ transport: "tcp", hostname: LOOPBACK, port }, 50),
          "ETIMEDOUT",
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      if (runtime.name === "bun") {
        // Bun.connect cannot be cancelled: each keeps its socket until the
        // kernel gives up on the SYN (README, the server kind). Said, not hidden.
        console.log(`bun: ${connecting(port) - before} sockets of timed-out connects still trying`);
        return;
      }
      assert.equal(connecting(port) - before, 0, "sockets of timed-out connects still trying");
    });
  });

  test("a connect timeout beyond 2^31 - 1 ms does not fire at once", async () => {
    await droppingSyns(async (port) => {
      let settled = "";
      runtime.connect({ transport: "tcp", hostname: LOOPBACK, port }, 3e9).then(
        (conn) => (settled = "connected", conn.close()),
        (error) => void (settled = String(errorCode(error))),
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      // Once the peer is gone, its SYN is answered with a reset, and the
      // connect fails soon after.
      assert.equal(settled, "", "still connecting after 300 ms");
    });
  });
});

describe(`runtime adapter (${runtime.name}): processes and clock`, () => {
  test("pid, uid, hostname, platform, tempDir and env agree with node:process and node:os", () => {
    assert.equal(runtime.pid, process.pid);
    assert.equal(runtime.uid(), process.getuid?.() ?? null);
    assert.equal(runtime.hostname(), hostname());
    assert.equal(runtime.platform, process.platform);
    assert.equal(runtime.tempDir(), tmpdir());
    assert.equal(runtime.env("PATH"), process.env.PATH);
    assert.equal(runtime.env("SOCKETLOCK_SURELY_UNSET_VARIABLE"), undefined);
  });

  test("tempDir() follows TMPDIR, TMP and TEMP as os.tmpdir() does", () => {
    const saved = ["TMPDIR", "TMP", "TEMP"].map((name) => [name, process.env[name]] as const);
    try {
      for (const [tmpdirVar, tmp] of [["/x/y/", undefined], ["", "/t/"], ["/", undefined]]) {
        process.env.TMPDIR = tmpdirVar;
        if (tmp === undefined) delete process.env.TMP;
        else process.env.TMP = tmp;
        assert.equal(runtime.tempDir(), tmpdir());
      }
    } finally {
      for (const [name, value] of saved) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  test("isAlive() is true for this process and false for an exited child", async () => {
    assert.equal(runtime.isAlive(runtime.pid), true);
    assert.equal(runtime.isAlive(await deadPid()), false);
    assert.equal(runtime.isAlive(0), false);
    assert.equal(runtime.isAlive(-1), false);
  });

  test(
    "startTime() gives this process's start in epoch seconds and ticks since boot, and null for an exited child",
    {
      skip: runtime.platform !== "linux" && "read from Linux's /proc",
    },
    async () => {
      const started = await runtime.startTime(runtime.pid);
      assert.ok(started && Number.isInteger(started.created), JSON.stringify(started));
      const now = Date.now() / 1000;
      assert.ok(started.created <= now && started.created > now - 3600, String(started.created));
      const uptime = Number((await readFile("/proc/uptime", "utf8")).split(" ")[0]);
      assert.ok(
        Number.isInteger(started.ticks) && started.ticks > 0 && started.ticks <= uptime * 100 + 1,
        String(started.ticks),
      );
      assert.equal(await runtime.startTime(await deadPid()), null);
    },
  );

  test("fileInUse() is true while a process has the file open, false once none has", {
    skip: runtime.platform !== "linux" && "reads /proc",
  }, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "bid.json");
      const fd = openSync(path, "w");
      try {
        assert.equal(await runtime.fileInUse(path), true);
      } finally {
        closeSync(fd);
      }
      assert.equal(await runtime.fileInUse(path), false);
      assert.equal(await runtime.fileInUse(join(dir, "missing.json")), false);
    });
  });

  test("namespaceId() names this process's pid and network namespaces on Linux, and its time namespace where there is one", () => {
    const id = runtime.namespaceId();
    // Deno reads /proc only with -A (the test runners here have it).
    if (runtime.platform !== "linux") return assert.equal(id, null);
    assert.match(id ?? "", /^\d+:\d+(:\d+)?$/);
    if (existsSync("/proc/self/ns/time")) assert.match(id ?? "", /^\d+:\d+:\d+$/);
    assert.equal(runtime.namespaceId(), id, "read once");
  });

  test("setTimer() with a delay past 2^31 - 1 ms does not fire at once", async () => {
    let fired = false;
    const timer = runtime.setTimer(() => fired = true, 2 ** 32 + 10);
    timer.unref();
    await new Promise((resolve) => setTimeout(resolve, 50));
    timer.clear();
    assert.equal(fired, false);
  });

  test("setTimer() fires, and clear() cancels it", async () => {
    const t0 = runtime.monotonic();
    await within(new Promise<void>((resolve) => runtime.setTimer(resolve, 20)), 5_000, "timer");
    assert.ok(runtime.monotonic() - t0 >= 15);
    let fired = false;
    runtime.setTimer(() => (fired = true), 10).clear();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(fired, false);
  });

  test("spawn() reports a child's exit code, or the signal that ended it", async () => {
    const exited = runtime.spawn("sh", ["-c", "exit 3"]);
    assert.ok(exited.pid > 0);
    assert.deepEqual(await within(exited.exited, 5_000, "child exit"), { code: 3, signal: null });
    const killed = runtime.spawn("sh", ["-c", "kill -TERM $$"]);
    assert.deepEqual(await within(killed.exited, 5_000, "child exit"), {
      code: null,
      signal: "SIGTERM",
    });
    killed.kill("SIGTERM"); // ended already: does nothing
  });

  test("a process holding only unref'd listeners, connections and timers exits by itself", async () => {
    const script = new URL("./fixtures/runtime_unref_child.ts", import.meta.url).pathname;
    const args = runtime.name === "deno" ? ["run", "-A", script] : [script];
    const child = spawnChild(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout!.on("data", (chunk) => (output += chunk));
    try {
      const code = await within(
        new Promise((resolve, reject) => {
          child.once("error", reject);
          child.once("exit", resolve);
        }),
        5_000,
        "the child with only unref'd handles to exit",
      );
      assert.equal(code, 0);
      assert.equal(output.trim(), "ready");
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
});
