// The torture suite's history checker. Every critical section of every worker
// is reported to one sequencer (tests/torture/_sequencer.ts) and acknowledged
// before the worker goes on, so the sequencer's receipt order is a valid
// order of the real events: a worker reports "exit" and waits for the ack
// before it releases, and the next holder reports "enter" only after it
// acquired. In a correct run, then, every name's enter/exit records
// alternate; two sections of one name overlapping in the record means two
// holders at once. Faults are recorded in the same order by the harness.
//
// The checker is online (the sequencer asks it, on each record, whether the
// worker's lock was taken over) and the same code checks synthetic histories
// in history_checker_test.ts, so it is itself tested against violations.

/** What the checker is told, in the order it happened. */
export type TortureEvent =
  | { type: "enter"; worker: string; name: string; token: number; at: number }
  | { type: "write"; worker: string; name: string; token: number; at: number }
  | { type: "exit"; worker: string; name: string; at: number }
  /** The worker's `held.signal` aborted (reported after a takeover, or on its own). */
  | { type: "lost"; worker: string; name: string; why: string; at: number }
  /** A taken-over worker's `held.signal` did not abort within the bound. */
  | { type: "kept"; worker: string; name: string; at: number }
  | { type: "kill"; worker: string; at: number }
  | { type: "stop"; worker: string; at: number }
  | { type: "cont"; worker: string; at: number }
  /** The lock service (server, redis-server) is being killed: any lock of it may go. */
  | { type: "crash"; at: number }
  /** It died (and is coming back): its leases are gone. */
  | { type: "restart"; at: number };

/** How the checked kind may legitimately lose a lock. */
export interface CheckerRules {
  /**
   * Lease kinds: the least time (ms) a stopped holder's lease still protects
   * it after SIGSTOP. A newcomer entering earlier is a violation; later it
   * takes the lease over. `null` for local kinds, whose paused holders keep
   * their locks for as long as they live.
   */
  leaseFloorMs: number | null;
}

/** What the checker answers the sequencer on each record. */
export interface Verdict {
  /** Whether a write was accepted by the fenced resource. */
  accepted: boolean;
  /** The worker's section was taken over (its lease expired or its service restarted). */
  superseded: boolean;
}

/** The figures a run ends with. */
export interface TortureSummary {
  sections: number;
  faults: { kill: number; killInside: number; stop: number; restart: number };
  takeovers: number;
  staleWritesRejected: number;
  lostReported: number;
  unexpectedLosses: number;
  /** Why each unexpected loss happened, as its held.signal said. */
  unexpectedLossReasons: string[];
  violations: string[];
}

interface WorkerState {
  inside: string | null;
  token: number;
  stoppedAt: number | null;
  /** Longest SIGSTOP since the worker's last record, in ms. */
  pausedSinceRecord: number;
  /** When the last SIGSTOP at least as long as the lease floor ended. */
  longPauseEndedAt: number;
  /** When the worker's previous section ended (its current one began after). */
  previousExitAt: number;
  lastExitAt: number;
  superseded: boolean;
  awaitingLost: boolean;
  dead: boolean;
}

