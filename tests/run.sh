#!/usr/bin/env bash
# Runs the whole test suite under Deno 2, Bun 1 and Node 24 (all from the npm
# registry), prints each runner's summary and a total line, and fails if any
# runtime fails. Usage: bash tests/run.sh [test files...]
set -uo pipefail
cd "$(dirname "$0")/.."

echo "== installing test dependencies (npm ci: ioredis, redis)"
npm ci --no-audit --no-fund || exit 1

echo "== resolving runtimes (npx -y deno@2 / bun@1 / node@24)"
SOCKETLOCK_DENO=$(npx -y deno@2 eval 'console.log(Deno.execPath())') || exit 1
SOCKETLOCK_BUN=$(npx -y bun@1 -e 'console.log(process.execPath)') || exit 1
SOCKETLOCK_NODE=$(npx -y node@24 -e 'console.log(process.execPath)') || exit 1
export SOCKETLOCK_DENO SOCKETLOCK_BUN SOCKETLOCK_NODE
echo "deno: $("$SOCKETLOCK_DENO" --version | head -1)"
echo "bun:  $("$SOCKETLOCK_BUN" --version)"
echo "node: $("$SOCKETLOCK_NODE" --version)"

if [ "$#" -gt 0 ]; then all=("$@"); else all=(tests/*_test.ts tests/torture/*_test.ts tests/torture/*_torture.ts); fi
# A *_torture.ts file drives worker processes of all three runtimes itself, so
# it runs once (under Node), not once per runtime.
files=(); tortures=()
for f in "${all[@]}"; do
  case $f in *_torture.ts) tortures+=("$f") ;; *) files+=("$f") ;; esac
done
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# Each runner is bounded; a hung test must fail the run, not stall CI. The
# slowest runner (Node) takes about 2 minutes on an idle 2-core machine; 900 s
# leaves it a 7x slowdown on a loaded CI machine (a runner cut off by the
# limit fails the whole run) and still ends a hang well within the CI job.
limit=900
# Test files run four at a time per runner: most of them wait on timers,
# processes and sockets, not the CPU (four at a time kept a 2-core machine
# about 65 % busy, and took each runner from ~160-200 s at two to ~90-120 s).
jobs=${SOCKETLOCK_TEST_JOBS:-4}
total_pass=0
total_fail=0
status=0

run() { # name, command...
  local name=$1; shift
  echo
  echo "== $name: $*"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$logs/$name.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "!! $name exited with $rc"; status=1; }
  local plain; plain=$(sed 's/\x1b\[[0-9;]*m//g' "$logs/$name.log")
  local pass fail
  case $name in
    # Deno --parallel prints each result as "file => describe ... step ... ok":
    # count the leaves (a result whose name heads another's is a parent).
    deno) read -r pass fail < <(awk 'function up(s,  i, j) { j = 0
              while ((i = index(substr(s, j + 1), " ... ")) > 0) j += i + 4
              return j ? substr(s, 1, j - 5) : "" }
            / \.\.\. (ok|FAILED)/ { name = $0; sub(/ \.\.\. (ok|FAILED).*/, "", name)
              ok[name] = ($0 ~ / \.\.\. ok/); for (p = up(name); p != ""; p = up(p)) parent[p] = 1 }
            END { for (n in ok) if (!(n in parent)) { if (ok[n]) pass++; else fail++ }
              print pass + 0, fail + 0 }' <<<"$plain") ;;
    bun)  pass=$(grep -oE '^ *[0-9]+ pass$' <<<"$plain" | tail -1 | grep -oE '[0-9]+')
          fail=$(grep -oE '^ *[0-9]+ fail$' <<<"$plain" | tail -1 | grep -oE '[0-9]+') ;;
    node|torture) pass=$(grep -oE '^ℹ pass [0-9]+' <<<"$plain" | tail -1 | grep -oE '[0-9]+')
          fail=$(grep -oE '^ℹ fail [0-9]+' <<<"$plain" | tail -1 | grep -oE '[0-9]+') ;;
  esac
  pass=${pass:-0}; fail=${fail:-0}
  # A runner that crashed or counted nothing has not passed.
  if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
  if [ "$pass" -eq 0 ]; then echo "!! $name ran no test"; status=1; fi
  summary+=("$name: $pass passed, $fail failed")
  [ "$fail" -eq 0 ] || failures+=("$name")
  total_pass=$((total_pass + pass)); total_fail=$((total_fail + fail))
}

summary=()
failures=()
# CI shows only the end of the log: repeat each failure's report there.
show_failures() { # name
  local plain; plain=$(sed 's/\x1b\[[0-9;]*m//g' "$logs/$1.log")
  echo "-- $1"
  case $1 in
    deno) awk '/^ ERRORS *$/ { on = 1 } on' <<<"$plain" ;;
    bun) grep -B 25 '^(fail)' <<<"$plain" ;;
    *) awk '/failing tests:/ { on = 1 } on' <<<"$plain" ;;
  esac | head -120
}
if [ "$#" -eq 0 ]; then
  # Type errors, in the code and in every JSDoc example (the tests run
  # --no-check under Deno), fail the suite as one failed step.
  echo
  echo "== typecheck: deno check mod.ts lib/ tests/ bench/ && deno check --doc-only mod.ts lib/"
  if "$SOCKETLOCK_DENO" check -q mod.ts lib/ tests/ bench/ &&
    "$SOCKETLOCK_DENO" check -q --doc-only mod.ts lib/; then
    summary+=("typecheck: 1 passed, 0 failed"); total_pass=$((total_pass + 1))
  else
    summary+=("typecheck: 0 passed, 1 failed"); total_fail=$((total_fail + 1))
  fi
fi
if [ "${#files[@]}" -gt 0 ]; then
  run deno env DENO_JOBS="$jobs" "$SOCKETLOCK_DENO" test -A --no-check --parallel "${files[@]}"
  run bun "$SOCKETLOCK_BUN" test --parallel="$jobs" --timeout 120000 "${files[@]/#/./}"
  run node "$SOCKETLOCK_NODE" --test --test-concurrency="$jobs" --test-timeout=120000 "${files[@]}"
fi
if [ "${#tortures[@]}" -gt 0 ]; then
  run torture "$SOCKETLOCK_NODE" --test --test-timeout=300000 "${tortures[@]}"
fi

if [ "${#failures[@]}" -gt 0 ]; then
  echo
  echo "== failures"
  for name in "${failures[@]}"; do show_failures "$name"; done
fi
echo
echo "== summary"
for line in "${summary[@]}"; do echo "$line"; done
echo "total: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ] || status=1
exit $status
