// `socketlock serve` and `--server` for run/status, from each runtime:
// the address printed once ready, graceful SIGTERM/SIGINT, the loopback
// rule, tokens, and logs.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { chmod, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { LockClient } from "../mod.ts";
import { readTokenFile } from "../lib/cli/serve_command.ts";
import {
  type Child,
  childRuntimes,
  NEW_NET_NAMESPACE,
  RUNTIMES,
  scriptCommand,
  spawnCommand,
  tempDir,
  unshareUnavailable,
} from "./_processes.ts";
import {
  abortedSignal,
  RawConnection,
  runCli,
  serveProcess,
  signal,
  within,
} from "./_server_helpers.ts";

const CLI = new URL("../lib/cli.ts", import.meta.url).pathname;

describe("socketlock serve", () => {
  const kids: Child[] = [];
  const dirs: string[] = [];
  const clients: LockClient[] = [];
  after(async () => {
    for (const kid of kids) kid.process.kill("SIGKILL");
    for (const c of clients) await c.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  for (const rt of childRuntimes(0)) {
    test(`serve from ${rt} prints its address, serves locks, and on SIGTERM says BYE and exits 0`, async () => {
      const proc = await serveProcess(rt, ["-v"]);
      kids.push(proc.child);
      assert.match(proc.child.stdout(), /^socketlock server listening on 127\.0\.0\.1:\d+\n$/);
      const client = new LockClient({ port: proc.port });
      clients.push(client);
      const held = await client.lock("cli-served");
      const raw = await RawConnection.open(proc.port);
      assert.match(await raw.ask("STATUS cli-served"), /"held":true/);
      signal(proc.child.pid, "SIGTERM"); // not child.kill(): Deno then misreports the exit code
      const result = await within(proc.child.done, 10_000, "the server's exit");
      assert.equal(result.code, 0, result.stderr);
      await within(raw.closed, 5_000, "the client's connection closing");
      assert.match(raw.text, /^\* BYE server shutting down$/m);
      await within(abortedSignal(held.signal), 5_000, "the holder told");
      assert.match(result.stderr, /granted client="conn-\d+" name="cli-served"/, "-v logs grants");
      assert.match(result.stderr, /shutting down signal="SIGTERM"/);
    });

    test(`run --server from ${rt} runs the command under the server's lock and status --server reports it`, async () => {
      const proc = await serveProcess("node");
      kids.push(proc.child);
      const dir = await tempDir();
      dirs.push(dir);
      // The command holds on until the test has looked at the lock.
      const script =
        `echo inside; i=0; while [ ! -f ${dir}/go ] && [ $i -lt 1500 ]; do i=$((i+1)); sleep 0.02; done; exit 3`;
      const run = runCli(rt, [
        "run",
        "cli-job",
        "--server",
        proc.address,
        "--",
        "sh",
        "-c",
        script,
      ]);
      kids.push(run);
      await run.waitFor("inside", 30_000);
      const busy = await runCli(rt, ["status", "cli-job", "--server", proc.address, "--json"]).done;
      assert.equal(busy.code, 1, busy.stderr);
      const status = JSON.parse(busy.stdout);
      assert.equal(status.kind, "server");
      assert.equal(status.held, true);
      assert.ok(status.holder.token > 0);
      await writeFile(`${dir}/go`, "");
      const ran = await within(run.done, 30_000, "the run");
      assert.equal(ran.code, 3, ran.stderr);
      const free = await runCli(rt, ["status", "cli-job", "--server", proc.address]).done;
      assert.equal(free.code, 0);
      assert.match(free.stdout, /is free/);
      proc.child.process.kill("SIGKILL");
    });
  }

  test("serve on a port already in use says so and exits 69", async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      const result = await runCli("node", ["serve", "--port", String(port)]).done;
      assert.equal(result.code, 69, result.stderr);
      assert.match(result.stderr, new RegExp(`Port ${port} .*already in use.*--port`));
    } finally {
      taken.close();
    }
  });

  test("serve refuses a non-loopback host without --token-file or --insecure, saying so (usage, 64)", async () => {
    const result = await runCli("node", ["serve", "--host", "0.0.0.0", "--port", "0"]).done;
    assert.equal(result.code, 64);
    assert.match(result.stderr, /--token-file.*--insecure/s);
  });

  test("serve --insecure binds a non-loopback host (in a network namespace of its own, so nothing is exposed)", async (t) => {
    const reason = unshareUnavailable(NEW_NET_NAMESPACE);
    if (reason) {
      console.log(
        `SKIPPED: serve --host 0.0.0.0 --insecure: no network namespace here (${reason})`,
      );
      t.skip(reason);
      return;
    }
    const [cmd, base] = scriptCommand("node", CLI);
    const insecure = spawnCommand("unshare", [
      ...NEW_NET_NAMESPACE,
      cmd,
      ...base,
      "serve",
      "--host",
      "0.0.0.0",
      "--port",
      "0",
      "--insecure",
    ]);
    kids.push(insecure);
    await insecure.waitFor("listening on 0.0.0.0:", 30_000);
    // unshare execs the server: its pid is the server's.
    signal(insecure.pid, "SIGINT");
    assert.equal(
      (await within(insecure.done, 10_000, "the exit")).code,
      0,
      "SIGINT stops it gracefully too",
    );
  });

  test("serve --token-file requires the token from clients, and run --token-file passes it", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const file = `${dir}/token`;
    await writeFile(file, "cli-secret\n");
    await chmod(file, 0o600);
    const proc = await serveProcess("node", ["--token-file", file, "--json"]);
    kids.push(proc.child);
    const without = await runCli("node", ["run", "guarded", "--server", proc.address, "--", "true"])
      .done;
    assert.equal(without.code, 77, "a permission problem: not 1, which a command may exit itself");
    assert.match(without.stderr, /requires a token/);
    const withToken = await runCli("deno", [
      "run",
      "guarded",
      "--server",
      proc.address,
      "--token-file",
      file,
      "--",
      "true",
    ]).done;
    assert.equal(withToken.code, 0, withToken.stderr);
    const client = new LockClient({ port: proc.port, token: "cli-secret" });
    clients.push(client);
    assert.ok((await client.acquire("guarded")).token > 0);
    signal(proc.child.pid, "SIGTERM"); // not child.kill(): Deno then misreports the exit code
    const result = await within(proc.child.done, 10_000, "the exit");
    const lines = result.stderr.trim().split("\n").map((line) => JSON.parse(line));
    assert.ok(
      lines.some((line) => line.message === "lock server listening" && line.auth === "hmac"),
    );
    assert.ok(!result.stderr.includes("cli-secret"));
  });

  test("a token file readable by others is warned about; one behind a symlink is judged by the file, not the link", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const warnings: string[] = [];
    const log = {
      log: (level: string, message: string) => level === "warn" && warnings.push(message),
    };
    await writeFile(`${dir}/private`, "s3cret\n", { mode: 0o600 });
    await chmod(`${dir}/private`, 0o600);
    await symlink(`${dir}/private`, `${dir}/link`);
    assert.equal(await readTokenFile(`${dir}/link`, log as never), "s3cret");
    assert.deepEqual(warnings, [], "a link's own mode (0777) is no reason to warn");
    await writeFile(`${dir}/open`, "s3cret\n");
    await chmod(`${dir}/open`, 0o644);
    await readTokenFile(`${dir}/open`, log as never);
    assert.match(warnings.join("\n"), /readable by other users; chmod 600/);
  });

  test("serve on a host it cannot listen on exits 69 saying so, from every runtime", async () => {
    // Bun and Deno give a failed lookup no error code: it escaped as a crash (exit 1).
    const results = await Promise.all(
      RUNTIMES.map((rt) =>
        runCli(rt, ["serve", "--host", "a..b", "--insecure", "--port", "0"]).done
      ),
    );
    for (const [i, result] of results.entries()) {
      assert.equal(result.code, 69, `${RUNTIMES[i]}: ${result.stderr}`);
      assert.match(result.stderr, /Cannot listen on a\.\.b:0: .*Check --host/);
    }
  });

  test("serve on a port it may not bind (below 1024, no CAP_NET_BIND_SERVICE) exits 77, a permission problem, from every runtime", async (t) => {
    const start = await readFile("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8")
      .then(Number, () => 1024);
    if (start <= 80) {
      t.skip(`any user may bind port 80 here (ip_unprivileged_port_start=${start})`);
      return;
    }
    // Root drops the capability for the child; anyone else lacks it already.
    const drop = process.getuid?.() === 0
      ? ["setpriv", "--bounding-set", "-net_bind_service", "--inh-caps", "-net_bind_service"]
      : [];
    const results = await Promise.all(RUNTIMES.map((rt) => {
      const [cmd, base] = scriptCommand(rt, CLI);
      const argv = [...drop, cmd, ...base, "serve", "--port", "80"];
      const child = spawnCommand(argv[0], argv.slice(1));
      kids.push(child); // a server that did bind is killed at the end
      return within(child.done, 20_000, `${rt}: serve --port 80 exiting`);
    }));
    for (const [i, result] of results.entries()) {
      // 69 would tell a script to retry; the fallback for lookups made it that.
      assert.equal(result.code, 77, `${RUNTIMES[i]}: ${result.stderr}`);
      assert.match(result.stderr, /Cannot listen on 127\.0\.0\.1:80: .*--port/);
    }
  });

  test("serve rejects bad options with usage errors (exit 64)", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const empty = `${dir}/token`;
    await writeFile(empty, "\n", { mode: 0o600 });
    const cases = [
      ["--token-file", empty],
      ["--port", "http"],
      ["--max-line", "0"],
      ["--max-connections", "1.5"],
      ["--idle-timeout", " "],
      ["--ttl", "10000", "--max-ttl", "5"],
      // Leases go on the wire in whole ms; clients refuse `OK 7 1500.5`.
      ["--ttl", "1500.5"],
      ["--max-ttl", "2000.5"],
      // An unset $PORT must not mean a random port, nor hex a port.
      ["--port", ""],
      ["--port", "0x10"],
      ["extra"],
    ];
    // Started together: each is a process start-up, and they share nothing.
    // One that starts serving instead is killed by after(), and fails here.
    const started = cases.map((args) => runCli("node", ["serve", ...args]));
    kids.push(...started);
    const results = await Promise.all(
      started.map((kid, i) => within(kid.done, 30_000, `serve ${cases[i].join(" ")} exiting`)),
    );
    for (const [i, result] of results.entries()) {
      assert.equal(result.code, 64, cases[i].join(" "));
      assert.match(result.stderr, /Usage: socketlock serve/);
    }
  });
});