/** Checks one kind's history, record by record. */
export class HistoryChecker {
  readonly #rules: CheckerRules;
  readonly #workers = new Map<string, WorkerState>();
  readonly #occupant = new Map<string, string>();
  readonly #lastToken = new Map<string, number>();
  readonly #maxWritten = new Map<string, number>();
  /** When the service last restarted: it forgot every lock granted before. */
  #lastRestartAt = -Infinity;
  /**
   * Between a crash and its restart record. A worker sees its connection
   * close before the harness sees the service's exit, so it may report a
   * loss, of a section it already left, before the restart is recorded.
   */
  #crashing = false;
  readonly #summary: TortureSummary = {
    sections: 0,
    faults: { kill: 0, killInside: 0, stop: 0, restart: 0 },
    takeovers: 0,
    staleWritesRejected: 0,
    lostReported: 0,
    unexpectedLosses: 0,
    unexpectedLossReasons: [],
    violations: [],
  };

  constructor(rules: CheckerRules) {
    this.#rules = rules;
  }

  /** Records one event and says what the sequencer should tell the worker. */
  record(event: TortureEvent): Verdict {
    const worker = "worker" in event ? this.#worker(event.worker) : null;
    // A killed worker's last words may still be in flight; it no longer holds anything.
    if (worker?.dead) return { accepted: false, superseded: true };
    let accepted = true;
    switch (event.type) {
      case "enter":
        this.#enter(worker!, event);
        break;
      case "write":
        accepted = this.#write(worker!, event);
        break;
      case "exit":
        this.#exit(worker!, event);
        break;
      case "lost":
        this.#summary.lostReported++;
        // A lease that ran out while its holder was stopped is lost, even if
        // nobody took it; so is a lock granted just before a restart, whose
        // holder said "enter" only after it (so it was not superseded).
        if (
          !worker!.superseded && worker!.longPauseEndedAt <= worker!.previousExitAt &&
          this.#lastRestartAt <= worker!.previousExitAt && !this.#crashing
        ) {
          this.#summary.unexpectedLosses++;
          this.#summary.unexpectedLossReasons.push(
            `${event.worker}, "${event.name}": ${event.why}`,
          );
        }
        worker!.awaitingLost = false;
        break;
      case "kept":
        this.#violation(
          `${event.worker}: its lock of "${event.name}" was taken over, yet held.signal never aborted`,
        );
        worker!.awaitingLost = false;
        break;
      case "kill":
        this.#summary.faults.kill++;
        worker!.dead = true;
        worker!.awaitingLost = false;
        if (worker!.inside !== null) {
          this.#summary.faults.killInside++;
          this.#summary.sections++;
          this.#leave(event.worker, worker!);
        }
        break;
      case "stop":
        this.#summary.faults.stop++;
        worker!.stoppedAt = event.at;
        break;
      case "cont":
        if (worker!.stoppedAt !== null) {
          const paused = event.at - worker!.stoppedAt;
          worker!.pausedSinceRecord = Math.max(worker!.pausedSinceRecord, paused);
          const floor = this.#rules.leaseFloorMs;
          if (floor !== null && paused >= floor) worker!.longPauseEndedAt = event.at;
        }
        worker!.stoppedAt = null;
        break;
      case "crash":
        this.#crashing = true;
        break;
      case "restart":
        this.#summary.faults.restart++;
        this.#crashing = false;
        this.#lastRestartAt = event.at;
        for (const [id, state] of this.#workers) {
          if (state.inside !== null && !state.superseded) this.#supersede(id, state);
        }
        break;
    }
    if (worker && event.type !== "stop" && event.type !== "cont" && event.type !== "kill") {
      worker.pausedSinceRecord = 0;
    }
    return { accepted, superseded: worker?.superseded ?? false };
  }

  /** Takeovers so far: entries while a holder's lease had run out. */
  get takeovers(): number {
    return this.#summary.takeovers;
  }

  /** The figures so far, with a violation for each taken-over worker that never reported. */
  finish(): TortureSummary {
    for (const [id, state] of this.#workers) {
      if (state.awaitingLost && !state.dead) {
        this.#violation(`${id}: taken over, but never reported whether held.signal aborted`);
        state.awaitingLost = false;
      }
    }
    return structuredClone(this.#summary);
  }

  #enter(worker: WorkerState, event: Extract<TortureEvent, { type: "enter" }>): void {
    worker.previousExitAt = worker.lastExitAt;
    if (worker.inside !== null) {
      this.#violation(
        `${event.worker} entered "${event.name}" while still inside "${worker.inside}"`,
      );
    }
    const last = this.#lastToken.get(event.name) ?? -Infinity;
    const floor = this.#rules.leaseFloorMs;
    if (event.token <= last && floor !== null && worker.pausedSinceRecord >= floor) {
      // Granted, then stopped before it could say so, for longer than its
      // lease: a later holder has a larger token. It enters already taken
      // over; the fenced resource must refuse its write.
      worker.inside = event.name;
      worker.token = event.token;
      this.#supersede(event.worker, worker);
      return;
    }
    const occupantId = this.#occupant.get(event.name);
    if (occupantId !== undefined && occupantId !== event.worker) {
      const occupant = this.#worker(occupantId);
      const paused = occupant.stoppedAt === null ? null : event.at - occupant.stoppedAt;
      if (occupant.superseded) {
        // Its lease was already gone; the fenced resource guards its late writes.
      } else if (floor !== null && paused !== null && paused >= floor) {
        this.#supersede(occupantId, occupant);
      } else {
        this.#violation(
          `${event.worker} entered "${event.name}" (token ${event.token}) while ${occupantId} ` +
            `held it (token ${occupant.token}` +
            (paused === null ? ")" : `, stopped ${paused.toFixed(0)} ms ago)`),
        );
      }
    }
    if (!(event.token > last)) {
      this.#violation(
        `"${event.name}": token ${event.token} granted to ${event.worker} after token ${last}`,
      );
    }
    this.#lastToken.set(event.name, Math.max(last, event.token));
    this.#occupant.set(event.name, event.worker);
    worker.inside = event.name;
    worker.token = event.token;
    worker.superseded = false;
  }

  #write(worker: WorkerState, event: Extract<TortureEvent, { type: "write" }>): boolean {
    if (worker.inside !== event.name) {
      this.#violation(`${event.worker} wrote to "${event.name}" outside a section of it`);
    }
    const max = this.#maxWritten.get(event.name) ?? -Infinity;
    if (event.token >= max) {
      this.#maxWritten.set(event.name, event.token);
      return true;
    }
    if (worker.superseded) {
      this.#summary.staleWritesRejected++;
    } else {
      this.#violation(
        `"${event.name}": the write of holder ${event.worker} (token ${event.token}) was ` +
          `refused: token ${max} wrote while it held the lock`,
      );
    }
    return false;
  }

  #exit(worker: WorkerState, event: Extract<TortureEvent, { type: "exit" }>): void {
    if (worker.inside !== event.name) {
      this.#violation(`${event.worker} left "${event.name}" without having entered it`);
      return;
    }
    this.#summary.sections++;
    worker.lastExitAt = event.at;
    this.#leave(event.worker, worker);
  }

  #leave(id: string, worker: WorkerState): void {
    if (this.#occupant.get(worker.inside!) === id) this.#occupant.delete(worker.inside!);
    worker.inside = null;
  }

  #supersede(id: string, worker: WorkerState): void {
    worker.superseded = true;
    worker.awaitingLost = true;
    this.#summary.takeovers++;
    if (this.#occupant.get(worker.inside!) === id) this.#occupant.delete(worker.inside!);
  }

  #worker(id: string): WorkerState {
    let state = this.#workers.get(id);
    if (!state) {
      state = {
        inside: null,
        token: 0,
        stoppedAt: null,
        pausedSinceRecord: 0,
        longPauseEndedAt: -Infinity,
        previousExitAt: -Infinity,
        lastExitAt: -Infinity,
        superseded: false,
        awaitingLost: false,
        dead: false,
      };
      this.#workers.set(id, state);
    }
    return state;
  }

  #violation(message: string): void {
    this.#summary.violations.push(message);
  }
}
