// Linux process start times, computed exactly as psutil does so that bids
// written by Python's lockfolder and by us agree on `CREATED`.

import type { ProcessStart } from "./types.ts";

const CLOCK_TICKS = 100;

/** Boot time (epoch seconds) from the `btime` line of `/proc/stat`. */
export function parseBootTime(procStat: string): number | null {
  const match = /^btime\s+(\d+)$/m.exec(procStat);
  return match ? Number(match[1]) : null;
}

/**
 * The fields of a `/proc/<pid>/stat` line after the command name, from
 * field 3 (the state) on, or `null` if the line has no name. The name may
 * hold spaces and parentheses, so the fields start after the last `)`.
 */
export function statFields(pidStat: string): string[] | null {
  const end = pidStat.lastIndexOf(")");
  return end < 0 ? null : pidStat.slice(end + 2).split(" ");
}

/**
 * Start time from a `/proc/<pid>/stat` line: field 22 (ticks since boot),
 * and in whole epoch seconds.
 */
export function parseStartTime(pidStat: string, bootTime: number): ProcessStart | null {
  const fields = statFields(pidStat);
  if (!fields) return null;
  const ticks = Number(fields[19]);
  if (!Number.isSafeInteger(ticks)) return null;
  return { created: Math.floor(bootTime + ticks / CLOCK_TICKS), ticks };
}

/**
 * The pid and network namespace ids from the targets of the links
 * `/proc/self/ns/pid` and `/proc/self/ns/net` (`pid:[4026531836]`), and the
 * time namespace's where the kernel has one (5.6 and later): `"pid:net"` or
 * `"pid:net:time"`; `null` if pid or net is missing or unreadable.
 */
export function namespaceIdOf(readLink: (path: string) => string): string | null {
  const inode = (link: string) => {
    try {
      return /^\w+:\[(\d+)\]$/.exec(readLink(link))?.[1];
    } catch {
      return undefined;
    }
  };
  const pid = inode("/proc/self/ns/pid");
  const net = inode("/proc/self/ns/net");
  if (!pid || !net) return null;
  // /proc shows start ticks shifted by the reader's time namespace.
  const time = inode("/proc/self/ns/time");
  return time ? `${pid}:${net}:${time}` : `${pid}:${net}`;
}

/**
 * Whether the `/proc` mounted is of our pid namespace: its `/proc/self/stat`
 * (given as `selfStat`) names `ownPid`. Otherwise its entries are other
 * processes than the pids we know.
 */
export function isOwnProc(selfStat: string, ownPid: number): boolean {
  return Number.parseInt(selfStat, 10) === ownPid;
}

/**
 * Reads a pid's start time through `readText`, caching the boot time.
 * Returns `null` when the process is gone (even while being read), the
 * platform has no `/proc`, or the `/proc` mounted is not of our pid
 * namespace (`/proc/self` is not `ownPid`): its entries are other processes.
 */
export function procStartTimeReader(
  readText: (path: string) => Promise<string>,
  isNotFound: (error: unknown) => boolean,
  ownPid: number,
): (pid: number) => Promise<ProcessStart | null> {
  let bootTime: number | null = null;
  let procIsOurs: boolean | null = null;
  return async (pid) => {
    try {
      procIsOurs ??= isOwnProc(await readText("/proc/self/stat"), ownPid);
      if (!procIsOurs) return null;
      bootTime ??= parseBootTime(await readText("/proc/stat"));
      if (bootTime === null) return null;
      return parseStartTime(await readText(`/proc/${pid}/stat`), bootTime);
    } catch (error) {
      // ESRCH: the process exited between open() and read() of its stat file.
      if (isNotFound(error) || (error as { code?: unknown })?.code === "ESRCH") return null;
      throw error;
    }
  };
}
