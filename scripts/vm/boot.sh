#!/usr/bin/env bash
# Boots a kernel with an initramfs under QEMU, the serial console on this
# script's stdout (and in --log FILE), and kills the guest at a bound.
#
#   boot.sh --kernel VMLINUZ --initrd CPIO [--cpus N] [--mem MIB]
#           [--timeout SECONDS] [--log FILE] [--append "KERNEL ARGS"]
#           [-- EXTRA QEMU ARGS...]
#
# Exit status: QEMU's (0 once the guest powers off), 124 when the guest was
# killed at the bound (or printed nothing at all, twice: see below). The
# console gets console=ttyS0 and panic=-1 (with -no-reboot a panicking
# guest ends QEMU instead of rebooting), and usched.accel=kvm|tcg tells the
# guest how it runs.
#
# Acceleration ($USCHED_VM_ACCEL: auto, tcg or kvm): auto uses KVM only when
# /dev/kvm really runs a guest. On some hosts /dev/kvm opens but a KVM guest
# never prints a line, so auto boots the kernel once under KVM with a short
# bound and looks for its first console line; the verdict is kept for the
# host's boot in /run/usched-vm. Otherwise TCG, multi-threaded.
set -euo pipefail

kernel= initrd= cpus=4 mem=2048 bound=600 log=/dev/null append=
extra=()
while (($#)); do
  case $1 in
    --kernel) kernel=$2; shift 2 ;;
    --initrd) initrd=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --timeout) bound=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --append) append=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "vm/boot: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -r "$kernel" ] || { echo "vm/boot: no kernel at '$kernel'" >&2; exit 2; }
[ -r "$initrd" ] || { echo "vm/boot: no initramfs at '$initrd'" >&2; exit 2; }
[[ $cpus =~ ^[1-9][0-9]*$ ]] || { echo "vm/boot: --cpus wants a positive number, not '$cpus'" >&2; exit 2; }

# Prints "kvm" or "tcg".
pick_accel() {
  local want=${USCHED_VM_ACCEL:-auto}
  case $want in
    tcg|kvm) echo "$want"; return ;;
    auto) ;;
    *) echo "vm/boot: USCHED_VM_ACCEL must be auto, tcg or kvm, not '$want'" >&2; exit 2 ;;
  esac
  if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then echo tcg; return; fi
  local verdict_dir=/run/usched-vm boot_id
  boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
  local verdict="$verdict_dir/kvm.$boot_id"
  if [ -s "$verdict" ]; then cat "$verdict"; return; fi
  # Without an initramfs the kernel panics at once after booting; with
  # working KVM its first line comes within a second.
  local out
  out=$(timeout -k 2 20 qemu-system-x86_64 -accel kvm -cpu host -smp 1 -m 256 -no-reboot \
          -display none -monitor none -serial stdio -kernel "$kernel" \
          -append "console=ttyS0 panic=-1 rdinit=/nonexistent" 2>&1 | head -c 65536 || true)
  local a=tcg
  if grep -q "Linux version" <<<"$out"; then a=kvm; fi
  mkdir -p "$verdict_dir" 2>/dev/null && echo "$a" > "$verdict" 2>/dev/null || true
  echo "$a"
}

accel=$(pick_accel)
case $accel in
  kvm) accel_args=(-accel kvm -cpu host) ;;
  tcg) accel_args=(-accel tcg,thread=multi -cpu max) ;;
esac
echo "vm/boot: qemu ${accel} with ${cpus} vCPUs and ${mem} MiB, killed after ${bound} s" >&2

# A guest whose console stays empty hung before its kernel's first line
# (seen once under TCG: QEMU busy on every vCPU, not a byte on the console
# for the whole bound). Its kernel prints within seconds otherwise, so such
# a guest is killed after $USCHED_VM_FIRST_LINE_SECONDS (default 60) and
# booted once more, rather than waited for until the bound.
first_line=${USCHED_VM_FIRST_LINE_SECONDS:-60}
[[ $first_line =~ ^[1-9][0-9]*$ ]] || { echo "vm/boot: USCHED_VM_FIRST_LINE_SECONDS must be a positive number, not '$first_line'" >&2; exit 2; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# One boot; sets rc, and hung=1 when the console stayed empty.
boot_once() {
  local seen="$scratch/console" pidfile="$scratch/qemu.pid" wd
  rm -f "$seen" "$pidfile" "$scratch/hung"
  : > "$seen"
  (
    for ((i = 0; i < first_line; i++)); do
      sleep 1
      [ -s "$seen" ] && exit 0
    done
    if [ -s "$pidfile" ]; then
      touch "$scratch/hung"
      kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
    fi
  ) &
  wd=$!
  set +e
  timeout -k 5 "$bound" qemu-system-x86_64 "${accel_args[@]}" -smp "$cpus" -m "$mem" -no-reboot \
    -display none -monitor none -serial stdio -nodefaults -pidfile "$pidfile" \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 usched.accel=$accel $append" "${extra[@]}" </dev/null 2>&1 | tee "$log" "$seen"
  rc=${PIPESTATUS[0]}
  set -e
  kill "$wd" 2>/dev/null || true
  wait "$wd" 2>/dev/null || true
  hung=0
  if [ -e "$scratch/hung" ]; then hung=1; fi
}

boot_once
if [ "$hung" -eq 1 ]; then
  echo "vm/boot: the guest printed nothing in ${first_line} s (hung before its kernel's first line); booting it once more" >&2
  boot_once
  if [ "$hung" -eq 1 ]; then
    echo "vm/boot: the guest printed nothing in ${first_line} s, twice; giving up" >&2
    exit 124
  fi
fi
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "vm/boot: the guest was still running after ${bound} s and was killed" >&2
  exit 124
fi
exit "$rc"
