// A helper process of the benchmark, run in the same runtime as its parent.
// It reads one command per line on stdin and answers one line on stdout
// (`<word> <payload>`, or `error <message>`); it ends when stdin closes.
//
// Roles (first argument):
//   holder  `setup <json>`, `hold <kind> <name>` → `held`,
//           `release` → `released <wall µs just before release()>`,
//           `clock` → `clock <wall µs>` (to estimate the clock offset)
//   load    `setup <json>`, `clients <kind> <count> <offset> <names,...>`
//           (count 0 only closes the clients it had),
//           `window <ms>` → `window <WindowResult json>`
//   echo    answers `ready <port>` and echoes every byte back (loopback floor)
//   server  answers `ready <port>` of a lock server started with serve()
//
// Usage: <runtime> bench/_child.ts <role>

import process from "node:process";
import { createInterface } from "node:readline";
import { runtime } from "../lib/runtime/mod.ts";
import {
  type Held,
  loadServerModule,
  type Locker,
  type LockerKind,
  type LockerSetup,
  makeLocker,
} from "./_lockers.ts";
import { runWindow } from "./_load.ts";
import { wallMicros } from "./_measure.ts";

const role = process.argv[2];
const cleanups: (() => unknown)[] = [];
let setup: LockerSetup = { dir: "" };
const lockers = new Map<string, Locker>();
let held: Held | null = null;
let clients: Locker[] = [];
let clientNames: string[] = [];
let clientOffset = 0;

function reply(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function lockerFor(kind: LockerKind): Promise<Locker> {
  let locker = lockers.get(kind);
  if (!locker) {
    locker = await makeLocker(kind, setup);
    lockers.set(kind, locker);
    cleanups.push(() => locker!.close());
  }
  return locker;
}

async function handle(line: string): Promise<string> {
  const space = line.indexOf(" ");
  const command = space < 0 ? line : line.slice(0, space);
  const rest = space < 0 ? "" : line.slice(space + 1);
  const args = rest.split(" ");
  switch (command) {
    case "setup":
      setup = JSON.parse(rest);
      return "ok";
    case "clock":
      return `clock ${wallMicros()}`;
    case "hold": {
      if (held) throw new Error("already holding");
      const locker = await lockerFor(args[0] as LockerKind);
      held = await locker.lock(args[1]);
      return "held";
    }
    case "release": {
      if (!held) throw new Error("not holding");
      const releasing = held;
      held = null;
      const at = wallMicros();
      await releasing.release();
      return `released ${at}`;
    }
    case "clients": {
      const [kind, count, offset, names] = args;
      for (const client of clients) await client.close();
      clients = [];
      for (let i = 0; i < Number(count); i++) {
        clients.push(await makeLocker(kind as LockerKind, setup));
      }
      clientOffset = Number(offset);
      clientNames = names.split(",");
      return "ok";
    }
    case "window":
      return `window ${
        JSON.stringify(await runWindow(clients, clientNames, Number(args[0]), clientOffset))
      }`;
    default:
      throw new Error(`unknown command ${JSON.stringify(command)}`);
  }
}

async function shutdown(): Promise<never> {
  try {
    await held?.release();
    for (const client of clients) await client.close();
    for (const cleanup of cleanups.reverse()) await cleanup();
  } catch {
    // exiting anyway
  }
  process.exit(0);
}

async function startRole(): Promise<string> {
  switch (role) {
    case "holder":
    case "load":
      return "ready";
    case "echo": {
      const listener = await runtime.listen(
        { transport: "tcp", hostname: "127.0.0.1", port: 0 },
        (conn) => conn.onData((chunk) => conn.write(chunk)),
      );
      cleanups.push(() => listener.close());
      return `ready ${listener.port}`;
    }
    case "server": {
      const mod = await loadServerModule();
      if (typeof mod === "string") throw new Error(mod);
      const server = await mod.serve({ port: 0 });
      cleanups.push(() => server.close());
      return `ready ${server.address.port}`;
    }
    default:
      throw new Error(`unknown role ${JSON.stringify(role)}`);
  }
}

try {
  reply(await startRole());
} catch (error) {
  reply(`error ${String((error as Error)?.message ?? error).replaceAll("\n", " ")}`);
  process.exit(1);
}

// Commands are handled one at a time, in order.
let queue = Promise.resolve();
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  queue = queue.then(async () => {
    try {
      reply(await handle(line));
    } catch (error) {
      reply(`error ${String((error as Error)?.message ?? error).replaceAll("\n", " ")}`);
    }
  });
});
input.on("close", () => void queue.then(shutdown));
