#!/usr/bin/env bash
# The systemd cgroup driver (docs/systemd.md), checked in a Debian 12 guest
# with systemd as PID 1 and cgroup v2, as root, after the .deb is installed
# and uschedd.service runs. Every check looks at what the kernel and
# systemd say (/proc/PID/cgroup, Cpus_allowed_list, cgroup.events,
# systemctl, systemd-cgls). Exits non-zero at the first failed check; the
# processes it started are killed by pid and its units stopped on every
# exit path, and no gang is left frozen.
set -uo pipefail

CG=/sys/fs/cgroup
PIDS=()
fails=0

log() { echo "driver.sh: $*"; }
ok() { echo "ok - driver: $*"; }
fail() {
  echo "not ok - driver: $*"
  fails=$((fails + 1))
  # What systemd and uschedd said, for a failure seen only once.
  timeout 10 systemctl list-units --all --no-pager --no-legend 'usched*' 2>&1 | sed 's/^/  units: /'
  timeout 10 systemctl list-jobs --no-pager --no-legend 2>&1 | sed 's/^/  jobs: /'
  timeout 10 journalctl -u uschedd -b --no-pager -n 40 2>&1 | sed 's/^/  uschedd: /'
  exit 1
}

cleanup() {
  local rc=$?
  # Thaw first: nothing may stay frozen.
  if [ -d "$CG/usched.slice" ]; then
    find "$CG/usched.slice" -name cgroup.freeze -print0 2>/dev/null | while IFS= read -r -d '' f; do
      [ "$(cat "$f")" = 1 ] && echo 0 >"$f"
    done
  fi
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for u in drv-victim drv-victim2 drv-victim3 drv-victim4; do systemctl stop "$u" 2>/dev/null; systemctl reset-failed "$u" 2>/dev/null; done
  usched destroy drv --force >/dev/null 2>&1
  log "exit $rc"
}
trap cleanup EXIT

# until SECONDS CMD...: runs CMD every 0.1 s until it succeeds (TCG guests are slow).
until_ok() {
  local bound=$1
  shift
  local end=$((SECONDS + bound))
  while ! "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.1
  done
}

cgroup_of() { sed -n 's/^0:://p' "/proc/$1/cgroup"; }
cpus_of() { awk '/^Cpus_allowed_list:/ {print $2}' "/proc/$1/status"; }
in_cgroup() { [[ "$(cgroup_of "$1")" == $2 ]]; }
gone() { ! kill -0 "$1" 2>/dev/null; }

[ "$(id -u)" = 0 ] || fail "run me as root"
[ "$(cat /proc/1/comm)" = systemd ] || fail "PID 1 is $(cat /proc/1/comm), not systemd"
until_ok 60 systemctl is-active --quiet uschedd || fail "uschedd.service is not active: $(systemctl status uschedd --no-pager 2>&1 | tail -5)"
until_ok 30 usched tree || fail "usched tree does not answer"
journalctl -u uschedd --no-pager -b | grep -qE "cgroup driver: systemd|glue systemd:" ||
  fail "uschedd did not choose the systemd driver: $(journalctl -u uschedd --no-pager -b | grep -i 'driver\|glue' | tail -3)"
ok "uschedd runs with the systemd cgroup driver"

ncpu=$(nproc)
[ "$ncpu" -ge 4 ] || fail "want 4 CPUs, the guest has $ncpu"

# ---- an entity is a slice with AllowedCPUs= and CPUWeight= ----
usched drv on cpu1-2 lwktpri 6 >/dev/null || fail "usched drv on cpu1-2"
until_ok 10 systemctl is-active --quiet usched-drv.slice || fail "usched-drv.slice is not active"
allowed=$(systemctl show -p AllowedCPUs --value usched-drv.slice)
[ "$allowed" = 1-2 ] || fail "usched-drv.slice has AllowedCPUs=$allowed, want 1-2"
weight=$(systemctl show -p CPUWeight --value usched-drv.slice)
[ "$weight" = 100 ] || fail "usched-drv.slice has CPUWeight=$weight, want 100 (lwktpri 6)"
ok "usched-drv.slice: AllowedCPUs=$allowed CPUWeight=$weight"

