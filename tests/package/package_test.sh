#!/usr/bin/env bash
# Tier "package": cpack builds the .deb, dpkg -i installs it on this
# machine, the installed uschedd starts with the installed default config
# (on a private socket and state directory, fake glue so the machine's
# cgroups are not touched) and `usched list` shows IDLE, NORM and REAL; then
# the package is purged. Exit 77 (skipped) where that cannot be done safely.
# Usage: package_test.sh BUILD_DIR
set -uo pipefail
build=$1
# Under USCHED_REQUIRE_KERNEL=1 (CI) a skip is a failure, as in the kernel tier.
skip() {
  if [ "${USCHED_REQUIRE_KERNEL:-}" = 1 ]; then echo "FAILED (USCHED_REQUIRE_KERNEL=1): $*"; exit 1; fi
  echo "SKIPPED: $*"; exit 77
}
fail() { echo "FAILED: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "installing a package needs root"
command -v dpkg >/dev/null || skip "no dpkg on this machine"
command -v cpack >/dev/null || skip "no cpack"
if dpkg-query -W -f='${Status}' usched 2>/dev/null | grep -q "ok installed"; then
  skip "a usched package is installed already; not touching it"
fi
[ -e /etc/usched/usched.conf ] && skip "/etc/usched/usched.conf exists (not from a package); not touching it"

work=$(mktemp -d /tmp/usched-pkg-XXXXXX)
pid=""
installed=0
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  if [ "$installed" = 1 ]; then
    dpkg -P usched >/dev/null 2>&1 || echo "WARNING: dpkg -P usched failed"
  fi
  rmdir /etc/usched 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$build" && cpack -G DEB -B "$work/out" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; fail "cpack"; }
deb=$(ls "$work"/out/usched_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || fail "cpack made no .deb"
echo "built $deb"
dpkg-deb -c "$deb" | awk '{print $6}' > "$work/contents"
for f in ./usr/bin/uschedd ./usr/bin/usched ./etc/usched/usched.conf ./usr/lib/systemd/system/uschedd.service \
         ./usr/share/man/man1/usched.1 ./usr/share/man/man8/uschedd.8 \
         ./usr/share/bash-completion/completions/usched; do
  grep -qx "$f" "$work/contents" || fail "$f is not in the package"
done
grep -q "test" <(grep "/bin/" "$work/contents") && fail "test binaries in the package"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/usched/usched.conf || fail "the config is not a conffile"

dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; installed=1; fail "dpkg -i"; }
installed=1
/usr/bin/uschedd --version | grep -q "uschedd " || fail "uschedd --version"
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
kill "$pid"; wait "$pid"; rc=$?; pid=""
[ "$rc" = 0 ] || fail "uschedd exited $rc on SIGTERM"

dpkg -P usched >/dev/null 2>&1 || fail "dpkg -P"
installed=0
[ -e /usr/bin/uschedd ] && fail "/usr/bin/uschedd left after purge"
[ -e /etc/usched/usched.conf ] && fail "config left after purge"
echo "PASSED"
