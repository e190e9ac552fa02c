// Which of a recorded holder's namespaces differ from ours (Linux): pids and
// start times mean something only within one pid namespace, loopback ports
// and abstract sockets only within one network namespace.

/** Which namespaces of a recorded holder are not ours (unknown counts as ours). */
export interface ForeignNamespaces {
  /** Its pids are not ours to check. */
  pid: boolean;
  /** Its 127.0.0.1 and abstract sockets are not ours to reach. */
  net: boolean;
}

/**
 * Compares namespace ids as `Runtime.namespaceId()` gives them
 * (`"<pid ns>:<net ns>"`).
 *
 * @param recorded The holder's, if it recorded one.
 * @param ours Ours, or null if unknown.
 * @returns Which differ; none when either is unknown.
 */
export function foreignNamespaces(
  recorded: string | undefined,
  ours: string | null,
): ForeignNamespaces {
  if (!recorded || !ours || recorded === ours) return { pid: false, net: false };
  const [theirPid, theirNet] = recorded.split(":");
  const [ourPid, ourNet] = ours.split(":");
  return { pid: theirPid !== ourPid, net: theirNet !== ourNet };
}
