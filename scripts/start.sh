#!/usr/bin/env bash
# Quick start, part one: install what is missing, build, install the
# binaries and the SDK (libusched, headers, usched.pc) under /usr/local, and start uschedd in the background with its
# default schedulers (IDLE, NORM, REAL on cpu*). Needs root: the daemon
# writes cgroups and scheduling classes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "start: run as root (uschedd manages cgroups and scheduling classes)" >&2
  exit 1
fi
# Only what is installed below: the daemon, the command and the SDK's
# library (scripts/test.sh builds the tests and benchmarks). `cmake
# --install` fails if any of them is missing.
./scripts/build.sh uschedd usched libusched
cmake --install "${BUILD_DIR:-build}" --prefix /usr/local >/dev/null
ldconfig  # libusched.so.0, just installed in /usr/local/lib, for programs built against it

socket=${USCHED_SOCKET:-/run/usched/usched.sock}
if /usr/local/bin/usched --socket "$socket" list >/dev/null 2>&1; then
  echo "start: uschedd already answers on $socket; stop it first (kill \$(cat /run/usched/uschedd.pid))"
else
  mkdir -p /run/usched /var/log
  setsid /usr/local/bin/uschedd --socket "$socket" </dev/null >>/var/log/uschedd.log 2>&1 &
  echo $! >/run/usched/uschedd.pid
  for _ in $(seq 100); do
    /usr/local/bin/usched --socket "$socket" list >/dev/null 2>&1 && break
    if ! kill -0 "$(cat /run/usched/uschedd.pid)" 2>/dev/null; then
      echo "start: uschedd exited; its log:" >&2
      tail -20 /var/log/uschedd.log >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "start: uschedd running as pid $(cat /run/usched/uschedd.pid), log in /var/log/uschedd.log"
fi
/usr/local/bin/usched --socket "$socket" tree
