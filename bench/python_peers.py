"""Python's lock tools on this machine, in the same run as ours.

Issue 4 quotes figures for Python socketlock, lockfolder and k3portlock
measured on some machine; this measures them here, so the table can say how
this machine compares. PyPI is not reachable here, so each tool is a
stand-in that makes the same system calls its protocol describes
(../shared/protocols/*.md); the real packages add their own Python on top,
so these figures are, if anything, a little fast.

Usage: python3 bench/python_peers.py DIR WARMUP_MS REPEATS REPEAT_MS
Prints one JSON line: a list of measured figures, shaped like bench/_measure.ts's.
"""
import asyncio, json, math, os, socket, subprocess, sys, threading, time, uuid

HOLDING = sys.argv[1] == "--hold"
if not HOLDING:
    DIR = sys.argv[1]
    WARMUP_S, REPEATS, REPEAT_S = int(sys.argv[2]) / 1e3, int(sys.argv[3]), int(sys.argv[4]) / 1e3
TICKS = os.sysconf("SC_CLK_TCK")


def quantile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarize(repeats):
    p50s = [r[0] for r in repeats]
    mid = quantile(p50s, 0.5)
    return {
        "p50Us": mid,
        "p99Us": quantile([r[1] for r in repeats], 0.5),
        "opsPerSec": quantile([r[2] for r in repeats], 0.5),
        "noisePct": (max(p50s) - min(p50s)) / 2 / mid * 100 if mid > 0 else 0,
        "repeats": len(repeats),
        "samples": int(quantile([r[3] for r in repeats], 0.5)),
        "method": "per op",
    }


def measure(op):
    """Warm-up, then REPEATS repeats of REPEAT_S, each op timed alone."""
    clock = time.perf_counter
    end = clock() + WARMUP_S
    while clock() < end:
        op()
    repeats = []
    for _ in range(REPEATS):
        samples = []
        start = now = clock()
        while now - start < REPEAT_S:
            t0 = now
            op()
            now = clock()
            samples.append((now - t0) * 1e6)
        repeats.append((quantile(samples, 0.5), quantile(samples, 0.99),
                        len(samples) / (now - start), len(samples)))
    return summarize(repeats)


# k3portlock: on Linux, bind a unix socket to "\0/portlock/<key>" (no
# listen), under a threading.RLock; release closes it.
def k3portlock_cycle():
    guard = threading.RLock()
    name = "\0/portlock/bench-" + uuid.uuid4().hex

    def op():
        with guard:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(name)
            except OSError:
                sock.close()
                raise
            sock.close()
    return op


# lockfolder: check the folder for valid bids, write ours (pid + process
# creation time as psutil computes it: /proc/<pid>/stat, and the boot time
# read once), check again; release removes it.
def read_boot_time():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime"):
                return float(line.split()[1])


BOOT_TIME = read_boot_time()


def create_time(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return int(float(data[data.rfind(")") + 2:].split()[19]) / TICKS + BOOT_TIME)


def lockfolder_cycle():
    folder = os.path.join(DIR, "py-lockfolder-" + uuid.uuid4().hex)
    os.makedirs(folder, mode=0o700)
    me = str(uuid.uuid4()) + ".json"

    def others_valid():
        return any(n.endswith(".json") and n != me for n in os.listdir(folder))

    def op():
        if others_valid():
            raise RuntimeError("busy")
        with open(os.path.join(folder, me), "w") as f:
            json.dump({"PID": os.getpid(), "CREATED": create_time(os.getpid())}, f)
        if others_valid():
            raise RuntimeError("busy")
        os.remove(os.path.join(folder, me))
    return op


# socketlock: an asyncio server on 127.0.0.1:0, its JSON written to a temp
# file and linked into place; release closes the server and unlinks.
SIGNATURE = b"SOCKETLOCK_ACTIVE:0123456789abcdef"


async def answer(reader, writer):
    try:
        if await asyncio.wait_for(reader.read(16), 1.0) == b"SOCKETLOCK_CHECK":
            writer.write(SIGNATURE)
            await writer.drain()
    finally:
        writer.close()


async def take(path):
    if os.path.exists(path):
        raise RuntimeError("busy")
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    temp = f"{path}.tmp.{os.getpid()}"
    with open(temp, "w") as f:
        json.dump({"port": port, "pid": os.getpid(), "timestamp": time.time(), "name": "bench"},
                  f, indent=2)
    os.link(temp, path)
    os.unlink(temp)
    return server


async def give_back(path, server):
    server.close()
    await server.wait_closed()
    os.unlink(path)


async def check(path):
    """socketlock's check of a held lock: read, connect, probe, compare."""
    with open(path) as f:
        port = json.load(f)["port"]
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    try:
        writer.write(b"SOCKETLOCK_CHECK")
        await writer.drain()
        return (await asyncio.wait_for(reader.read(64), 1.0)) == SIGNATURE
    finally:
        writer.close()


def socketlock_cycles():
    loop = asyncio.new_event_loop()
    path = os.path.join(DIR, ".py-socketlock-" + uuid.uuid4().hex + ".lock")

    async def cycle():
        await give_back(path, await take(path))

    def op():
        loop.run_until_complete(cycle())
    # The contended check runs against a holder in another process.
    holder = subprocess.Popen([sys.executable, __file__, "--hold", path],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = holder.stdout.readline().strip()
        if ready != "held":
            raise RuntimeError(f"holder said {ready!r}")
        held = os.path.join(DIR, ".py-socketlock-held.lock")

        def probe():
            if not loop.run_until_complete(check(held)):
                raise RuntimeError("holder did not answer")
        def stop():
            holder.stdin.close()
            try:
                holder.wait(3)
            except subprocess.TimeoutExpired:
                holder.kill()
            loop.close()
        return op, probe, stop
    except BaseException:
        holder.kill()
        raise


def hold(path):
    async def main():
        held = os.path.join(os.path.dirname(path), ".py-socketlock-held.lock")
        server = await take(held)
        print("held", flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            await give_back(held, server)
    asyncio.run(main())


def main():
    results = [
        ("python.k3portlock", "k3portlock acquire+release", k3portlock_cycle()),
        ("python.lockfolder", "lockfolder acquire+release", lockfolder_cycle()),
    ]
    cycle, probe, stop = socketlock_cycles()
    try:
        results += [
            ("python.socketlock", "socketlock acquire+release", cycle),
            ("python.socketlock_check", "socketlock contended check (read + handshake)", probe),
        ]
        print(json.dumps([dict(id=i, operation=o, **measure(op)) for i, o, op in results]))
    finally:
        stop()


if __name__ == "__main__":
    if HOLDING:
        hold(sys.argv[2])
    else:
        main()
