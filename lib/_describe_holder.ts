// How a holder is named in messages ("by pid 12 on host h since ... (kind:
// socket)"): by the errors' messages, and by the CLI, which says what to do
// next in its own terms and whose status command adds the fencing token.

import type { LockInfo } from "./types.ts";

/**
 * "by pid P on host H since T (kind: K)", or "by another holder" if unknown;
 * `withToken` adds the holder's fencing token: "(kind: K, token N)".
 */
export function describeHolder(holder: LockInfo | null, withToken = false): string {
  if (!holder) return "by another holder";
  // A port lock's holder (and a distlockd client's) has no pid to show.
  const parts = [holder.pid > 0 ? `by pid ${holder.pid}` : "by a holder of unknown pid"];
  if (holder.host) parts.push(`on host ${holder.host}`);
  if (holder.acquiredAt) {
    // A time from another host's file or bid may be beyond Date's range.
    const since = new Date(holder.acquiredAt);
    parts.push(`since ${Number.isNaN(since.getTime()) ? holder.acquiredAt : since.toISOString()}`);
  }
  const token = withToken && holder.token !== undefined ? `, token ${holder.token}` : "";
  return `${parts.join(" ")} (kind: ${holder.kind}${token})`;
}
