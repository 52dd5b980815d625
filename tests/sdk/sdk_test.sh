#!/usr/bin/env bash
# Tier "sdk": what an application developer does with libusched. The build
# is installed with `cmake --install` into a scratch prefix; a C program is
# built with `cc $(pkg-config --cflags --libs usched)` and a C++ program with
# find_package(usched CONFIG), both outside the source tree against that
# prefix; the installed uschedd runs with the real kernel glue on a private
# socket, state directory and cgroup top. Each program rforks a child that
# reports its CPUs from its first line, joins a thread to a gang, and gets
# NOT_FOUND for a scheduler that does not exist (PERMISSION_DENIED as
# nobody, UNAVAILABLE without a daemon); the Python example
# (examples/python, Debian's python3-grpcio) runs against the same daemon,
# which answers SERVING to gRPC's health check and lists usched.v1.Usched by
# reflection. Needs root and a cpuset cgroup; exit 77 (skipped) otherwise,
# a failure under USCHED_REQUIRE_KERNEL=1.
# Usage: sdk_test.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
build=$1
src=$2
# shellcheck source=../support/skip.sh
source "$(dirname "$0")/../support/skip.sh"

[ "$(id -u)" -eq 0 ] || skip "sdk tests need root (a real uschedd with the kernel glue)"
if [ ! -e /sys/fs/cgroup/cpuset/cpuset.cpus ] && ! grep -qw cpuset /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  skip "no cgroup cpuset controller (v1 or v2) at /sys/fs/cgroup"
fi
for tool in cc c++ cmake pkg-config protoc grpc_python_plugin setpriv; do
  command -v "$tool" >/dev/null || skip "$tool is missing (scripts/deps.sh installs it)"
done
# Debian's python3, not one earlier in PATH: python3-grpcio is installed for it.
py=/usr/bin/python3
"$py" -c "import grpc, google.protobuf" 2>/dev/null || skip "$py cannot import grpc (apt-get install python3-grpcio python3-protobuf)"

work=$(mktemp -d /tmp/usched-sdk-XXXXXX)
top="usched-test-$(basename "$work" | cut -d- -f3)"
pid=""
demo=""
cleanup() {
  [ -n "$demo" ] && kill "$demo" 2>/dev/null && wait "$demo" 2>/dev/null
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  # A safety net should uschedd not have removed its cgroups: thaw, hand
  # the tasks back to the root, remove the directories deepest first.
  for root in /sys/fs/cgroup/freezer /sys/fs/cgroup/cpuset /sys/fs/cgroup/cpu /sys/fs/cgroup/unified /sys/fs/cgroup; do
    [ -d "$root/$top" ] || continue
    find "$root/$top" -depth -type d | while read -r d; do
      [ -e "$d/freezer.state" ] && echo THAWED > "$d/freezer.state"
      [ -e "$d/cgroup.freeze" ] && echo 0 > "$d/cgroup.freeze"
      if [ -e "$d/tasks" ]; then procs=tasks; else procs=cgroup.procs; fi
      while read -r t; do echo "$t" > "$root/$procs" 2>/dev/null; done < "$d/$procs"
      rmdir "$d" 2>/dev/null
    done
  done
  rm -rf "$work"
}
trap cleanup EXIT

# 1. Install into a scratch prefix, as `cmake --install` would into /usr/local.
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "cmake --install"; }
libdir=$(dirname "$(find "$prefix" -name libusched.so -print -quit)")
[ -n "$libdir" ] && [ "$libdir" != . ] || fail "no libusched.so installed under $prefix"
for f in include/usched/usched.h include/usched/usched.hpp share/usched/proto/usched/v1/usched.proto \
         share/man/man3/libusched.3 share/man/man3/usched_rfork.3; do
  [ -e "$prefix/$f" ] || fail "$f is not installed"
