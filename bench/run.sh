#!/usr/bin/env bash
# Builds and runs every benchmark of the performance issue, printing the
# RESULT and RATIO lines recorded in docs/benchmarks.md. One command:
#
#   bench/run.sh [--build-dir DIR] [--quick] [--only NAME]
#
# --quick runs each benchmark for a few seconds (the ctest `bench` test
# does this to prove the harness works; it never gates on the numbers).
# NAME: gang, freezer, rfork, cli, bind, isolation, scale, vm. The gang step needs root
# and the cgroup freezer (it skips otherwise). The vm step (two QEMU guests
# as gangs, ~2 min) needs root and the v1 freezer, and runs only without
# --quick: a guest boot alone takes longer than the quick run may.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=/tmp/b-bench quick=() only=""
while (($#)); do
  case $1 in
    --build-dir) build=$2; shift ;;
    --quick) quick=(--quick) ;;
    --only) only=$2; shift ;;
    *) echo "usage: bench/run.sh [--build-dir DIR] [--quick] [--only NAME]" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "${USCHED_BENCH_NO_BUILD:-}" ]; then
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j2 >/dev/null
fi
echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cpus, load: $(cut -d' ' -f1-3 /proc/loadavg)"
fail=0
step() {
  local name=$1; shift
  [ -n "$only" ] && [ "$only" != "$name" ] && return 0
  echo "## $name: $*"
  local rc=0
  "$@" || rc=$?
  # A skip (77: no root, no cgroups) fails under USCHED_REQUIRE_KERNEL=1 (CI).
  if [ "$rc" -eq 77 ] && [ "${USCHED_REQUIRE_KERNEL:-}" != 1 ]; then echo "# $name skipped"
  elif [ "$rc" -ne 0 ]; then echo "# $name FAILED ($rc)"; fail=1; fi
}
b=$build/bench
step gang "$b/bench_gang" "${quick[@]}"
step freezer "$b/bench_freezer" "${quick[@]}"
step rfork "$b/bench_rfork" "${quick[@]}"
step cli "$b/bench_cli" "${quick[@]}"
step bind "$b/bench_bind" "${quick[@]}"
step isolation "$here/isolation.sh" "$build" "${quick[@]}"
step scale "$b/bench_scale" "${quick[@]}"
if ((${#quick[@]})); then
  [ -z "$only" ] || [ "$only" = vm ] && echo "# vm: not run with --quick (the kernel tier's VmGang test runs the same guests)"
else
  step vm "$b/bench_vm"
fi
exit $fail
