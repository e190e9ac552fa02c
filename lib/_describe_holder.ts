// How a holder is named in messages ("by pid 12 on host h since ... (kind:
// socket)"): by the errors' messages, and by the CLI, which says what to do
// next in its own terms.

import type { LockInfo } from "./types.ts";

/** "by pid P on host H since T (kind: K)", or "by another holder" if unknown. */
export function describeHolder(holder: LockInfo | null): string {
  if (!holder) return "by another holder";
  const parts = [`by pid ${holder.pid}`];
  if (holder.host) parts.push(`on host ${holder.host}`);
  if (holder.acquiredAt) {
    parts.push(`since ${new Date(holder.acquiredAt).toISOString()}`);
  }
  return `${parts.join(" ")} (kind: ${holder.kind})`;
}
