/**
 * This library's version, as published (`jsr.json`); the CLI prints it for
 * `socketlock --version`.
 *
 * @example Print it
 * ```ts
 * import { VERSION } from "./version.ts";
 * console.log(`socketlock ${VERSION}`);
 * ```
 *
 * @module
 */

/** The published version; a test keeps it equal to jsr.json's and deno.json's. */
export const VERSION = "0.1.0";
