// compat: "socketlock" against a faithful TypeScript re-implementation of
// Python socketlock (tests/fixtures/socket_py_peer.ts), both directions.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { lock, LockBusyError, SocketLock, tryLock } from "../mod.ts";
import { runtime } from "../lib/runtime/mod.ts";
import { randomHex } from "../lib/socket/handshake.ts";
import { resolveSocketSettings } from "../lib/socket/socket_settings.ts";
import { type Child, fixture, spawnScript, tempDir } from "./_processes.ts";
import { wokenWithin } from "./_waiting.ts";

describe("compat with Python socketlock", () => {
  const dirs: string[] = [];
  const kids: Child[] = [];
  after(async () => {
    for (const kid of kids) kid.process.kill("SIGKILL");
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  async function setup() {
    const dir = await tempDir();
    dirs.push(dir);
    return { dir, name: `py-${randomHex(4)}` };
  }
  function peer(dir: string, name: string, mode: "try" | "hold"): Child {
    const kid = spawnScript("node", fixture("socket_py_peer.ts"), [dir, name, mode]);
    kids.push(kid);
    return kid;
  }

  test("compat mode defaults to the temp dir and socketlock's .<name>.lock", async () => {
    const settings = await resolveSocketSettings(runtime, "app", { compat: "socketlock" });
    assert.equal(settings.dir, runtime.tempDir());
    const { dir, name } = await setup();
    const held = await lock(name, { dir, compat: "socketlock" });
    try {
      const text = await readFile(`${dir}/.${name}.lock`, "utf8");
      const record = JSON.parse(text);
      assert.deepEqual(Object.keys(record).slice(0, 4), ["port", "pid", "timestamp", "name"]);
      assert.ok(text.startsWith(`{\n  "port": ${held.info.port},\n  "pid": ${runtime.pid},\n`));
      assert.ok(Math.abs(record.timestamp - Date.now() / 1000) < 60);
      assert.equal(record.name, name);
      assert.equal((await stat(`${dir}/.${name}.lock`)).mode & 0o777, 0o600);
    } finally {
      await held.release();
    }
  });

  test("compat tokens chain through a .last of this user's own: another's cannot pin them", async () => {
    const { dir, name } = await setup();
    // Another user's .last in the shared temp dir: neither replaceable nor
    // removable there, and from a clock far ahead.
    const pinned = 9_000_000_000_000_000;
    await writeFile(
      `${dir}/.${name}.lock.last`,
      JSON.stringify({ port: 1, pid: 1, timestamp: 1, token: pinned }),
    );
    const tokens: number[] = [];
    for (let i = 0; i < 3; i++) {
      const held = await lock(name, { dir, compat: "socketlock" });
      tokens.push(held.token);
      await held.release();
    }
    assert.ok(tokens[0] < tokens[1] && tokens[1] < tokens[2], tokens.join(" < "));
    assert.ok(tokens[2] < pinned, "the other user's .last is not read");
    const own = JSON.parse(await readFile(`${dir}/.${name}.lock.last.${runtime.uid()}`, "utf8"));
    assert.equal(own.token, tokens[2]);
  });

  test("a Python socketlock checker sees our compat holder as live", async () => {
    const { dir, name } = await setup();
    const ours = new SocketLock(name, { dir, compat: "socketlock" });
    assert.equal(await ours.tryAcquire(), true);
    try {
      const result = await peer(dir, name, "try").done;
      assert.equal(result.stdout.trim(), `busy ${runtime.pid} ${ours.port}`);
    } finally {
      await ours.release();
    }
    assert.equal((await peer(dir, name, "try").done).stdout.trim(), "acquired");
  });

  test("while a Python socketlock holder has the lock, our compat lock is busy and names it", async () => {
    const { dir, name } = await setup();
    const holder = peer(dir, name, "hold");
    await holder.waitFor("held");
    const port = Number(holder.stdout().trim().split(" ")[1]);
    assert.equal(await tryLock(name, { dir, compat: "socketlock" }), null);
    await assert.rejects(
      lock(name, { dir, compat: "socketlock", timeout: 0 }),
      (error: unknown) => {
        assert.ok(error instanceof LockBusyError);
        assert.equal(error.holder?.pid, holder.pid);
        assert.equal(error.holder?.port, port);
        return true;
      },
    );
    // Our default (keyed) lock of the same name is another lock: another file.
    const keyed = await tryLock(name, { dir });
    assert.ok(keyed);
    await keyed.release();
    holder.process.kill("SIGKILL");
  });

  test("a SIGKILLed Python holder's lock is taken by our compat lock at once", async () => {
    const { dir, name } = await setup();
    const holder = peer(dir, name, "hold");
    await holder.waitFor("held");
    holder.process.kill("SIGKILL");
    await holder.done; // reaped: its pid is gone too
    // At once: by the first and only try, without waiting.
    const held = await tryLock(name, { dir, compat: "socketlock" });
    assert.ok(held, "the dead holder's file was broken on the first try");
    assert.equal(held.info.pid, runtime.pid);
    await held.release();
  });

  test("a compat waiter takes the lock after a Python holder's release, which closes before it unlinks", async () => {
    const { dir, name } = await setup();
    const holder = peer(dir, name, "hold");
    await holder.waitFor("held");
    const waiting = lock(name, { dir, compat: "socketlock", timeout: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    holder.process.kill("SIGTERM");
    const held = await waiting;
    await holder.waitFor("released");
    // Python's release unlinked only its own file, before we created ours.
    const record = JSON.parse(await readFile(`${dir}/.${name}.lock`, "utf8"));
    assert.equal(record.pid, runtime.pid);
    await held.release();
  });

  test("a compat waiter is woken by our own compat holder's release, not by polling", async () => {
    const { dir, name } = await setup();
    const holder = spawnScript("bun", fixture("socket_holder.ts"), [
      JSON.stringify({ dir, compat: "socketlock" }),
      name,
      "400",
    ]);
    kids.push(holder);
    await holder.waitFor("held");
    const held = await wokenWithin(10_000, (wake) =>
      lock(name, {
        dir,
        compat: "socketlock",
        handshakeTimeout: 5_000, // a loaded holder must not look silent (then unwatched)
        ...wake,
      }));
    await held.release();
  });
});