done
[ -e "$libdir/pkgconfig/usched.pc" ] || fail "usched.pc is not installed"
[ -e "$libdir/cmake/usched/uschedConfig.cmake" ] || fail "the CMake package is not installed"
soname=$(readelf -d "$libdir/libusched.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libusched.so.0 ] || fail "soname is '$soname', not libusched.so.0"
# Only the C API is exported: gRPC, protobuf and our C++ internals stay private.
others=$(nm -D --defined-only "$libdir/libusched.so" | awk '$2 != "A" && $3 !~ /^usched_/ {print $3}')
[ -z "$others" ] || fail "libusched exports more than usched_*: $(echo "$others" | head -5)"
# The ABI is cli/sdk/libusched.symbols: a function added, renamed or dropped
# must be a deliberate change of that file (and of the soname, for a drop).
nm -D --defined-only "$libdir/libusched.so" | awk '$2 == "T" {print $3}' | LC_ALL=C sort > "$work/symbols"
diff -u <(grep -v '^#' "$src/cli/sdk/libusched.symbols") "$work/symbols" || fail "libusched's exported functions differ from cli/sdk/libusched.symbols"
echo "installed: $libdir/libusched.so ($soname, $(wc -l < "$work/symbols") functions)"

# 2. Build the two programs outside the source tree, against the prefix only.
cp -r "$src/tests/sdk/c" "$src/tests/sdk/cxx" "$work/"
export PKG_CONFIG_PATH=$libdir/pkgconfig
(cd "$work/c" && cc -Wall -Werror -o sdk_demo sdk_demo.c $(pkg-config --cflags --libs usched) -pthread) \
  >"$work/cc.log" 2>&1 || { cat "$work/cc.log"; fail "cc \$(pkg-config --cflags --libs usched)"; }
(cmake -S "$work/cxx" -B "$work/cxx/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release &&
   cmake --build "$work/cxx/build") >"$work/cxx.log" 2>&1 || { cat "$work/cxx.log"; fail "find_package(usched CONFIG)"; }
export LD_LIBRARY_PATH=$libdir  # a scratch prefix is not in ld.so's path

# 3. The installed uschedd, real glue, private everything.
sock=$work/usched.sock
"$prefix/bin/uschedd" --socket "$sock" --state-dir "$work/state" --cgroup-top "$top" --no-config \
  --cleanup-on-exit --log-level debug >"$work/uschedd.log" 2>&1 &
pid=$!
cli() { timeout 20 "$prefix/bin/usched" --socket "$sock" "$@"; }
for _ in $(seq 200); do
  cli list >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/uschedd.log"; pid=""; fail "uschedd exited"; }
  sleep 0.05
done
cli list >/dev/null || { cat "$work/uschedd.log"; fail "uschedd does not answer"; }
ncpu=$(nproc)
pool=cpu$((ncpu - 1))
cli sdk on "$pool" lwktpri 6 || fail "usched sdk on $pool"
want=$(cli show sdk --json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["effectiveCpus"])')
[ -n "$want" ] || fail "no effective cpus for sdk"
echo "scheduler sdk on $pool: cpus $want"

# Runs one demo program: it waits (holding its thread in the gang) until
# this script has seen the thread in `usched gang list`, then finishes.
run_demo() {
  local name=$1 gang=$2; shift 2
  cli gang create "sdk/$gang" >/dev/null || fail "gang create sdk/$gang"
  mkfifo "$work/$name.in"
  timeout 60 "$@" "$sock" sdk "sdk/$gang" <"$work/$name.in" >"$work/$name.out" 2>&1 &
  demo=$!
  exec 3>"$work/$name.in"
  local tid=""
  for _ in $(seq 400); do
    tid=$(sed -n 's/^thread \([0-9]*\) joined.*/\1/p' "$work/$name.out")
    [ -n "$tid" ] && break
    kill -0 "$demo" 2>/dev/null || break
    sleep 0.05
  done
  local members
  members=$(cli gang list --json | "$py" -c '
import json, sys
for g in json.load(sys.stdin)["gangs"]:
    if g["spec"]["scheduler"] + "/" + g["spec"]["name"] == sys.argv[1]:
        print(" ".join(str(t) for m in g["members"] for t in m.get("threads", []) + [m.get("tid", 0)]))' "sdk/$gang")
  echo done >&3
  exec 3>&-
  wait "$demo"; local rc=$?; demo=""
  echo "--- $name"; cat "$work/$name.out"
  [ "$rc" = 0 ] || fail "$name exited $rc"
  [ -n "$tid" ] || fail "$name: no thread joined the gang"
  [[ " $members " == *" $tid "* ]] || fail "$name: thread $tid not among gang sdk/$gang's members ($members)"
  grep -qx "child cpus $want" "$work/$name.out" || fail "$name: the rforked child did not start on cpus $want"
  grep -qx "thread cpus $want" "$work/$name.out" || fail "$name: the gang thread is not on cpus $want"
  grep -q "^bad name: NOT_FOUND: " "$work/$name.out" || fail "$name: a bad scheduler name did not give NOT_FOUND"
}
run_demo c gc "$work/c/sdk_demo"
grep -qx "no daemon: UNAVAILABLE" "$work/c.out" || fail "c: no daemon did not give UNAVAILABLE"
run_demo cxx gcxx "$work/cxx/build/sdk_demo_cxx"

# The third case a program must tell apart: a user who may not bind to
# root's scheduler gets PERMISSION_DENIED (the daemon reads the uid from the
# socket).
cat > "$work/c/perm.c" <<'C'
#include <stdio.h>
#include <usched/usched.h>
int main(int argc, char** argv) {
  usched_set_socket(argv[1]);
  if (usched_bind_self(argv[2], -1) == 0) { printf("bound\n"); return 1; }
  printf("%s: %s\n", usched_code_name(usched_last_error_code()), usched_last_error());
  return 0;
}
C
(cd "$work/c" && cc -o perm perm.c $(pkg-config --cflags --libs usched)) || fail "cc perm.c"
chmod 0755 "$work"
perm=$(LD_LIBRARY_PATH=$libdir setpriv --reuid nobody --regid nogroup --clear-groups "$work/c/perm" "$sock" sdk 2>&1)
echo "as nobody: $perm"
[[ "$perm" == PERMISSION_DENIED:* ]] || fail "binding as nobody to root's scheduler did not give PERMISSION_DENIED: $perm"

# 4. Python, with stubs generated by Debian's protoc and grpc_python_plugin
# from the installed proto; health and reflection from Debian's grpc-proto.
"$src/examples/python/gen.sh" "$work/py" "$prefix/share/usched/proto" >"$work/gen.log" 2>&1 ||
  { cat "$work/gen.log"; fail "examples/python/gen.sh"; }
PYTHONPATH=$work/py timeout 60 "$py" "$src/examples/python/usched_example.py" --socket "$sock" \
  --scheduler pyexample --pool "$pool" >"$work/py.out" 2>&1
rc=$?
echo "--- python"; cat "$work/py.out"
[ "$rc" = 0 ] || fail "the Python example exited $rc"
grep -qx "health (server): SERVING" "$work/py.out" || fail "health check did not answer SERVING"
grep -qx "health usched.v1.Usched: SERVING" "$work/py.out" || fail "health of usched.v1.Usched is not SERVING"
grep -q "^reflection: .*usched.v1.Usched" "$work/py.out" || fail "reflection does not list usched.v1.Usched"
grep -qx "child [0-9]* bound: Cpus_allowed_list $want" "$work/py.out" || fail "the Python example's child is not on cpus $want"

kill "$pid"; wait "$pid"; rc=$?; pid=""
[ "$rc" = 0 ] || { cat "$work/uschedd.log"; fail "uschedd exited $rc on SIGTERM"; }
echo "PASSED"