# ---- usched run: a scope in the entity's slice ----
# Started from a scope, as from a login shell: this scenario itself runs in
# a service, and a service keeps what `usched run` starts in it.
usched_run=(systemd-run --quiet --scope usched run)
"${usched_run[@]}" drv -- sleep 1000 &
run_pid=$!
PIDS+=("$run_pid")
until_ok 20 in_cgroup "$run_pid" "/usched.slice/usched-drv.slice/usched-run-$run_pid*.scope" ||
  fail "usched run: pid $run_pid is in $(cgroup_of "$run_pid"), not a usched-run scope in usched-drv.slice"
[ "$(cpus_of "$run_pid")" = 1-2 ] || fail "usched run: pid $run_pid has CPUs $(cpus_of "$run_pid"), want 1-2"
run_scope=$(basename "$(cgroup_of "$run_pid")")
eff=$(cat "$CG/usched.slice/usched-drv.slice/cpuset.cpus.effective")
[ "$eff" = 1-2 ] || fail "usched-drv.slice's cpuset.cpus.effective is $eff, want 1-2"
systemd-cgls --no-pager -u usched-drv.slice | grep -q "$run_pid" ||
  fail "systemd-cgls -u usched-drv.slice does not show pid $run_pid: $(systemd-cgls --no-pager -u usched-drv.slice)"
ok "usched run: pid $run_pid in $run_scope in usched-drv.slice, CPUs 1-2"

# ---- usched bind of a service's process: the service keeps it ----
systemd-run --quiet --unit=drv-victim sleep 1000 || fail "systemd-run --unit=drv-victim"
until_ok 10 systemctl is-active --quiet drv-victim || fail "drv-victim.service did not start"
vpid=$(systemctl show -p MainPID --value drv-victim)
out=$(usched bind drv --pid "$vpid") || fail "usched bind drv --pid $vpid: $out"
echo "$out" | grep -q "stays in drv-victim.service" || fail "usched bind did not say the process stays in its unit: $out"
in_cgroup "$vpid" "/system.slice/drv-victim.service" || fail "bound drv-victim pid $vpid moved to $(cgroup_of "$vpid")"
[ "$(cpus_of "$vpid")" = 1-2 ] || fail "bound drv-victim pid $vpid has CPUs $(cpus_of "$vpid"), want 1-2"
ok "usched bind: '$out'"
systemctl stop drv-victim || fail "systemctl stop drv-victim"
until_ok 10 gone "$vpid" || fail "pid $vpid survived systemctl stop drv-victim"
ok "systemctl stop drv-victim stopped the bound pid $vpid"

# A child of a service (the case the cgroupfs glue let escape).
systemd-run --quiet --unit=drv-victim2 sh -c 'sleep 1001 & wait' || fail "systemd-run --unit=drv-victim2"
until_ok 10 pgrep -f "^sleep 1001" || fail "drv-victim2's child did not start"
cpid=$(pgrep -f "^sleep 1001" | head -1)
usched bind drv --pid "$cpid" >/dev/null || fail "usched bind drv --pid $cpid"
in_cgroup "$cpid" "/system.slice/drv-victim2.service" || fail "drv-victim2's child moved to $(cgroup_of "$cpid")"
systemctl stop drv-victim2 || fail "systemctl stop drv-victim2"
until_ok 10 gone "$cpid" || fail "drv-victim2's child $cpid survived systemctl stop drv-victim2"
ok "a service's child bound with usched bind stays in the service and stops with it"

# `usched run` as a service's command: the service keeps it.
systemd-run --quiet --unit=drv-victim4 usched run drv -- sleep 1003 || fail "systemd-run --unit=drv-victim4 usched run"
until_ok 10 pgrep -f "^sleep 1003" || fail "drv-victim4's usched run did not exec"
v4=$(pgrep -f "^sleep 1003" | head -1)
in_cgroup "$v4" "/system.slice/drv-victim4.service" || fail "usched run in drv-victim4.service moved it to $(cgroup_of "$v4")"
[ "$(cpus_of "$v4")" = 1-2 ] || fail "usched run in drv-victim4.service: CPUs $(cpus_of "$v4"), want 1-2"
systemctl stop drv-victim4 || fail "systemctl stop drv-victim4"
until_ok 10 gone "$v4" || fail "pid $v4 survived systemctl stop drv-victim4"
ok "usched run as a service's command stays in the service, gets CPUs 1-2, stops with it"

