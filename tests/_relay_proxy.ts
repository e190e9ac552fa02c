// A loopback TCP relay for tests that must delay, drop or inject what
// travels between a client and a real server (a lock server, Redis).

import * as net from "node:net";

/** A running relay. */
export interface RelayProxy {
  /** The loopback port clients connect to. */
  readonly port: number;
  /** Closes every relayed connection and stops listening. */
  close(): Promise<void>;
}

/**
 * Listens on a loopback port (`listenPort`, else a free one) and, for each
 * client, connects to `127.0.0.1:port`. `relay` wires the two sockets'
 * data: nothing passes unless it does. Either side closing closes both;
 * errors only close.
 *
 * @param port The server's port.
 * @param relay Called once per connection with its two sockets.
 * @param listenPort The port to listen on (0: a free one).
 * @returns The relay, once it listens.
 */
export async function relayProxy(
  port: number,
  relay: (client: net.Socket, upstream: net.Socket) => void,
  listenPort = 0,
): Promise<RelayProxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    sockets.add(client).add(upstream);
    relay(client, upstream);
    for (const socket of [client, upstream]) {
      socket.on("error", () => {});
      socket.on("close", () => {
        client.destroy();
        upstream.destroy();
      });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenPort, "127.0.0.1", () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A relay to a lock server on `port` that hangs up right after passing an
 * ACQUIRE's OK, as a server crash or a network cut at that moment would: on
 * every connection, or only on the first (later ones pass through).
 */
export function cutAfterGrant(port: number, { firstOnly = false } = {}): Promise<RelayProxy> {
  let cutOnce = false;
  return relayProxy(port, (client, upstream) => {
    if (firstOnly && cutOnce) {
      client.pipe(upstream);
      upstream.pipe(client);
      return;
    }
    const acquires = new Set<string>();
    let fromClient = "";
    client.on("data", (chunk) => {
      fromClient += chunk;
      for (let end; (end = fromClient.indexOf("\n")) >= 0; fromClient = fromClient.slice(end + 1)) {
        const [tag, command] = fromClient.slice(0, end).split(" ");
        if (command === "ACQUIRE") acquires.add(tag);
      }
      upstream.write(chunk);
    });
    let fromServer = "";
    let cut = false;
    upstream.on("data", (chunk) => {
      if (cut) return;
      fromServer += chunk;
      let upTo = 0;
      for (let end; (end = fromServer.indexOf("\n", upTo)) >= 0;) {
        const [tag, status] = fromServer.slice(upTo, end).split(" ");
        upTo = end + 1;
        if (acquires.has(tag) && status === "OK") {
          cut = cutOnce = true;
          client.end(fromServer.slice(0, upTo));
          upstream.destroy();
          return;
        }
      }
      client.write(fromServer.slice(0, upTo));
      fromServer = fromServer.slice(upTo);
    });
  });
}
