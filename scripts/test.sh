#!/usr/bin/env bash
# Quick start, part two: install what is missing, build, and run every test
# tier (unit, glue, service, kernel, fuzz, package, sdk, slurm, vm, bench);
# with USCHED_SANITIZERS=1 (or asan, or tsan) also the sanitizer builds
# (scripts/sanitize.sh). The kernel, package, sdk, slurm, vm and bench tiers need root
# and skip with a reason otherwise; with
# USCHED_REQUIRE_KERNEL=1 (as CI sets it) a skip is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
# The bench tier also runs cyclictest and stress-ng (bench/deps.sh); as
# root they are installed here, like everything else the tests need.
if [ "$(id -u)" -eq 0 ]; then ./bench/deps.sh; fi
# The kernel tier's QEMU gang test boots Debian's kernel with a busybox
# initramfs: QEMU, the kernel package and the initramfs are fetched and
# cached here, outside the test's 300 s.
if [ "$(id -u)" -eq 0 ]; then ./scripts/vm/kernel.sh >/dev/null && ./scripts/vm/loop-guest.sh >/dev/null; fi
status=0
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 300 -j1 "$@") || status=$?
# USCHED_SANITIZERS=1 with the whole suite (no arguments) also runs the unit,
# glue and service tiers under ASan + UBSan and the service tier under TSan,
# each in its own build directory (scripts/sanitize.sh); USCHED_SANITIZERS=asan
# (or tsan) runs only that one. Not part of the default run: the ASan run is
# clean (about 2.5 min with a warm ccache, but 34 min to build cold), the
# TSan run is not usable with Debian's gRPC (docs/reliability.md).
case ${USCHED_SANITIZERS:-0} in
  0) ;;
  1) [ $# -ne 0 ] || ./scripts/sanitize.sh || status=$? ;;
  *) [ $# -ne 0 ] || ./scripts/sanitize.sh "$USCHED_SANITIZERS" || status=$? ;;
esac
exit $status
