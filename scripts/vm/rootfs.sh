#!/usr/bin/env bash
# A Debian 12 root for VM guests, made once with `mmdebstrap
# --variant=minbase` and cached under /var/cache/usched-vm (or
# $USCHED_VM_CACHE). Packages beyond minbase are the arguments (or
# $USCHED_VM_PACKAGES, space separated); each distinct list gets its own
# cached root, so a guest that needs systemd asks for it and does not
# disturb the others. Documentation, man pages and locales are left out.
#
# Prints the cache directory, which holds:
#   root/       the unpacked tree (to copy files from, or to build a disk)
#   root.cpio   the same tree as an uncompressed newc archive, ready to be
#               the first part of an initramfs (the kernel accepts several
#               concatenated archives; later files win)
set -euo pipefail

cache=${USCHED_VM_CACHE:-/var/cache/usched-vm}
suite=bookworm
# What the kernel tests use beyond minbase: useradd (passwd), ps/pgrep
# (procps), mount and nsenter (util-linux), and bash for the guest's init.
base=(passwd procps util-linux bash)
# shellcheck disable=SC2206
extra=(${USCHED_VM_PACKAGES:-} "$@")
mapfile -t pkgs < <(printf '%s\n' "${base[@]}" "${extra[@]}" | sed '/^$/d' | sort -u)
key=$(printf '%s\n' "$suite" "${pkgs[@]}" | sha256sum | cut -c1-12)
dir="$cache/rootfs-$suite-$key"

if [ -s "$dir/root.cpio" ]; then
  echo "$dir"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "vm/rootfs: the guest root $dir is not made yet; run as root to make it" >&2
  exit 1
fi
if ! command -v mmdebstrap >/dev/null || ! command -v cpio >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends mmdebstrap cpio >/dev/null
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "vm/rootfs: making a $suite root with ${pkgs[*]} (once; about 3 minutes)" >&2
include=$(IFS=,; echo "${pkgs[*]}")
mmdebstrap --quiet --variant=minbase --include="$include" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  "$suite" "$tmp/root" >&2
rm -rf "$tmp/root/var/cache/apt/"*.bin "$tmp/root/var/lib/apt/lists/"*
printf '%s\n' "${pkgs[@]}" > "$tmp/packages"
(cd "$tmp/root" && find . -xdev -print0 | cpio --null --create --format=newc --quiet) > "$tmp/root.cpio"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
chmod 755 "$dir"
echo "$dir"
