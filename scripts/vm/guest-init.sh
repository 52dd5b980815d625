#!/bin/bash
# PID 1 of a test guest (the initramfs's /usched-init, booted with
# rdinit=/usched-init). Mounts what a production box has (proc, sys, dev,
# cgroup v2 with the cpuset and cpu controllers enabled for the root's
# children), prints the kernel version and CPU count, runs /usched-vm/run,
# prints its exit status as "usched-vm: exit N" (the host looks for that
# line) and powers the guest off. Nothing here waits for input: a guest
# either reaches the last line or is killed by the host at its bound.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# No tmpfs over /tmp: the root is already in memory, and the host's build
# tree (with the binaries at the paths they were built with) may lie
# under /tmp, as a CI clone often does.
mkdir -p /tmp && chmod 1777 /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
# As systemd leaves it on Debian 12: every controller the root offers that
# can be delegated is enabled for its children; cpuset and cpu are the two
# usched needs.
for c in cpuset cpu; do echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control; done
hostname usched-vm

echo "usched-vm: kernel $(uname -r), $(nproc --all) CPUs online: $(cat /sys/devices/system/cpu/online)"
echo "usched-vm: cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers); enabled: $(cat /sys/fs/cgroup/cgroup.subtree_control)"

rc=1
if [ -x /usched-vm/run ]; then
  /usched-vm/run
  rc=$?
else
  echo "usched-vm: no /usched-vm/run in the initramfs"
fi
echo "usched-vm: exit $rc"
sync
echo o > /proc/sysrq-trigger
sleep 10
