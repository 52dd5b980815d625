#!/usr/bin/env bash
# Installs what building and testing usched needs, from Debian 12's packages
# only. Safe to run again: it asks apt only for what is missing.
set -euo pipefail

packages=(
  cmake g++ make pkg-config ccache
  libboost-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libspdlog-dev libfmt-dev
  libnghttp2-dev  # the usched command's calls without gRPC's runtime (cli/direct.cc)
  libsystemd-dev  # sd-bus: the systemd cgroup driver (docs/systemd.md)
  procps util-linux
  tmux dpkg-dev  # terminal tests of usched top/tree; dpkg-shlibdeps for cpack
  clang libclang-rt-14-dev passwd  # fuzz targets (scripts/fuzz.sh); useradd for authorization tests
  libslurm-dev  # slurm/spank.h for the SPANK plugin (the slurm tier installs Slurm itself)
  python3-grpcio python3-protobuf grpc-proto  # the Python example and its test (ctest -L sdk)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages: ${missing[*]}; run this as root to install them" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
