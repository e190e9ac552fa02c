/**
 * Lock names: what is allowed, checked once before any kind touches a file,
 * socket or server with them.
 *
 * @module
 */

import { InvalidLockNameError } from "./errors.ts";
import { shown } from "./_shown.ts";

/** The longest name, in UTF-8 bytes: leaves room for suffixes within a 255-byte file name. */
export const MAX_NAME_BYTES = 200;

const encoder = new TextEncoder();
// Printable ASCII but '/' and '\', at most MAX_NAME_BYTES (one byte each).
const PLAIN = new RegExp(`^[\\x20-\\x2e\\x30-\\x5b\\x5d-\\x7e]{1,${MAX_NAME_BYTES}}$`);

/**
 * Checks that `name` can be used as a lock name on every kind: 1 to 200 UTF-8
 * bytes, no `/`, `\`, NUL or other control characters (C0, DEL, C1, line
 * separators), no lone surrogates, not `.` or `..`.
 *
 * @example Accept a good name, reject a path
 * ```ts
 * import { validateLockName } from "./names.ts";
 * validateLockName("nightly-report");
 * try { validateLockName("../etc/passwd"); } catch (e) { console.log((e as Error).name); }
 * ```
 *
 * @param name The name to check.
 * @returns The name, unchanged.
 * @throws {InvalidLockNameError} When the name cannot be used.
 */
export function validateLockName(name: string): string {
  // Most names are short printable ASCII: one test clears them.
  if (typeof name === "string" && PLAIN.test(name) && name !== "." && name !== "..") return name;
  if (typeof name !== "string") {
    throw new InvalidLockNameError(shown(name), "it is not a string");
  }
  if (name.length === 0) throw new InvalidLockNameError(name, "it is empty");
  const bytes = encoder.encode(name).length;
  if (bytes > MAX_NAME_BYTES) {
    throw new InvalidLockNameError(
      name,
      `it is ${bytes} bytes long (at most ${MAX_NAME_BYTES})`,
    );
  }
  if (name === "." || name === "..") {
    throw new InvalidLockNameError(name, "it names a directory");
  }
  for (const [char, why] of [["/", "'/'"], ["\\", "'\\'"]] as const) {
    if (name.includes(char)) {
      throw new InvalidLockNameError(name, `it contains ${why}`);
    }
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(name)) {
    throw new InvalidLockNameError(name, "it contains NUL or a control character");
  }
  // A lone surrogate becomes U+FFFD on disk and on the wire, so "\uD800" and
  // "\uDFFF" would silently be one lock.
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(name)) {
    throw new InvalidLockNameError(name, "it is not well-formed Unicode (a lone surrogate)");
  }
  return name;
}
