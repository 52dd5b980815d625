#!/usr/bin/env bash
# Installs the dependencies, then configures and builds usched into ./build.
# BUILD_DIR and CMAKE_ARGS may be set to change where and how. Arguments,
# if any, are the targets to build (start.sh: only what it installs and
# runs); without them, everything (tests and benchmarks included).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
build=${BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-} >/dev/null
if [ $# -gt 0 ]; then
  cmake --build "$build" -j2 --target "$@"
else
  cmake --build "$build" -j2
fi
