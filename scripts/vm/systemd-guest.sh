#!/usr/bin/env bash
# A Debian 12 guest with systemd 252 as PID 1, cgroup v2 with every
# controller, in which the project's .debs are installed with apt and a
# scenario runs as a oneshot unit.
#
#   scripts/vm/systemd-guest.sh [--build-dir DIR | --debs DIR] [--cpus N]
#       [--mem MIB] [--timeout SECONDS] [--log FILE] SCENARIO [EXTRA.sh...]
#
# The debs: those in --debs DIR, or made with cpack from --build-dir (the
# default: ./build; cpack builds every target of that tree first). The
# root: scripts/vm/rootfs.sh with systemd, systemd-sysv, dbus and every
# package the debs depend on, so `apt install ./usched_*.deb` resolves in
# the guest without a network (made once, about 3 minutes, then cached).
# The guest is an initramfs booted with rdinit=/lib/systemd/systemd on
# Debian's kernel (scripts/vm/kernel.sh, scripts/vm/boot.sh).
#
# In the guest: the debs are in /usched-systemd/debs, SCENARIO is
# /usched-systemd/scenario.sh and the EXTRA files are in
# /usched-systemd/extra/ (their paths in $USCHED_SYSTEMD_EXTRA, space
# separated; the scenario decides when to run them). The unit
# guest-scenario.service runs SCENARIO with bash after multi-user.target,
# its output on the serial console, prints `usched-systemd: exit N` and
# powers the guest off.
#
# Exit status: 0 when the scenario exited 0; 1 when it failed, when the
# console lacks the final line, or when the guest was still running at the
# bound (killed; its console says how far it got); 77 (a skip for ctest)
# when this host cannot run guests (not root) and USCHED_REQUIRE_KERNEL is
# not 1; 2 for bad arguments. The console is kept in --log (default:
# BUILD/vm/systemd.log, or /tmp/usched-systemd.log with --debs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build= debs= cpus=4 mem=3072 bound=420 log= scenario=
extras=()
usage() { sed -n '2,31p' "$0"; }
while (($#)); do
  case $1 in
    --build-dir) build=$2; shift 2 ;;
    --debs) debs=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --timeout) bound=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) echo "systemd-guest: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) break ;;
  esac
