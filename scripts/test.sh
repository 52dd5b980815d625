#!/usr/bin/env bash
# Quick start, part two: install what is missing, build, and run every test
# tier (unit, glue, service, kernel). The kernel tier needs root and skips
# with a reason otherwise; with USCHED_REQUIRE_KERNEL=1 (as CI sets it) a
# skip is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 300 -j1 "$@"
