#!/usr/bin/env bash
# Stops the uschedd that start.sh started. Members stay where they are (the
# next start adopts them) unless --cleanup is given: then every member goes
# back where it came from and the daemon's cgroups are removed.
set -euo pipefail
pidfile=/run/usched/uschedd.pid
cleanup=0
[ "${1:-}" = "--cleanup" ] && cleanup=1
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "stop: uschedd (pid $pid) did not stop within 10 s" >&2
    exit 1
  fi
  rm -f "$pidfile"
  echo "stop: uschedd stopped"
else
  echo "stop: no uschedd running from $pidfile"
fi
if [ "$cleanup" = 1 ]; then
  /usr/local/bin/uschedd --teardown --log-level warn
  echo "stop: members returned, cgroups removed"
fi
