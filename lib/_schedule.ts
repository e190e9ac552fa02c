// One unref'd timer per runtime for the renewals of every held lease (Redis
// locks, lock server leases). A lock held and released in a moment then
// costs no timer of its own: its first renewal, ttl/3 away, is later than
// the one the timer is already set for, so taking and releasing it only adds
// to and deletes from a set.

import type { Runtime, Timer } from "./runtime/mod.ts";
import { LinkedList, type Listed } from "./_linked_list.ts";

/** Something to run at a monotonic time. */
export interface Due extends Listed<Due> {
  /** When, monotonic ms. */
  at: number;
  /** Runs it (once per `add`). */
  run(): void;
}

class Schedule {
  #runtime: Runtime;
  #entries = new LinkedList<Due>();
  #timer: Timer | null = null;
  #timerAt = Infinity;

  constructor(runtime: Runtime) {
    this.#runtime = runtime;
  }

  add(entry: Due): void {
    this.#entries.add(entry);
    if (entry.at < this.#timerAt) this.#arm(entry.at);
  }

  delete(entry: Due): void {
    // The timer stays: when it fires with nothing due it simply stops.
    this.#entries.delete(entry);
  }

  #arm(at: number): void {
    this.#timer?.clear();
    this.#timerAt = at;
    const timer = this.#runtime.setTimer(
      () => this.#fire(),
      Math.max(0, at - this.#runtime.monotonic()),
    );
    // Renewals never keep the process alive.
    timer.unref();
    this.#timer = timer;
  }

  #fire(): void {
    this.#timer = null;
    this.#timerAt = Infinity;
    const now = this.#runtime.monotonic();
    const due: Due[] = [];
    let next = Infinity;
    for (const entry of this.#entries.toArray()) {
      if (entry.at <= now) {
        due.push(entry);
        this.#entries.delete(entry);
      } else if (entry.at < next) {
        next = entry.at;
      }
    }
    if (next < Infinity) this.#arm(next);
    for (const entry of due) {
      try {
        entry.run();
      } catch {
        // One entry's failure must not stop the others.
      }
    }
  }
}

const schedules = new WeakMap<Runtime, Schedule>();

/** The shared schedule of `runtime`. */
export function scheduleOf(runtime: Runtime): Pick<Schedule, "add" | "delete"> {
  let schedule = schedules.get(runtime);
  if (!schedule) {
    schedule = new Schedule(runtime);
    schedules.set(runtime, schedule);
  }
  return schedule;
}
