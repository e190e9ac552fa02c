// The floor of the server throughput rows: a client of the lock server's
// line protocol with nothing but ACQUIRE and RELEASE — no leases kept, no
// timeouts, no reconnects, no in-process queue. Its lockers in one process
// share one connection and write once per microtask, as lock(name,
// { server }) does, so the gap between the two rows is what the library's
// client costs, and this row is what the server itself sustains.

import { type Connection, runtime } from "../lib/runtime/mod.ts";
import { encodeName } from "../lib/server/protocol.ts";
import type { Held, Locker } from "./_lockers.ts";

interface Shared {
  conn: Connection;
  users: number;
  ask(request: string): Promise<string>;
}

const shared = new Map<number, Promise<Shared>>();

async function connect(port: number): Promise<Shared> {
  const conn = await runtime.connect({ transport: "tcp", hostname: "127.0.0.1", port }, 5_000);
  const waiting = new Map<string, { resolve(rest: string): void; reject(e: Error): void }>();
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let nextTag = 1;
  let out = "";
  let partial = "";
  const flush = () => {
    const text = out;
    out = "";
    conn.write(encoder.encode(text));
  };
  conn.onData((chunk) => {
    const lines = (partial + decoder.decode(chunk)).split("\n");
    partial = lines.pop()!;
    for (const line of lines) {
      const space = line.indexOf(" ");
      const tag = line.slice(0, space);
      const rest = line.slice(space + 1);
      if (rest.startsWith("QUEUED")) continue; // the grant follows
      const waiter = waiting.get(tag);
      waiting.delete(tag);
      if (rest.startsWith("OK") || rest.startsWith("BUSY")) waiter?.resolve(rest);
      else waiter?.reject(new Error(`the lock server answered ${line}`));
    }
  });
  conn.onClose(() => {
    for (const waiter of waiting.values()) waiter.reject(new Error("connection closed"));
    waiting.clear();
  });
  return {
    conn,
    users: 0,
    ask(request) {
      const tag = (nextTag++).toString(36);
      if (out === "") queueMicrotask(flush);
      out += `${tag} ${request}\n`;
      return new Promise((resolve, reject) => waiting.set(tag, { resolve, reject }));
    },
  };
}

/**
 * A bare protocol locker on the lock server at `port` (one connection per
 * process, shared by every such locker, closed with the last of them).
 *
 * @param port The lock server's port on 127.0.0.1.
 * @returns The locker.
 */
export async function bareServerLocker(port: number): Promise<Locker> {
  let opening = shared.get(port);
  if (!opening) shared.set(port, opening = connect(port));
  const client = await opening;
  client.users++;
  const take = async (name: string, wait: string): Promise<Held | null> => {
    const encoded = encodeName(name);
    const answer = await client.ask(`ACQUIRE ${encoded} ${wait}`);
    if (answer.startsWith("BUSY")) return null;
    const token = answer.split(" ")[1];
    return { release: async () => void await client.ask(`RELEASE ${encoded} ${token}`) };
  };
  return {
    lock: async (name) => (await take(name, "forever"))!,
    tryLock: (name) => take(name, "0"),
    close() {
      if (--client.users === 0) {
        shared.delete(port);
        client.conn.close();
      }
      return Promise.resolve();
    },
  };
}
