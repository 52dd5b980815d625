#!/bin/sh
# Builds the libFuzzer targets in fuzz/ with clang (ASan + UBSan) from the
# pure core sources, and runs each for SECONDS (default 60) with no crash
# allowed. Usage: scripts/fuzz.sh [-t SECONDS] [-o OUTDIR] [TARGET...]
# TARGET is cpulist, line or request; none means all three.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
secs=60
out=${TMPDIR:-/tmp}/usched-fuzz
while getopts t:o: opt; do
  case $opt in
    t) secs=$OPTARG ;;
    o) out=$OPTARG ;;
    *) echo "usage: $0 [-t SECONDS] [-o OUTDIR] [cpulist|line|request...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=${*:-cpulist line request}
cxx=${CLANGXX:-clang++}
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "fuzz: $cxx not found (apt-get install clang)" >&2
  exit 1
fi
mkdir -p "$out"
flags="-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I$here/usched/include"
for t in $targets; do
  src=$here/fuzz/${t}_fuzz.cc
  [ -f "$src" ] || { echo "fuzz: no target $t ($src)" >&2; exit 2; }
  # Only the core modules the targets use, so a new core file elsewhere
  # cannot break the fuzz build.
  $cxx $flags "$src" "$here"/usched/src/cpuset.cc "$here"/usched/src/pool.cc \
    "$here"/usched/src/names.cc "$here"/usched/src/line.cc "$here"/usched/src/lwkt.cc \
    "$here"/usched/src/tree.cc "$here"/usched/src/result.cc -o "$out/$t"
  mkdir -p "$out/corpus-$t"
  echo "fuzz: $t for ${secs}s"
  (cd "$out" && "./$t" -max_total_time="$secs" -max_len=512 -timeout=10 -rss_limit_mb=1024 \
     -print_final_stats=1 "corpus-$t" 2>"$out/$t.log") || {
    tail -40 "$out/$t.log" >&2
    echo "fuzz: $t failed; the crashing input is in $out (crash-*)" >&2
    exit 1
  }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/$t.log" | sed "s/^/fuzz: $t /"
done
