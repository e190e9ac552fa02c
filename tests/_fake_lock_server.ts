// A fake lock server on loopback for client tests: it greets like
// `socketlock serve`, then answers each request as a script says.
import * as net from "node:net";

/** What the fake server answers `COMMAND` (its `count`-th): a reply line, or "drop" to cut the connection. */
export type Script = (command: string, tag: string, count: number) => string;

/** A fake server on loopback: greets like `socketlock serve`, then follows `script`. */
export async function fakeServer(script: Script) {
  const sockets = new Set<net.Socket>();
  const counts = new Map<string, number>();
  const stats = { connections: 0 };
  const server = net.createServer((socket) => {
    stats.connections++;
    sockets.add(socket);
    socket.on("error", () => {});
    let buffered = "";
    socket.on("data", (chunk) => {
      const lines = (buffered + chunk.toString("utf8")).split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        const [tag, command] = line.split(" ");
        if (command === "HELLO") {
          socket.write(`${tag} OK socketlock/1 -\n`);
          continue;
        }
        const count = (counts.get(command) ?? 0) + 1;
        counts.set(command, count);
        const reply = script(command, tag, count);
        if (reply === "drop") return void socket.destroy();
        socket.write(reply);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    stats,
    /** How often `command` came, over all connections. */
    count: (command: string) => counts.get(command) ?? 0,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
