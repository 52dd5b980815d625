#!/usr/bin/env bash
# Builds usched under sanitizers, each in its own build directory, and runs
# the tiers that can run there:
#   asan: ASan + UBSan (build-asan), the unit, glue and service tiers
#   tsan: TSan (build-tsan), the service tier (uschedd's gRPC threads, the
#         strand and the cgroup mover, driven by real clients). Debian's
#         gRPC and abseil are not built for TSan, so what they call is not
#         checked, only our code (tests/sanitize/tsan.supp says why).
# Only uschedd, usched and the test binaries those tiers need are built.
# Every sanitizer report of every process (tests, uschedd, usched) goes to
# BUILD/sanitizer-reports; one report fails the run, even when the process
# that wrote it exited 0 or was killed before it could (a daemon killed by
# a test still wrote its report when it happened).
# The build directories sit next to the normal build: BUILD-asan and
# BUILD-tsan, BUILD being SANITIZE_BUILD_PREFIX, else BUILD_DIR, else build.
# Usage: scripts/sanitize.sh [asan|tsan]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
./scripts/deps.sh
kinds=${*:-asan tsan}
rc=0
for kind in $kinds; do
  case $kind in
    asan) san=address; targets="uschedd usched unit_tests glue_tests service_tests"; tiers='^(unit|glue|service)$' ;;
    tsan) san=thread; targets="uschedd usched service_tests"; tiers='^service$' ;;
    *) echo "sanitize: unknown kind '$kind' (asan or tsan)" >&2; exit 2 ;;
  esac
  build=${SANITIZE_BUILD_PREFIX:-${BUILD_DIR:-build}}-$kind
  case $build in /*) ;; *) build=$here/$build ;; esac
  start=$(date +%s)
  # Shared gRPC, protobuf and abseil rather than their static archives:
  # neither is instrumented, but as shared objects they can be named in
  # suppressions (called_from_lib) and in stack frames by module.
  # shellcheck disable=SC2086
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUSCHED_SANITIZE=$san \
    -DUSCHED_STATIC_GRPC=OFF -DUSCHED_BUILD_BENCH=OFF -DUSCHED_WERROR=ON ${CMAKE_ARGS:-} >/dev/null
  # shellcheck disable=SC2086
  cmake --build "$build" -j"${SANITIZE_JOBS:-2}" --target $targets
  built=$(date +%s)
  reports=$build/sanitizer-reports
  rm -rf "$reports"
  mkdir -p "$reports"
  supp=$here/tests/sanitize
  # ASan holds freed memory in a quarantine (256 MB by default) before it
  # reuses it, to catch use after free. 32 MB still catches it for any
  # recent free, and keeps uschedd's growth small enough that the memory
  # bounds of the service tier mean something: tests/support/harness.h
  # (rss_growth_allowed_kib) reads the size from here.
  export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1:quarantine_size_mb=32"
  export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
  # ignore_noninstrumented_modules: see tests/sanitize/tsan.supp.
  export TSAN_OPTIONS="log_path=$reports/tsan:suppressions=$supp/tsan.supp:print_suppressions=0:second_deadlock_stack=1:halt_on_error=0:ignore_noninstrumented_modules=1"
  status=0
  # The tiers by their labels; none found is a failure, not a pass.
  ctest --test-dir "$build" -L "$tiers" --no-tests=error --output-on-failure --timeout 300 -j1 || status=$?
  found=$(find "$reports" -type f | sort)
  if [ -n "$found" ]; then
    echo "sanitize: $kind: sanitizer reports:" >&2
    for f in $found; do
      echo "==== $f" >&2
      cat "$f" >&2
    done
    status=1
  fi
  echo "sanitize: $kind: build $((built - start)) s, tests $(($(date +%s) - built)) s, $( [ $status -eq 0 ] && echo passed || echo FAILED)"
  [ $status -eq 0 ] || rc=1
done
exit $rc