# ---- gangs freeze and thaw inside their scopes ----
usched gang create drv/g1 --quantum 50 >/dev/null || fail "usched gang create drv/g1"
usched gang create drv/g2 --quantum 50 >/dev/null || fail "usched gang create drv/g2"
gang_pids=()
for g in g1 g1 g2 g2; do
  "${usched_run[@]}" drv --gang "$g" -- sh -c 'while :; do :; done' &
  gang_pids+=("$!")
  PIDS+=("$!")
done
for p in "${gang_pids[@]}"; do
  until_ok 20 in_cgroup "$p" "/usched.slice/usched-drv.slice/usched-run-$p*.scope/gang:g*" ||
    fail "gang member $p is in $(cgroup_of "$p"), not a gang group inside its scope"
done
g1dir="$CG$(cgroup_of "${gang_pids[0]}")"
seen_frozen=0
seen_thawed=0
end=$((SECONDS + 30))
while [ "$SECONDS" -lt "$end" ] && { [ $seen_frozen = 0 ] || [ $seen_thawed = 0 ]; }; do
  if grep -q '^frozen 1' "$g1dir/cgroup.events"; then seen_frozen=1; else seen_thawed=1; fi
  sleep 0.01
done
[ $seen_frozen = 1 ] || fail "gang g1's group $g1dir was never frozen in 30 s: $(usched gang list 2>&1)"
[ $seen_thawed = 1 ] || fail "gang g1's group $g1dir was never thawed in 30 s"
ok "gang g1 froze and thawed in $g1dir"

# A process of another unit cannot join a gang: a clear refusal.
systemd-run --quiet --unit=drv-victim3 sleep 1002 || fail "systemd-run --unit=drv-victim3"
until_ok 10 systemctl is-active --quiet drv-victim3 || fail "drv-victim3.service did not start"
v3=$(systemctl show -p MainPID --value drv-victim3)
if err=$(usched gang add drv/g1 --pid "$v3" 2>&1); then fail "usched gang add of drv-victim3's pid was accepted: $err"; fi
echo "$err" | grep -q "drv-victim3.service" || fail "the refusal does not name drv-victim3.service: $err"
ok "usched gang add of a service's process: '$err'"
usched bind drv --pid "$v3" >/dev/null || fail "usched bind drv --pid $v3"

# ---- restart and SIGKILL of uschedd: everything is adopted ----
for how in restart kill; do
  if [ $how = restart ]; then
    systemctl restart uschedd || fail "systemctl restart uschedd"
  else
    old=$(systemctl show -p MainPID --value uschedd)
    kill -KILL "$old"
    until_ok 30 sh -c "[ \"\$(systemctl show -p MainPID --value uschedd)\" != $old ] && [ \"\$(systemctl show -p MainPID --value uschedd)\" != 0 ]" ||
      fail "uschedd was not restarted after SIGKILL"
  fi
  until_ok 30 usched tree || fail "usched tree does not answer after $how"
  [ "$(basename "$(cgroup_of "$run_pid")")" = "$run_scope" ] ||
    fail "after $how: pid $run_pid is in $(cgroup_of "$run_pid"), was in $run_scope"
  [ "$(cpus_of "$run_pid")" = 1-2 ] || fail "after $how: pid $run_pid has CPUs $(cpus_of "$run_pid")"
  in_cgroup "$v3" "/system.slice/drv-victim3.service" || fail "after $how: drv-victim3's pid is in $(cgroup_of "$v3")"
  [ "$(cpus_of "$v3")" = 1-2 ] || fail "after $how: drv-victim3's pid has CPUs $(cpus_of "$v3")"
  usched show drv | grep -q "$run_pid" || fail "after $how: usched show drv does not list $run_pid"
  [ "$(systemctl show -p AllowedCPUs --value usched-drv.slice)" = 1-2 ] || fail "after $how: AllowedCPUs changed"
  for p in "${gang_pids[@]}"; do
    in_cgroup "$p" "/usched.slice/usched-drv.slice/usched-run-$p*.scope/gang:g*" ||
      fail "after $how: gang member $p is in $(cgroup_of "$p")"
  done
  ok "after $how of uschedd every member is where it was"
