#!/bin/sh
# Builds the libFuzzer targets in fuzz/ with clang (ASan + UBSan) from the
# pure core sources, and runs each for SECONDS (default 60) with no crash
# allowed. Usage: scripts/fuzz.sh [-t SECONDS] [-o OUTDIR] [TARGET...]
# TARGET is cpulist, line, request or engine; none means the first three.
# The engine target (the daemon's engine on the fake glue) also needs the
# generated protobuf sources of a build: USCHED_PROTO_GEN=BUILD/proto/gen
# (ctest sets it: `ctest -R fuzz.engine`).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
secs=60
out=${TMPDIR:-/tmp}/usched-fuzz
while getopts t:o: opt; do
  case $opt in
    t) secs=$OPTARG ;;
    o) out=$OPTARG ;;
    *) echo "usage: $0 [-t SECONDS] [-o OUTDIR] [cpulist|line|request|engine...]" >&2; exit 2 ;;
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

# The engine target: the daemon's engine, the glue and the core, compiled
# one file at a time (two at once, through ccache when present) with the
# fuzzer's instrumentation, then linked against the system's protobuf,
# spdlog and fmt.
build_engine() {
  gen=${USCHED_PROTO_GEN:-}
  if [ -z "$gen" ] || [ ! -f "$gen/usched/v1/usched.pb.cc" ]; then
    echo "fuzz: engine needs USCHED_PROTO_GEN=BUILD/proto/gen (build usched first)" >&2
    exit 2
  fi
  objs=$out/engine-obj
  mkdir -p "$objs"
  launcher=$(command -v ccache || true)
  defs="-DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL -DSPDLOG_SHARED_LIB -DFMT_SHARED"
  incs="-I$here/usched/include -I$here/kernel-glue/include -I$here/daemon -I$gen"
  srcs="$1 $here/daemon/engine.cc $here/daemon/engine_gang.cc $here/daemon/exit_watch.cc $here/daemon/gang.cc $here/daemon/durable.cc
        $here/daemon/authz.cc $here/daemon/apply.cc $here/daemon/stats.cc
        $(ls "$here"/kernel-glue/src/*.cc "$here"/usched/src/*.cc) $gen/usched/v1/usched.pb.cc $gen/usched/v1/state.pb.cc"
  list=
  for f in $srcs; do
    list="$list $objs/$(echo "$f" | tr / _).o"
  done
  for f in $srcs; do
    o=$objs/$(echo "$f" | tr / _).o
    case $f in
      */fuzz/*) inst=-fsanitize=fuzzer,address,undefined ;;
      *) inst=-fsanitize=fuzzer-no-link,address,undefined ;;
    esac
    echo "$launcher $cxx -std=c++20 -g -O1 $inst -fno-sanitize-recover=undefined $defs $incs -c $f -o $o"
  done | xargs -P2 -I{} sh -c '{}'
  # Only this run's objects (not those of a source file since removed).
  # shellcheck disable=SC2086
  $cxx -fsanitize=fuzzer,address,undefined $list -lprotobuf -lspdlog -lfmt -lpthread -o "$out/engine"
}
flags="-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I$here/usched/include"
for t in $targets; do
  src=$here/fuzz/${t}_fuzz.cc
  [ -f "$src" ] || { echo "fuzz: no target $t ($src)" >&2; exit 2; }
  if [ "$t" = engine ]; then
    build_engine "$src"
  else
    # Only the core modules the targets use, so a new core file elsewhere
    # cannot break the fuzz build.
    $cxx $flags "$src" "$here"/usched/src/cpuset.cc "$here"/usched/src/pool.cc \
      "$here"/usched/src/names.cc "$here"/usched/src/line.cc "$here"/usched/src/lwkt.cc \
      "$here"/usched/src/tree.cc "$here"/usched/src/result.cc -o "$out/$t"
  fi
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
