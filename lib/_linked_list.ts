// A set of objects linked through the objects themselves, for sets that
// gain and lose a member per request (requests in flight, leases due for
// renewal). Under V8 such a Set rehashes every few changes and links each
// old table to the next, and once one is promoted, every member the Set
// held since survives until a full GC: with Node, a lock server client at
// 20k pairs/s spent a third of its CPU collecting them.

/** A member of a {@link LinkedList}: its links, null while not listed. */
export interface Listed<T> {
  prev: T | null;
  next: T | null;
}

/** Objects in the order they were added, each in it at most once. */
export class LinkedList<T extends Listed<T>> {
  #head: T | null = null;
  #tail: T | null = null;
  /** How many are listed. */
  size = 0;

  /** True if `item` is listed. */
  has(item: T): boolean {
    return item.prev !== null || this.#head === item;
  }

  /** Adds `item` at the end (if not listed already). */
  add(item: T): void {
    if (this.has(item)) return;
    item.prev = this.#tail;
    item.next = null;
    if (this.#tail) this.#tail.next = item;
    else this.#head = item;
    this.#tail = item;
    this.size++;
  }

  /** Removes `item` (if listed). */
  delete(item: T): void {
    if (!this.has(item)) return;
    if (item.prev) item.prev.next = item.next;
    else this.#head = item.next;
    if (item.next) item.next.prev = item.prev;
    else this.#tail = item.prev;
    item.prev = item.next = null;
    this.size--;
  }

  /** The items listed now, oldest first (a copy: they may leave while it is walked). */
  toArray(): T[] {
    const items: T[] = [];
    for (let item = this.#head; item; item = item.next) items.push(item);
    return items;
  }
}
