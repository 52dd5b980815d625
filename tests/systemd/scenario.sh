#!/bin/bash
# The packaged uschedd on a Debian 12 box with systemd as PID 1, run inside
# the systemd guest (scripts/vm/systemd-guest.sh; ctest vm.systemd). Each
# check prints "ok - WHAT" or "not ok - WHAT" and the reason; the exit status
# is the number of failed checks (0: all passed).
#
# In order: apt installs the .deb (no network: its dependencies are in the
# guest's root), the unit is enabled and active, `usched tree` answers, the
# journal has levels, `systemctl reload` applies an edited config, a
# service's process bound to a scheduler gets its CPUs and `systemctl stop`
# still stops it, members stay placed across daemon-reload and a restart,
# the extra scenario files run, and `apt purge` leaves nothing behind.
set -u
fails=0
ok() { echo "ok - $1"; }
bad() { echo "not ok - $1"; fails=$((fails + 1)); }
# check WHAT COMMAND...: ok when COMMAND succeeds; its output on failure.
check() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$what"; else bad "$what"; printf '  %s\n' "$out" | head -n 20; fi
}
# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
  local limit=$1 i
  shift
  for ((i = 0; i < limit * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  "$@"
}
cpus_of() { sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "/proc/$1/status"; }
# is_cpus PID LIST: the kernel's affinity of PID is LIST.
is_cpus() {
  local got
  got=$(cpus_of "$1")
  [ "$got" = "$2" ] || { echo "pid $1: Cpus_allowed_list is '$got', not '$2'"; return 1; }
}
main_pid() { systemctl show -p MainPID --value "$1"; }
gone() { ! kill -0 "$1" 2>/dev/null; }
all_cpus="0-$(($(nproc) - 1))"
debs=${USCHED_SYSTEMD_DEBS:-/usched-systemd/debs}

# --- The package -------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
t0=$SECONDS
check "apt install ./usched_*.deb resolves its dependencies offline and installs" \
  apt-get install -y -q --no-install-recommends "$debs"/usched_*.deb
echo "  (apt install took $((SECONDS - t0)) s)"
check "the unit is enabled" systemctl is-enabled uschedd
check "the unit is active after install" wait_for 30 systemctl is-active uschedd
check "systemctl status uschedd" systemctl --no-pager status uschedd
check "the unit is Type=notify" test "$(systemctl show -p Type --value uschedd)" = notify
verify() { ! systemd-analyze verify uschedd.service 2>&1 | grep -v "Command 'man " | grep .; }
check "systemd-analyze verify uschedd.service" verify
echo "  systemd-analyze security uschedd: $(systemd-analyze security uschedd 2>/dev/null | tail -n 1)"
check "usched tree answers" usched tree
usched tree

# --- The journal ------------------------------------------------------------
journal() { journalctl --no-pager -q -o cat -u uschedd "$@"; }
check "uschedd's info lines are in the journal at info" sh -c 'journalctl --no-pager -q -o cat -u uschedd -p info | grep -q "serving on"'
# A config that does not parse: `systemctl reload` fails and changes
# nothing; the same file on SIGHUP makes uschedd log an error, which
# `journalctl -p warning` shows while it hides the info lines.
cp /etc/usched/usched.conf /tmp/usched.conf.orig
echo "usched broken on cpu999999 lwktpri banana" >> /etc/usched/usched.conf
if systemctl reload uschedd >/dev/null 2>&1; then bad "systemctl reload fails on a config that does not parse"
else ok "systemctl reload fails on a config that does not parse"; fi
check "systemctl reload's failure left uschedd active" systemctl is-active uschedd
pid=$(main_pid uschedd)
[ "${pid:-0}" -gt 0 ] && kill -HUP "$pid"
warned() { journalctl --no-pager -q -o cat -u uschedd -p warning | grep -q "config not applied"; }
check "journalctl -p warning shows uschedd's error about the config" wait_for 20 warned
cp /tmp/usched.conf.orig /etc/usched/usched.conf
check "nothing of the bad config applied" sh -c '! usched list | grep -q "^broken "'
check "journalctl -p warning has no info lines" sh -c '! journalctl --no-pager -q -o cat -u uschedd -p warning | grep -E "serving on|applied \\(|glue:"'
echo "  journalctl -u uschedd -p warning:"
journal -p warning | sed 's/^/    /' | tail -n 10

# --- Reload applies the edited config ----------------------------------------
echo "usched pinned on cpu1 cpu2 lwktpri 6" >> /etc/usched/usched.conf
check "systemctl reload uschedd with an edited config" systemctl reload uschedd
check "the edited config is applied (pinned in usched tree)" sh -c 'usched list | grep -q "^pinned "'

# --- A service's process bound to a scheduler ---------------------------------
check "systemd-run --unit=victim sleep 1000" systemd-run --unit=victim sleep 1000
victim=$(main_pid victim)
check "victim has a main pid" test "${victim:-0}" -gt 0
check "usched bind pinned --pid victim" usched bind pinned --pid "$victim"
check "victim's Cpus_allowed_list is pinned's" is_cpus "$victim" 1-2
# Needs the systemd cgroup driver (docs/systemd.md): without it the bind
# moves the process to uschedd's own cgroup, out of its unit.
check "victim is still in its unit's cgroup (systemd cgroup driver)" grep -q 'victim.service' "/proc/$victim/cgroup"
cat "/proc/$victim/cgroup" | sed 's/^/  cgroup of victim: /'
check "systemctl stop victim" timeout 60 systemctl stop victim
check "systemctl stop victim stopped the bound process" wait_for 10 gone "$victim"
kill -KILL "$victim" 2>/dev/null

# --- Classes under the unit's sandbox ---------------------------------------
# policy PID CLASS: chrt(1) reports CLASS (SCHED_RR, SCHED_IDLE, ...) for PID.
policy() {
  local got
  got=$(chrt -p "$1" | sed -n 's/.*scheduling policy: //p')
  [ "$got" = "$2" ] || { echo "pid $1: policy $got, not $2"; return 1; }
}
check "systemd-run --unit=rt sleep 1000" systemd-run --unit=rt sleep 1000
rt=$(main_pid rt)
check "usched bind REAL --pid rt" usched bind REAL --pid "$rt"
check "rt runs SCHED_RR (uschedd sets realtime classes from its unit)" policy "$rt" SCHED_RR
check "usched bind IDLE --pid rt" usched bind IDLE --pid "$rt"
check "rt runs SCHED_IDLE" policy "$rt" SCHED_IDLE
systemctl stop rt 2>/dev/null

# --- Members stay placed across daemon-reload and restart --------------------
check "systemd-run --unit=member sleep 1000" systemd-run --unit=member sleep 1000
member=$(main_pid member)
check "usched bind pinned --pid member" usched bind pinned --pid "$member"
check "member placed" is_cpus "$member" 1-2
check "systemctl daemon-reload" systemctl daemon-reload
check "uschedd still active after daemon-reload" systemctl is-active uschedd
check "member placed after daemon-reload" is_cpus "$member" 1-2
old=$(main_pid uschedd)
check "systemctl restart uschedd" timeout 60 systemctl restart uschedd
check "uschedd restarted (a new main pid)" test "$(main_pid uschedd)" != "$old"
check "usched answers after restart" usched tree
check "member placed after restart" is_cpus "$member" 1-2
check "member still listed in pinned after restart" sh -c "usched show pinned | grep -qw $member"

# --- Extra scenario files (the cgroup driver's checks go here) --------------
for extra in ${USCHED_SYSTEMD_EXTRA:-}; do
  echo "# extra scenario $extra"
  if bash "$extra"; then ok "extra scenario $(basename "$extra")"; else bad "extra scenario $(basename "$extra")"; fi
done

# --- Purge leaves nothing behind ---------------------------------------------
check "apt purge usched" apt-get purge -y -q usched
check "uschedd is not running after purge" sh -c '! pgrep -x uschedd'
check "no cgroup of ours after purge" sh -c '! find /sys/fs/cgroup -name "usched*" | grep .'
check "no unit after purge" sh -c '! ls /usr/lib/systemd/system/uschedd.service /etc/systemd/system/multi-user.target.wants/uschedd.service 2>&1 | grep -v "No such"'
check "systemd no longer knows uschedd" sh -c '[ "$(systemctl show -p LoadState --value uschedd)" = not-found ]'
check "no /var/lib/usched after purge" test ! -e /var/lib/usched
check "no /run/usched after purge" test ! -e /run/usched
check "no /etc/usched after purge" test ! -e /etc/usched
check "the member got every CPU back" is_cpus "$member" "$all_cpus"
check "member's unit still supervises it" systemctl is-active member
systemctl stop member 2>/dev/null

echo "scenario: $fails failed"
exit "$fails"
