#!/usr/bin/env bash
# Quick start, part two: install what is missing, build, and run every test
# tier (unit, glue, service, kernel, fuzz, package, sdk, slurm, vm, bench);
# then the sanitizer builds (scripts/sanitize.sh; USCHED_SANITIZERS=0: not). The kernel, package, sdk, slurm, vm and bench tiers need root
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
# With the whole suite (no arguments) it then runs the unit, glue and
# service tiers under ASan + UBSan and the service tier under TSan, each in
# its own build directory next to the normal one (scripts/sanitize.sh;
# about 5 minutes with a warm ccache, builds included). USCHED_SANITIZERS=0
# leaves them out (a quick local run); =asan or =tsan runs only that one.
case ${USCHED_SANITIZERS:-1} in
  0) ;;
  1) [ $# -ne 0 ] || ./scripts/sanitize.sh || status=$? ;;
  *) [ $# -ne 0 ] || ./scripts/sanitize.sh "$USCHED_SANITIZERS" || status=$? ;;
esac
exit $status
