#!/usr/bin/env bash
# Builds (once, then cached) a tiny initramfs for QEMU guests used as gang
# workloads: busybox-static and an /init that keeps two CPUs of the guest
# busy, one of them printing "loop-guest tick N" lines to the serial
# console (ttyS0) without end. Boot it with Debian's kernel
# (scripts/vm/kernel.sh) and "console=ttyS0". Prints the path of the
# gzipped cpio archive. Installs busybox-static and cpio when run as root.
set -euo pipefail

cache=${USCHED_VM_CACHE:-/var/cache/usched-vm}
export DEBIAN_FRONTEND=noninteractive

need=()
for p in busybox-static cpio; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "vm/loop-guest: missing packages: ${need[*]}; run as root to install them" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

busybox=/bin/busybox
[ -x "$busybox" ] || { echo "vm/loop-guest: no $busybox (busybox-static)" >&2; exit 1; }

# The guest's init. devtmpfs gives /dev/console and /dev/ttyS0 without
# device nodes in the archive (so no mknod, no root needed to build it).
# Two loops: the guest scheduler puts them on its two vCPUs, so both vCPU
# threads of the VM monitor have work; a guest with an idle vCPU would
# make co-scheduling trivially true for that vCPU.
read -r -d '' init <<'INIT' || true
#!/bin/busybox sh
/bin/busybox mkdir -p /dev /proc /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t proc proc /proc
exec >/dev/ttyS0 2>&1
echo "loop-guest: up on $(/bin/busybox grep -c ^processor /proc/cpuinfo) cpus"
spin() { while :; do :; done; }
spin &
i=0
while :; do
  i=$((i + 1))
  j=0
  while [ $j -lt 300 ]; do j=$((j + 1)); done
  echo "loop-guest tick $i"
done
INIT

# Cached by content: the init text and the busybox binary.
key=$( (printf '%s' "$init"; sha256sum "$busybox") | sha256sum | cut -c1-16)
out="$cache/loop-guest-$key.cpio.gz"
if [ ! -s "$out" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.loop.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/root/bin" "$tmp/root/dev" "$tmp/root/proc" "$tmp/root/sys"
  cp "$busybox" "$tmp/root/bin/busybox"
  ln -s busybox "$tmp/root/bin/sh"
  printf '%s\n' "$init" >"$tmp/root/init"
  chmod 755 "$tmp/root/init"
  (cd "$tmp/root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --owner=0:0) |
    gzip -9n >"$tmp/out.cpio.gz"
  mv "$tmp/out.cpio.gz" "$out"
fi
echo "$out"
