#!/usr/bin/env bash
# Item 5 of the performance issue: isolation. cyclictest (rt-tests) in the
# REAL scheduler, made exclusive on cpu1, while stress-ng loads NORM (which
# is left cpu0), vs the same cyclictest and the same load without
# partitions, vs cyclictest on an idle machine. Rounds alternate
# (usched, plain, rt-plain, idle) and the p99.99 latency of each is the
# median over the rounds. Everything is bounded: cyclictest by -D, every
# command by `timeout -s KILL`, and SCHED_RR by the kernel's RT throttling.
#
# usage: bench/isolation.sh BUILD_DIR [--quick] [--rounds N] [--seconds S]
# Needs root and writable cgroups (skips with exit 77 otherwise).
set -euo pipefail
build=${1:?usage: isolation.sh BUILD_DIR [--quick] [--rounds N] [--seconds S]}
shift
rounds=5 secs=6
while (($#)); do
  case $1 in
    --quick) rounds=1 secs=1 ;;
    --rounds) rounds=$2; shift ;;
    --seconds) secs=$2; shift ;;
  esac
  shift
done
if [ "$(id -u)" -ne 0 ] || [ ! -w /sys/fs/cgroup ] || ! command -v cyclictest >/dev/null || ! command -v stress-ng >/dev/null; then
  echo "SKIP isolation: needs root, writable cgroups, cyclictest and stress-ng (bench/deps.sh)"
  exit 77
fi
uschedd=$build/daemon/uschedd usched=$build/cli/usched
dir=$(mktemp -d /tmp/usched-iso-XXXXXX)
sock=$dir/usched.sock top=usched-bench-iso-$RANDOM$RANDOM
daemon_pid=""
stress_pid=""
cleanup() {
  [ -n "$stress_pid" ] && kill -KILL "$stress_pid" 2>/dev/null && wait "$stress_pid" 2>/dev/null || true
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
"$uschedd" --socket "$sock" --state-dir "$dir/state" --cgroup-top "$top" --cleanup-on-exit \
  >"$dir/log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do "$usched" --socket "$sock" list >/dev/null 2>&1 && break; sleep 0.1; done
u() { "$usched" --socket "$sock" "$@"; }
u update REAL on cpu1 exclusive >/dev/null
prio=$(u show REAL --json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("rtPriority", 0))')
[ "$prio" -gt 0 ] || prio=50

# p99.99 in us from a cyclictest histogram (-h) on stdin.
p9999() {
  python3 -c '
import sys
h = {}; over = 0; total = 0
for line in sys.stdin:
    if line.startswith("# Histogram Overflows"): over = int(line.split()[-1]); continue
    if line.startswith("#") or not line.strip(): continue
    p = line.split()
    try: h[int(p[0])] = int(p[1]) if len(p) > 1 else 0
    except (ValueError, IndexError): pass
total = sum(h.values()) + over
need = total * 0.9999; acc = 0
for k in sorted(h):
    acc += h[k]
    if acc >= need: print(k); break
else: print(10000)'
}
# One cyclictest run: cyc PREFIX... :: CYCLICTEST_OPTS...; prints p99.99 (us).
cyc() {
  local pre=()
  while [ "$1" != "::" ]; do pre+=("$1"); shift; done
  shift
  timeout -s KILL $((secs + 10)) "${pre[@]}" cyclictest -q -m -i 100 -D "$secs" -h 10000 "$@" | p9999
}
# cyclictest sets its own class (SCHED_OTHER without -p), so it is given
# the priority of the REAL scheduler, as usched would have applied it.
rt=(-p "$prio" --policy=rr)
load() { # starts the load, bounded in time
  timeout -s KILL $((secs + 15)) "$@" stress-ng --cpu 4 --timeout $((secs + 5)) --quiet >/dev/null 2>&1 &
  stress_pid=$!
  sleep 0.5
}
unload() { kill -KILL "$stress_pid" 2>/dev/null || true; wait "$stress_pid" 2>/dev/null || true; stress_pid=""; }

A=() B=() C=() I=()
for ((r = 0; r < rounds; r++)); do
  # A: usched: load in NORM (left cpu0), cyclictest in REAL (exclusive cpu1).
  load "$usched" --socket "$sock" run NORM --
  A+=("$(cyc "$usched" --socket "$sock" run REAL -- :: "${rt[@]}")")
  unload
  # B: the same load, cyclictest as a user runs it, no partitions.
  load env
  B+=("$(cyc env ::)")
  unload
  # C: the same load, cyclictest at the same RT priority, no partitions.
  load env
  C+=("$(cyc env :: "${rt[@]}")")
  unload
  # I: no load (as idle as the shared machine gets).
  I+=("$(cyc "$usched" --socket "$sock" run REAL -- :: "${rt[@]}")")
done
med() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
a=$(med "${A[@]}") b=$(med "${B[@]}") c=$(med "${C[@]}") i=$(med "${I[@]}")
echo "# p99.99 per round (us): usched ${A[*]} | plain ${B[*]} | rt-plain ${C[*]} | idle ${I[*]}"
printf 'RESULT %-34s %12s us\n' isolation.p9999.usched "$a" isolation.p9999.plain "$b" \
  isolation.p9999.rt_no_partition "$c" isolation.p9999.idle "$i"
ratio() { python3 -c "print('%.2f' % ($1 / max($2, 1)))"; }
printf 'RATIO  %-34s %12s x      goal >= 2.5x better (median of %d rounds x %d s)\n' \
  isolation.plain_over_usched "$(ratio "$b" "$a")" "$rounds" "$secs"
printf 'RATIO  %-34s %12s x      (the RT class alone, no partition, over usched)\n' \
  isolation.rt_no_partition_over_usched "$(ratio "$c" "$a")"
printf 'RATIO  %-34s %12s x      goal <= 3x of idle\n' isolation.usched_over_idle "$(ratio "$a" "$i")"
