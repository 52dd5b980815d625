#!/usr/bin/env bash
# Fetches Debian 12's own kernel for the VM tests, without installing it:
# `apt-get download` of the image package behind linux-image-cloud-amd64
# (or $USCHED_VM_KERNEL_PKG, e.g. linux-image-amd64), unpacked with
# `dpkg-deb -x` into a cache directory. Nothing goes to this machine's /boot.
# Prints the unpacked root; its boot/vmlinuz-* is the kernel and
# lib/modules/* its modules. Also installs QEMU when run as root.
set -euo pipefail

meta=${USCHED_VM_KERNEL_PKG:-linux-image-cloud-amd64}
cache=${USCHED_VM_CACHE:-/var/cache/usched-vm}
export DEBIAN_FRONTEND=noninteractive

need=()
for p in qemu-system-x86 busybox-static cpio; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "vm/kernel: missing packages: ${need[*]}; run as root to install them" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The versioned image package the meta package depends on.
pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
  apt-get update -qq
  pkg=$(apt-cache depends "$meta" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$pkg" ] || { echo "vm/kernel: cannot resolve $meta to a kernel image package" >&2; exit 1; }

root="$cache/$pkg"
if ! compgen -G "$root/boot/vmlinuz-*" >/dev/null; then
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.dl.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null)
  mkdir -p "$tmp/root"
  dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/root"
  rm -rf "$root"
  mv "$tmp/root" "$root"
fi
echo "$root"