done
systemctl daemon-reload
in_cgroup "$run_pid" "/usched.slice/usched-drv.slice/$run_scope" || fail "after daemon-reload: pid $run_pid moved"
ok "systemctl daemon-reload left the members placed"

# ---- resize: SetUnitProperties ----
usched update drv on cpu2-3 >/dev/null || fail "usched update drv on cpu2-3"
[ "$(systemctl show -p AllowedCPUs --value usched-drv.slice)" = 2-3 ] ||
  fail "after resize: AllowedCPUs=$(systemctl show -p AllowedCPUs --value usched-drv.slice), want 2-3"
until_ok 10 sh -c "[ \"\$(awk '/^Cpus_allowed_list:/ {print \$2}' /proc/$run_pid/status)\" = 2-3 ]" ||
  fail "after resize: pid $run_pid has CPUs $(cpus_of "$run_pid"), want 2-3"
ok "resize: usched-drv.slice AllowedCPUs=2-3, member follows"

# ---- destroy: a top-level entity's members are released, the slice stops ----
for p in "${gang_pids[@]}"; do kill -KILL "$p"; done
usched destroy drv --force >/dev/null || fail "usched destroy drv --force"
until_ok 20 sh -c "! systemctl is-active --quiet usched-drv.slice" || fail "usched-drv.slice still active after destroy"
gone "$run_pid" && fail "destroying drv killed its member $run_pid"
# Its first unit (the systemd-run scope) emptied and went away when it left
# it: it gets a scope of its own in the root slice.
until_ok 20 in_cgroup "$run_pid" "/usched-returned-$run_pid.scope" ||
  fail "after destroy: pid $run_pid is in $(cgroup_of "$run_pid"), not /usched-returned-$run_pid.scope"
ok "destroy: usched-drv.slice stopped, pid $run_pid alive in $(cgroup_of "$run_pid")"

# ---- --teardown stops everything usched made ----
usched drv on cpu1-2 >/dev/null || fail "usched drv on cpu1-2 (again)"
usched drv/inner on cpu0 >/dev/null || fail "usched drv/inner on cpu0"
"${usched_run[@]}" drv/inner -- sleep 1004 &
t_pid=$!
PIDS+=("$t_pid")
until_ok 20 in_cgroup "$t_pid" "/usched.slice/usched-drv.slice/usched-drv-inner.slice/usched-run-$t_pid*.scope" ||
  fail "usched run drv/inner: pid $t_pid is in $(cgroup_of "$t_pid")"
[ "$(systemctl show -p AllowedCPUs --value usched-drv-inner.slice)" = 1 ] ||
  fail "usched-drv-inner.slice has AllowedCPUs=$(systemctl show -p AllowedCPUs --value usched-drv-inner.slice), want 1"
ok "nested: pid $t_pid in usched-drv-inner.slice with AllowedCPUs=1"
systemctl stop uschedd || fail "systemctl stop uschedd"
uschedd --teardown || fail "uschedd --teardown"
left=$(systemctl list-units --no-legend --all 'usched*.slice' 'usched-run-*.scope' | awk '$3 != "inactive"')
[ -z "$left" ] || fail "after --teardown these units remain: $left"
gone "$t_pid" && fail "--teardown killed pid $t_pid"
in_cgroup "$t_pid" "/usched.slice/*" && fail "after --teardown pid $t_pid is still in $(cgroup_of "$t_pid")"
[ -d "$CG/usched.slice" ] && fail "after --teardown $CG/usched.slice is still there"
ok "--teardown: no usched slice or run scope left, pid $t_pid returned to $(cgroup_of "$t_pid")"
systemctl start uschedd || fail "systemctl start uschedd"
until_ok 30 usched tree || fail "usched tree does not answer after the last start"

log "all checks passed"
