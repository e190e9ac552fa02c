// A min-heap of deadlines whose items know their own position, so a lease
// that is released or renewed leaves the heap (or moves) in O(log n) instead
// of lingering until its time comes: at 50,000 grants/s with a 10 s TTL,
// lazily deleted entries alone would hold half a million objects.

/** Something with a deadline that can sit in a {@link DeadlineHeap}. */
export interface HeapItem {
  /** When it is due (monotonic ms). */
  deadline: number;
  /** Its index in the heap; -1 when not in one. Owned by the heap. */
  heapIndex: number;
}

/** A binary min-heap ordered by `deadline`, with removal and update by item. */
export class DeadlineHeap<T extends HeapItem> {
  #items: T[] = [];

  /** How many items are queued. */
  get size(): number {
    return this.#items.length;
  }

  /** The item due first, if any. */
  peek(): T | undefined {
    return this.#items[0];
  }

  /** Adds `item` (which must not be in a heap). */
  push(item: T): void {
    item.heapIndex = this.#items.length;
    this.#items.push(item);
    this.#up(item.heapIndex);
  }

  /** Removes and returns the item due first. */
  pop(): T | undefined {
    const top = this.#items[0];
    if (top) this.remove(top);
    return top;
  }

  /** Removes `item` if it is in this heap. */
  remove(item: T): void {
    const at = item.heapIndex;
    if (at < 0 || this.#items[at] !== item) return;
    const last = this.#items.pop()!;
    item.heapIndex = -1;
    if (last === item) return;
    this.#items[at] = last;
    last.heapIndex = at;
    this.#down(at);
    this.#up(last.heapIndex);
  }

  /** Sets `item`'s deadline and restores the order (adding it if absent). */
  update(item: T, deadline: number): void {
    item.deadline = deadline;
    const at = item.heapIndex;
    if (at < 0 || this.#items[at] !== item) {
      this.push(item);
      return;
    }
    this.#down(at);
    this.#up(item.heapIndex);
  }

  #up(at: number): void {
    const items = this.#items;
    const item = items[at];
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (items[parent].deadline <= item.deadline) break;
      items[at] = items[parent];
      items[at].heapIndex = at;
      at = parent;
    }
    items[at] = item;
    item.heapIndex = at;
  }

  #down(at: number): void {
    const items = this.#items;
    const n = items.length;
    const item = items[at];
    for (;;) {
      let child = 2 * at + 1;
      if (child >= n) break;
      if (child + 1 < n && items[child + 1].deadline < items[child].deadline) child++;
      if (items[child].deadline >= item.deadline) break;
      items[at] = items[child];
      items[at].heapIndex = at;
      at = child;
    }
    items[at] = item;
    item.heapIndex = at;
  }
}
