// How a holder is named in messages ("by pid 12 on host h since ... (kind:
// socket)"): by the errors' messages, and by the CLI, which says what to do
// next in its own terms and whose status command adds the fencing token.

import type { LockInfo } from "./types.ts";
import { shown } from "./_shown.ts";

// Control characters (terminal escape sequences), line and paragraph
// separators, and bidirectional overrides, which could disguise the rest.
function unprintable(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029 ||
    (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069);
}

const MAX_SHOWN = 255;

// A holder's field as messages show it: the fields come from files, bids
// and replies other users and hosts may write, so unprintable characters
// are escaped (`\u001b`) and the text is cut short.
function printable(value: unknown): string {
  let text = "";
  for (const char of shown(value)) {
    const code = char.codePointAt(0)!;
    text += unprintable(code) ? `\\u${code.toString(16).padStart(4, "0")}` : char;
    if (text.length > MAX_SHOWN) return `${text.slice(0, MAX_SHOWN)}…`;
  }
  return text;
}

/**
 * "by pid P on host H since T (kind: K)", or "by another holder" if unknown;
 * `withToken` adds the holder's fencing token: "(kind: K, token N)".
 */
export function describeHolder(holder: LockInfo | null, withToken = false): string {
  if (!holder) return "by another holder";
  // A port lock's holder (and a distlockd client's) has no pid to show.
  const parts = [holder.pid > 0 ? `by pid ${holder.pid}` : "by a holder of unknown pid"];
  if (holder.host) parts.push(`on host ${printable(holder.host)}`);
  if (holder.acquiredAt) {
    // A time from another host's file or bid may be beyond Date's range.
    const since = new Date(holder.acquiredAt);
    parts.push(
      `since ${Number.isNaN(since.getTime()) ? printable(holder.acquiredAt) : since.toISOString()}`,
    );
  }
  const token = withToken && holder.token !== undefined ? `, token ${holder.token}` : "";
  return `${parts.join(" ")} (kind: ${holder.kind}${token})`;
}
