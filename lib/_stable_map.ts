// A map for keys that are taken and given back once per request (a lock's
// name while it is held). A plain Map that gains and loses an entry per
// request rehashes every few changes, and under V8 once one of its tables
// is promoted, everything it held since survives until a full GC (see
// _linked_list.ts). Here a key given back stays in the table with no value,
// so taking it again changes no table; the free keys are swept once they
// outnumber the held ones by SWEEP_SLACK, so a program that uses many
// distinct names does not keep them all.

const SWEEP_SLACK = 1_024;

/** A map whose deleted keys stay in its table, unvalued, until a sweep. */
export class StableMap<K, V> {
  #map = new Map<K, V | undefined>();
  #free = 0;
  /** How many keys have a value. */
  size = 0;

  /** The value of `key`, if it has one. */
  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  /** True if `key` has a value. */
  has(key: K): boolean {
    return this.#map.get(key) !== undefined;
  }

  /** Gives `key` the value `value` (never undefined). */
  set(key: K, value: V): void {
    const map = this.#map;
    if (map.get(key) === undefined) {
      if (map.has(key)) this.#free--;
      this.size++;
    }
    map.set(key, value);
  }

  /** Takes the value of `key` away; returns false if it had none. */
  delete(key: K): boolean {
    const map = this.#map;
    if (map.get(key) === undefined) return false;
    map.set(key, undefined);
    this.size--;
    if (++this.#free > this.size + SWEEP_SLACK) this.#sweep();
    return true;
  }

  /** The values now, in the order their keys first came (a copy). */
  values(): V[] {
    const values: V[] = [];
    for (const value of this.#map.values()) if (value !== undefined) values.push(value);
    return values;
  }

  /** The keys with a value and their values now (a copy). */
  entries(): [K, V][] {
    const entries: [K, V][] = [];
    for (const [key, value] of this.#map) if (value !== undefined) entries.push([key, value]);
    return entries;
  }

  /** Forgets every key. */
  clear(): void {
    this.#map = new Map();
    this.#free = 0;
    this.size = 0;
  }

  // A new table rather than deletes in the old one: no chain of rehashed
  // tables, and the old one goes whole.
  #sweep(): void {
    this.#map = new Map(this.entries());
    this.#free = 0;
  }
}