done
(($#)) || { echo "systemd-guest: no SCENARIO given" >&2; usage >&2; exit 2; }
scenario=$1; shift
extras=("$@")
for f in "$scenario" "${extras[@]}"; do
  [ -r "$f" ] || { echo "systemd-guest: no scenario file '$f'" >&2; exit 2; }
done
[[ $bound =~ ^[1-9][0-9]*$ ]] || { echo "systemd-guest: --timeout wants seconds, not '$bound'" >&2; exit 2; }
if [ "$(id -u)" -ne 0 ]; then
  if [ "${USCHED_REQUIRE_KERNEL:-}" = 1 ]; then
    echo "systemd-guest: needs root (QEMU, the guest root) (USCHED_REQUIRE_KERNEL=1: failing instead of skipping)" >&2
    exit 1
  fi
  echo "systemd-guest: skipped: needs root (it installs QEMU and makes the guest root)" >&2
  exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/usched-systemd.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -z "$debs" ]; then
  build=$(cd "${build:-$src/build}" && pwd)
  echo "systemd-guest: making the debs with cpack in $build" >&2
  debs=$work/out
  (cd "$build" && cpack -G DEB -B "$debs" >"$work/cpack.log" 2>&1) || {
    tail -n 30 "$work/cpack.log" >&2
    echo "systemd-guest: cpack failed" >&2
    exit 1
  }
  rm -rf "$debs/_CPack_Packages"
  : "${log:=$build/vm/systemd.log}"
fi
debs=$(cd "$debs" && pwd)
: "${log:=/tmp/usched-systemd.log}"
mkdir -p "$(dirname "$log")"
compgen -G "$debs/usched_*.deb" >/dev/null || { echo "systemd-guest: no usched_*.deb in $debs" >&2; exit 2; }

# Every package the debs depend on (first alternative, no versions), less
# the ones the debs themselves are.
ours=$(for d in "$debs"/*.deb; do dpkg-deb -f "$d" Package; done)
mapfile -t deps < <(for d in "$debs"/*.deb; do dpkg-deb -f "$d" Depends; done |
  tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/^ +//; s/ +$//' | sed '/^$/d' | sort -u |
  grep -vxF -f <(printf '%s\n' $ours) || true)
kroot=$("$here/kernel.sh")
vmlinuz=$(compgen -G "$kroot/boot/vmlinuz-*" | head -n1)
rootfs=$("$here/rootfs.sh" systemd systemd-sysv dbus libsystemd0 "${deps[@]}")

# The overlay: the debs, the scenario, its unit, and what keeps the
# console for the scenario (no getty on it).
ov=$work/overlay
mkdir -p "$ov/usched-systemd/debs" "$ov/usched-systemd/extra" "$ov/etc/systemd/system/multi-user.target.wants"
chmod 755 "$ov"  # its "." entry sets the guest's / mode
cp "$debs"/*.deb "$ov/usched-systemd/debs/"
install -m 755 "$scenario" "$ov/usched-systemd/scenario.sh"
extra_paths=()
for f in "${extras[@]}"; do
  install -m 755 "$f" "$ov/usched-systemd/extra/$(basename "$f")"
  extra_paths+=("/usched-systemd/extra/$(basename "$f")")
done
accel_scale() {
  # Under TCG each vCPU is a host thread: timing tests stretch by twice the
  # oversubscription (docs/vm-tier.md).
  echo $(((2 * cpus + $(nproc) - 1) / $(nproc)))
}
cat > "$ov/usched-systemd/run" <<EOF
#!/bin/bash
# The scenario's runner: its output is the serial console.
export USCHED_REQUIRE_KERNEL=1
export USCHED_SYSTEMD_DEBS=/usched-systemd/debs
export USCHED_SYSTEMD_EXTRA="${extra_paths[*]}"
accel=\$(sed -n 's/.*usched\.accel=\([a-z]*\).*/\1/p' /proc/cmdline)
scale=1; [ "\$accel" = tcg ] && scale=$(accel_scale)
export USCHED_TEST_TIME_SCALE=\$scale
echo "usched-systemd: \$(uname -r), \$(nproc) CPUs, systemd \$(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p'), \$accel"
echo "usched-systemd: cgroup \$(stat -f -c %T /sys/fs/cgroup), controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)"
cd /usched-systemd
bash ./scenario.sh
rc=\$?
echo "usched-systemd: exit \$rc"
exit 0
EOF
chmod 755 "$ov/usched-systemd/run"
cat > "$ov/etc/systemd/system/guest-scenario.service" <<'EOF'
[Unit]
Description=the systemd guest's scenario (scripts/vm/systemd-guest.sh)
After=multi-user.target
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/usched-systemd/run
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS0
TTYReset=no
TTYVHangup=no
EOF
ln -s ../guest-scenario.service "$ov/etc/systemd/system/multi-user.target.wants/guest-scenario.service"
# The console is the scenario's: no login prompt on it.
ln -s /dev/null "$ov/etc/systemd/system/serial-getty@ttyS0.service"
echo usched-guest > "$ov/etc/hostname"
(cd "$ov" && find . -print0 | cpio --null --create --format=newc --quiet) > "$work/overlay.cpio"
cat "$rootfs/root.cpio" "$work/overlay.cpio" > "$work/initrd"

echo "systemd-guest: $(basename "$scenario") ${extras[*]:+with ${extras[*]} }in a systemd guest with $cpus vCPUs, console in $log"
t0=$SECONDS rc=0
"$here/boot.sh" --kernel "$vmlinuz" --initrd "$work/initrd" --cpus "$cpus" --mem "$mem" \
  --timeout "$bound" --log "$log" \
  --append "rdinit=/lib/systemd/systemd systemd.unified_cgroup_hierarchy=1 systemd.show_status=error loglevel=4" || rc=$?
secs=$((SECONDS - t0))
text=$(tr -d '\r' < "$log")
exit_line=$(grep -m1 '^usched-systemd: exit ' <<<"$text" || true)
checks="$(grep -c '^ok ' <<<"$text" || true) checks passed, $(grep -c '^not ok ' <<<"$text" || true) failed"
case $rc:$exit_line in
  124:*) why="the guest was still running after $bound s and was killed ($checks)" ;;
  *:) why="the guest ended (qemu status $rc) without its final line ($checks)" ;;
  *:"usched-systemd: exit 0") echo "systemd-guest: passed in $secs s ($checks)"; exit 0 ;;
  *) why="$exit_line in $secs s ($checks)" ;;
esac
echo "systemd-guest: FAIL: $why; failed checks and the last console lines:" >&2
grep '^not ok' <<<"$text" >&2 || true
echo "..." >&2
tail -n 15 <<<"$text" >&2
exit 1
