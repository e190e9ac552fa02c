#!/usr/bin/env bash
# Runs every benchmark in Deno 2, Bun 1 and Node 24 (one after the other, on
# one machine), with a private redis-server for the Redis cases, then prints
# the Markdown table and writes bench/RESULTS.md and bench/chart.svg.
# Usage: bash bench/run.sh [--full] [--only case,case]   (deno task bench)
# With --only, the table is printed and bench/RESULTS.md and chart.svg are kept.
# SOCKETLOCK_BENCH_DIR=/dev/shm puts the lock directory on another file system.
set -uo pipefail
cd "$(dirname "$0")/.."

# Node resolves the peers (proper-lockfile, redlock, redis-semaphore, ioredis)
# from node_modules only; a fresh clone has none, and a lock file changed
# since the last install (npm writes node_modules/.package-lock.json) needs a
# new one.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== installing benchmark dependencies (npm ci)"
  npm ci --no-audit --no-fund || exit 1
fi

echo "== resolving runtimes (npx -y deno@2 / bun@1 / node@24)"
SOCKETLOCK_DENO=${SOCKETLOCK_DENO:-$(npx -y deno@2 eval 'console.log(Deno.execPath())')} || exit 1
SOCKETLOCK_BUN=${SOCKETLOCK_BUN:-$(npx -y bun@1 -e 'console.log(process.execPath)')} || exit 1
SOCKETLOCK_NODE=${SOCKETLOCK_NODE:-$(npx -y node@24 -e 'console.log(process.execPath)')} || exit 1
export SOCKETLOCK_DENO SOCKETLOCK_BUN SOCKETLOCK_NODE

work=$(mktemp -d)
redis_pid=""
cleanup() {
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

full=0
for arg in "$@"; do [ "$arg" = "--full" ] && full=1; done
# Each runtime's run is bounded: a hung case must fail the run, not stall it.
if [ "$full" -eq 1 ]; then limit=1800; else limit=150; fi

# A private redis-server on a free loopback port, persistence off.
if command -v redis-server >/dev/null; then
  port=$("$SOCKETLOCK_NODE" -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --logfile "$work/redis.log" --dir "$work" &
  redis_pid=$!
  for _ in $(seq 1 100); do
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then break; fi
    sleep 0.05
  done
  if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
    export SOCKETLOCK_BENCH_REDIS="127.0.0.1:$port"
    SOCKETLOCK_BENCH_REDIS_VERSION=$(redis-server --version | cut -d' ' -f3 | sed 's/^v=//')
    export SOCKETLOCK_BENCH_REDIS_VERSION
    echo "redis: $SOCKETLOCK_BENCH_REDIS_VERSION on 127.0.0.1:$port"
  else
    echo "!! redis-server did not start; the Redis cases will be skipped"
    cat "$work/redis.log" 2>/dev/null
  fi
else
  echo "!! redis-server not installed; the Redis cases will be skipped"
fi

status=0
run() { # name, command...
  local name=$1; shift
  echo
  echo "== $name: $*"
  timeout --kill-after=10 "$limit" "$@" --out "$work/$name.json" "${args[@]}"
  local rc=$?
  [ "$rc" -eq 0 ] || { echo "!! $name exited with $rc"; status=1; }
}
args=("$@")
run deno "$SOCKETLOCK_DENO" run -A bench/main.ts
run bun "$SOCKETLOCK_BUN" bench/main.ts
run node "$SOCKETLOCK_NODE" bench/main.ts

echo
shopt -s nullglob
files=("$work"/*.json)
if [ "${#files[@]}" -eq 0 ]; then echo "!! no runtime produced results"; exit 1; fi
# A partial run (--only) prints its table but keeps the committed results.
report_args=()
for arg in "$@"; do [ "$arg" = "--only" ] && report_args=(--print-only); done
"$SOCKETLOCK_DENO" run -A bench/report.ts "${report_args[@]}" "${files[@]}" || status=1
# The table as `deno fmt` lays it out, so the committed file stays formatted.
[ "${#report_args[@]}" -eq 0 ] && { "$SOCKETLOCK_DENO" fmt -q bench/RESULTS.md || status=1; }
exit $status
