#!/usr/bin/env bash
# Tier "package": cpack builds the three .debs (usched, libusched0,
# libusched-dev), apt-get installs them from the files on this machine, the
# installed uschedd starts with the installed default config
# (on a private socket and state directory, fake glue so the machine's
# cgroups are not touched) and `usched list` shows IDLE, NORM and REAL; a C
# program built with the installed pkg-config file gets NOT_FOUND from it for
# a scheduler that does not exist; then the packages are purged. Exit 77 (skipped) where that cannot be done safely.
# Usage: package_test.sh BUILD_DIR
set -uo pipefail
build=$1
# shellcheck source=../support/skip.sh
source "$(dirname "$0")/../support/skip.sh"

[ "$(id -u)" -eq 0 ] || skip "installing a package needs root"
command -v dpkg >/dev/null || skip "no dpkg on this machine"
command -v cpack >/dev/null || skip "no cpack"
for p in usched libusched0 libusched-dev; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    skip "a $p package is installed already; not touching it"
  fi
done
[ -e /etc/usched/usched.conf ] && skip "/etc/usched/usched.conf exists (not from a package); not touching it"
# The quick start's uschedd (scripts/start.sh) uses the package's
# directories, /var/lib/usched and /run/usched. While it runs (it holds the
# state directory's lock) the package's prerm and postrm leave them and its
# tree alone, and this test checks that they did. A stopped quick start's
# state is moved aside for the test and put back after it.
live_state=0
if [ -d /var/lib/usched ] && ! flock -n /var/lib/usched true 2>/dev/null; then
  live_state=1
  live_files=$(ls -A /var/lib/usched)
  echo "a running uschedd holds /var/lib/usched ($live_files): the packages must leave it alone"
fi
saved=""

work=$(mktemp -d /tmp/usched-pkg-XXXXXX)
if [ "$live_state" = 0 ]; then
  for d in /var/lib/usched /run/usched; do
    if [ -n "$(ls -A "$d" 2>/dev/null)" ]; then
      mkdir -p "$work/saved"
      mv "$d" "$work/saved/$(echo "$d" | tr / _)"
      saved="$saved $d"
      echo "moved a stopped uschedd's $d aside; it is put back at the end"
    fi
  done
fi
pid=""
installed=0
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  if [ "$installed" = 1 ]; then
    dpkg -P libusched-dev libusched0 usched >/dev/null 2>&1 || echo "WARNING: dpkg -P failed"
  fi
  rmdir /etc/usched 2>/dev/null
  for d in $saved; do
    rm -rf "$d"
    mv "$work/saved/$(echo "$d" | tr / _)" "$d" || echo "WARNING: could not put $d back (it is in $work/saved)"
  done
  [ -n "$saved" ] && [ -d "$work/saved" ] && [ -n "$(ls -A "$work/saved")" ] && return
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$build" && cpack -G DEB -B "$work/out" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; fail "cpack"; }
deb=$(ls "$work"/out/usched_*.deb 2>/dev/null | head -1)
lib=$(ls "$work"/out/libusched0_*.deb 2>/dev/null | head -1)
dev=$(ls "$work"/out/libusched-dev_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] && [ -n "$lib" ] && [ -n "$dev" ] || fail "cpack did not make usched, libusched0 and libusched-dev: $(ls "$work/out")"
echo "built $deb $lib $dev"
dpkg-deb -c "$lib" | awk '{print $6}' > "$work/lib.contents"
dpkg-deb -c "$dev" | awk '{print $6}' > "$work/dev.contents"
grep -q '^./usr/lib/.*libusched.so.0$' "$work/lib.contents" || fail "libusched.so.0 is not in libusched0"
for f in ./usr/include/usched/usched.h ./usr/include/usched/usched.hpp ./usr/share/usched/proto/usched/v1/usched.proto \
         ./usr/share/man/man3/libusched.3 ./usr/share/man/man3/usched_rfork.3; do
  grep -qx "$f" "$work/dev.contents" || fail "$f is not in libusched-dev"
done
for f in 'libusched.so$' 'pkgconfig/usched.pc$' 'cmake/usched/uschedConfig.cmake$'; do
  grep -q "^./usr/lib/.*$f" "$work/dev.contents" || fail "$f is not in libusched-dev"
done
dpkg-deb -f "$dev" Depends | grep -q "libusched0 (= " || fail "libusched-dev does not depend on its libusched0"
dpkg-deb -f "$lib" Depends | grep -q "libgrpc++" || fail "libusched0 does not declare its gRPC dependency"
dpkg-deb --ctrl-tarfile "$lib" | tar -xO ./shlibs 2>/dev/null | grep -q "^libusched 0 libusched0" || fail "libusched0 has no shlibs file"
dpkg-deb -c "$deb" | awk '{print $6}' > "$work/contents"
grep -q "libusched" "$work/contents" && fail "library files in the usched package"
for f in ./usr/bin/uschedd ./usr/bin/usched ./usr/libexec/usched/usched-cli ./etc/usched/usched.conf ./usr/lib/systemd/system/uschedd.service \
         ./usr/share/man/man1/usched.1 ./usr/share/man/man8/uschedd.8 \
         ./usr/share/bash-completion/completions/usched; do
  grep -qx "$f" "$work/contents" || fail "$f is not in the package"
