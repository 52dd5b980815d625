#!/usr/bin/env bash
# Quick start, part two: install what is missing, build, and run every test
# tier (unit, glue, service, kernel, fuzz, package, bench, vm). The kernel,
# package and bench tiers need root and skip with a reason otherwise; with
# USCHED_REQUIRE_KERNEL=1 (as CI sets it) a skip is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
# The bench tier also runs cyclictest and stress-ng (bench/deps.sh); as
# root they are installed here, like everything else the tests need.
if [ "$(id -u)" -eq 0 ]; then ./bench/deps.sh; fi
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 300 -j1 "$@"
