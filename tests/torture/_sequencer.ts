// The one place every torture worker reports to: a loopback TCP server
// speaking newline-delimited JSON. Each request is recorded in arrival order
// with the sequencer's clock, checked by the HistoryChecker, and answered;
// workers wait for the answer before going on, which is what makes the
// arrival order a faithful order of the real events (see _history.ts).
//
// It also plays the fenced resource: a "write" carries the holder's token and
// is refused if a larger token wrote before.

import { createServer, type Server, type Socket } from "node:net";
import type { HistoryChecker, TortureEvent } from "./_history.ts";

/** Worker → sequencer. */
export type WorkerMessage =
  | { t: "hello"; worker: string }
  | { t: "enter"; name: string; token: number }
  | { t: "write"; name: string; token: number }
  | { t: "exit"; name: string }
  | { t: "lost"; name: string; why: string }
  | { t: "kept"; name: string }
  | { t: "error"; message: string };

/** Sequencer → worker (hello gets the config instead). */
export interface SequencerReply {
  accepted: boolean;
  superseded: boolean;
  /** The run has enough sections: leave the section, release, and stop. */
  stop: boolean;
}

/** A running sequencer. */
export interface Sequencer {
  readonly port: number;
  readonly checker: HistoryChecker;
  /** Records a fault or restart observed by the harness. */
  record(event: TortureEvent): void;
  /** Workers currently inside a section, by worker id. */
  readonly inside: ReadonlySet<string>;
  /** Errors workers reported (acquire failures and the like), with counts. */
  readonly errors: Map<string, number>;
  /** Sections finished so far. */
  sections(): number;
  /** Tell every worker to stop after its current section. */
  stopAll(): void;
  close(): Promise<void>;
}

/**
 * Starts a sequencer on 127.0.0.1 for one kind's run.
 *
 * @param config What each worker is told on hello (kind, names, options).
 * @param checker The history checker of this run.
 */
export function startSequencer(config: unknown, checker: HistoryChecker): Promise<Sequencer> {
  const inside = new Set<string>();
  const errors = new Map<string, number>();
  const sockets = new Set<Socket>();
  let sections = 0;
  let stopping = false;

  const record = (event: TortureEvent) => {
    if (event.type === "enter") inside.add(event.worker);
    if (event.type === "exit") {
      inside.delete(event.worker);
      sections++;
    }
    if (event.type === "kill" && inside.delete(event.worker)) sections++;
    return checker.record(event);
  };

  const answer = (worker: string, message: WorkerMessage): unknown => {
    const at = performance.now();
    switch (message.t) {
      case "hello":
        return config;
      case "error": {
        const key = message.message.slice(0, 160);
        errors.set(key, (errors.get(key) ?? 0) + 1);
        return { accepted: true, superseded: false, stop: stopping };
      }
      case "enter":
      case "write":
        return {
          ...record({ type: message.t, worker, name: message.name, token: message.token, at }),
          stop: stopping,
        };
      case "lost":
        return {
          ...record({ type: "lost", worker, name: message.name, why: message.why, at }),
          stop: stopping,
        };
      case "exit":
      case "kept":
        return { ...record({ type: message.t, worker, name: message.name, at }), stop: stopping };
    }
  };

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    let worker = "?";
    let buffered = "";
    socket.on("data", (chunk) => {
      buffered += chunk;
      let end: number;
      while ((end = buffered.indexOf("\n")) >= 0) {
        const message = JSON.parse(buffered.slice(0, end)) as WorkerMessage;
        buffered = buffered.slice(end + 1);
        if (message.t === "hello") worker = message.worker;
        socket.write(JSON.stringify(answer(worker, message)) + "\n");
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve({
        port: typeof address === "object" && address ? address.port : 0,
        checker,
        record: (event) => void record(event),
        inside,
        errors,
        sections: () => sections,
        stopAll: () => (stopping = true),
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