done
grep -q "test" <(grep "/bin/" "$work/contents") && fail "test binaries in the package"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/usched/usched.conf || fail "the config is not a conffile"
for s in postinst prerm postrm; do
  dpkg-deb -I "$deb" "$s" | grep -q "uschedd.service" || fail "the package's $s does not handle uschedd.service"
done

# apt resolves the declared dependencies (all present after scripts/deps.sh).
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 \
  "$deb" "$lib" "$dev" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; installed=1; fail "apt-get install"; }
installed=1
/usr/bin/uschedd --version | grep -q "uschedd " || fail "uschedd --version"
# postinst enables the unit even where systemd does not run (it starts it
# only where it does).
wants=/etc/systemd/system/multi-user.target.wants/uschedd.service
if [ -x /usr/bin/deb-systemd-helper ]; then
  [ -L "$wants" ] || fail "postinst did not enable uschedd.service"
fi
grep -q '^ExecStart=/usr/bin/uschedd --foreground --config /etc/usched/usched.conf$' \
  /usr/lib/systemd/system/uschedd.service || fail "unit ExecStart"
if command -v systemd-analyze >/dev/null; then
  # Only complaints about the machine (no man database) are tolerated.
  out=$(systemd-analyze verify /usr/lib/systemd/system/uschedd.service 2>&1 | grep -v "Command 'man ")
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
fi

/usr/bin/uschedd --foreground --config /etc/usched/usched.conf --glue fake --fake-cpus 0-1 \
  --socket "$work/usched.sock" --state-dir "$work/state" >"$work/uschedd.log" 2>&1 &
pid=$!
for _ in $(seq 200); do
  /usr/bin/usched --socket "$work/usched.sock" list >"$work/list" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/uschedd.log"; fail "the installed uschedd exited"; }
  sleep 0.05
done
cat "$work/list"
for n in IDLE NORM REAL; do grep -q "^$n " "$work/list" || fail "$n missing from usched list"; done
grep -q "config /etc/usched/usched.conf applied" "$work/uschedd.log" || fail "the default config was not applied"
# usched serves `run` itself through the placement socket; the rest goes to
# /usr/libexec/usched/usched-cli (list above).
[ "$(/usr/bin/usched --socket "$work/usched.sock" run NORM -- echo placed)" = placed ] || fail "usched run NORM"
# The package's pkg-config file, not one a quick start installed in /usr/local.
export PKG_CONFIG_LIBDIR=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)/pkgconfig:/usr/lib/pkgconfig:/usr/share/pkgconfig
case $(pkg-config --path usched) in
  /usr/lib/*) ;;
  *) fail "pkg-config finds $(pkg-config --path usched), not the package's usched.pc" ;;
esac
[ "$(pkg-config --modversion usched)" = "$(dpkg-deb -f "$lib" Version)" ] || fail "pkg-config --modversion usched"
cat > "$work/probe.c" <<'C'
#include <stdio.h>
#include <usched/usched.h>
int main(int argc, char** argv) {
  usched_set_socket(argv[1]);
  if (usched_bind_self("no-such-scheduler", -1) == 0) return 1;
  printf("%s\n", usched_code_name(usched_last_error_code()));
  return 0;
}
C
(cd "$work" && cc -o probe probe.c $(pkg-config --cflags --libs usched)) || fail "cc against the installed libusched-dev"
[ "$("$work/probe" "$work/usched.sock")" = NOT_FOUND ] || fail "the installed libusched did not give NOT_FOUND"
kill "$pid"; wait "$pid"; rc=$?; pid=""
[ "$rc" = 0 ] || fail "uschedd exited $rc on SIGTERM"

dpkg -P libusched-dev libusched0 usched >/dev/null 2>&1 || fail "dpkg -P"
installed=0
[ -e /usr/include/usched/usched.h ] && fail "usched.h left after purge"
[ -e /usr/bin/uschedd ] && fail "/usr/bin/uschedd left after purge"
[ -e /etc/usched/usched.conf ] && fail "config left after purge"
[ -e "$wants" ] || [ -L "$wants" ] && fail "uschedd.service still enabled after purge"
[ -e /etc/systemd/system/uschedd.service ] || [ -L /etc/systemd/system/uschedd.service ] && fail "uschedd.service masked after purge"
if [ "$live_state" = 1 ]; then
  [ "$(ls -A /var/lib/usched 2>/dev/null)" = "$live_files" ] || fail "purge touched the running uschedd's /var/lib/usched"
  flock -n /var/lib/usched true 2>/dev/null && fail "the uschedd that held /var/lib/usched is gone"
  [ -S /run/usched/usched.sock ] || fail "purge removed the running uschedd's socket /run/usched/usched.sock"
  echo "the running uschedd kept /var/lib/usched and /run/usched"
fi
echo "PASSED"
