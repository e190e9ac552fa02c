// Which of a recorded holder's namespaces differ from ours (Linux): pids and
// start times mean something only within one pid namespace, loopback ports
// and abstract sockets only within one network namespace, and start ticks
// (as /proc shows them, shifted by the reader's boot-time offset) only
// within one time namespace.

/** Which namespaces of a recorded holder are not ours (unknown counts as ours). */
export interface ForeignNamespaces {
  /** Its pids are not ours to check. */
  pid: boolean;
  /** Its 127.0.0.1 and abstract sockets are not ours to reach. */
  net: boolean;
  /** Its start ticks, as we read them, are not those it recorded. */
  time: boolean;
}

/**
 * Compares namespace ids as `Runtime.namespaceId()` gives them
 * (`"<pid ns>:<net ns>"`, and `":<time ns>"` where the kernel has one; an id
 * without it, from an older peer or kernel, is taken as ours).
 *
 * @param recorded The holder's, if it recorded one.
 * @param ours Ours, or null if unknown.
 * @returns Which differ; none when either is unknown.
 */
export function foreignNamespaces(
  recorded: string | undefined,
  ours: string | null,
): ForeignNamespaces {
  if (!recorded || !ours || recorded === ours) return { pid: false, net: false, time: false };
  const [theirPid, theirNet, theirTime] = recorded.split(":");
  const [ourPid, ourNet, ourTime] = ours.split(":");
  return {
    pid: theirPid !== ourPid,
    net: theirNet !== ourNet,
    time: theirTime !== undefined && ourTime !== undefined && theirTime !== ourTime,
  };
}
