#!/usr/bin/env bash
# Installs what the benchmarks need beyond the build (scripts/deps.sh), from
# Debian 12's packages only: cyclictest (rt-tests), stress-ng, hyperfine,
# strace. Safe to run again: it asks apt only for what is missing.
set -euo pipefail

packages=(rt-tests stress-ng hyperfine strace)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench deps: missing packages: ${missing[*]}; run this as root to install them" >&2
    exit 1
  fi
  echo "bench deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
