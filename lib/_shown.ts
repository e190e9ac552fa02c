/**
 * A rejected option value as an error message shows it. Never throws: a
 * null-prototype object, which `String()` cannot convert, shows as
 * `[object Object]`.
 *
 * @example Show values that String() cannot
 * ```ts
 * import { shown } from "./_shown.ts";
 * console.log(shown(Object.create(null))); // "[object Object]"
 * console.log(shown(NaN)); // "NaN"
 * ```
 *
 * @param value Any value.
 * @returns Its text.
 */
export function shown(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
