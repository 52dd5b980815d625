#!/usr/bin/env bash
# Generates the Python stubs of usched.v1 (and of gRPC's health and
# reflection services) into OUT_DIR, with Debian 12's own tools:
#   apt-get install protobuf-compiler protobuf-compiler-grpc grpc-proto \
#                   python3-grpcio python3-protobuf
# python3-grpc-tools is not used: its protoc is too old for proto3
# `optional`, which usched.proto uses. Debian's protoc (3.21) matches
# python3-protobuf (3.21).
# Usage: gen.sh OUT_DIR [PROTO_ROOT]
#   PROTO_ROOT holds usched/v1/usched.proto: /usr/share/usched/proto once
#   libusched-dev is installed (the default), or the source tree's proto/.
set -euo pipefail
out=${1:?usage: gen.sh OUT_DIR [PROTO_ROOT]}
root=${2:-/usr/share/usched/proto}
grpc_proto=/usr/share/grpc-proto  # Debian's grpc-proto package
plugin=$(command -v grpc_python_plugin) || { echo "gen.sh: grpc_python_plugin missing (apt-get install protobuf-compiler-grpc)" >&2; exit 1; }
command -v protoc >/dev/null || { echo "gen.sh: protoc missing (apt-get install protobuf-compiler)" >&2; exit 1; }
[ -f "$root/usched/v1/usched.proto" ] || { echo "gen.sh: no usched/v1/usched.proto under $root" >&2; exit 1; }
mkdir -p "$out"
gen() { protoc --plugin=protoc-gen-grpc_python="$plugin" --python_out="$out" --grpc_python_out="$out" "$@"; }
gen -I "$root" usched/v1/usched.proto
# health.proto and reflection.proto are compiled from their own directories
# so that their modules are top-level (health_pb2, reflection_pb2): a
# grpc/health/... package would shadow python3-grpcio's `grpc`.
if [ -f "$grpc_proto/grpc/health/v1/health.proto" ]; then
  gen -I "$grpc_proto/grpc/health/v1" health.proto
  gen -I "$grpc_proto/grpc/reflection/v1alpha" reflection.proto
else
  echo "gen.sh: $grpc_proto missing (apt-get install grpc-proto): health and reflection stubs not made" >&2
fi
