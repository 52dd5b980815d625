#!/usr/bin/env bash
# Tier "slurm": a real Slurm cluster on this machine (Debian's 22.05:
# munged, slurmctld, and two slurmd, n1 and n2, on localhost), one uschedd
# per node (real glue, private cgroup tops, own sockets) and the usched
# SPANK plugin, driven the way a user drives Slurm: srun, sbatch, scancel,
# sstat, as root and as an unprivileged user. Every daemon it starts is
# stopped, every job cancelled and every cgroup removed on the way out,
# also when a check fails; it only ever kills pids it started.
# Usage: slurm_test.sh BUILD_DIR
set -uo pipefail
build=$(cd "$1" && pwd)
# Under USCHED_REQUIRE_KERNEL=1 (CI) a skip is a failure, as in the kernel tier.
skip() {
  if [ "${USCHED_REQUIRE_KERNEL:-}" = 1 ]; then echo "FAILED (USCHED_REQUIRE_KERNEL=1): $*"; exit 1; fi
  echo "SKIPPED: $*"; exit 77
}
failures=0
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }
pass() { echo "ok ($SECONDS s): $*"; }
die() { echo "FAILED: $*"; exit 1; }

plugin=$build/slurm/usched.so
uschedd=$build/daemon/uschedd
usched=$build/cli/usched
[ "$(id -u)" -eq 0 ] || skip "the slurm tier needs root (slurmd, munged, real cgroups)"
[ -e /sys/fs/cgroup/cpuset/cpuset.cpus ] || grep -qw cpuset /sys/fs/cgroup/cgroup.controllers 2>/dev/null ||
  skip "no cgroup cpuset controller at /sys/fs/cgroup"
[ -x "$uschedd" ] && [ -x "$usched" ] || die "uschedd or usched not built in $build"
[ -e "$plugin" ] || skip "the SPANK plugin was not built (no slurm/spank.h: apt-get install libslurm-dev)"
# The plugin is linked without -z defs (slurmstepd provides the spank_*
# symbols): a usched symbol left undefined would only show when slurmstepd
# loads it.
undefined=$(nm -D --undefined-only "$plugin" | c++filt | grep "usched::")
[ -z "$undefined" ] || die "the plugin leaves usched symbols undefined: $undefined"

# Debian's Slurm and munge, installed here if missing (policy-rc.d or no
# init keeps their packaged services from starting).
need=()
for p in slurmctld slurmd slurm-client munge; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  # The packages' own services must not start (this test runs its own
  # daemons): a policy-rc.d says so for the time of the install.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
    "${need[@]}") >/dev/null 2>&1
  rc=$?
  [ -n "$policy" ] && rm -f "$policy"
  [ $rc = 0 ] || skip "cannot install ${need[*]} with apt-get"
fi

user=usched-slurm-u
id "$user" >/dev/null 2>&1 || useradd --system --create-home --home-dir /var/lib/$user --shell /bin/sh "$user" ||
  die "useradd $user"
uid=$(id -u "$user")

work=$(mktemp -d /tmp/usched-slurm-XXXXXX)
chmod 755 "$work"
tag=$(basename "$work" | tr -cd 'A-Za-z0-9')
mkdir -p "$work/ctld" "$work/jobs" "$work/spool-n1" "$work/spool-n2"
chown "$user" "$work/jobs"
export SLURM_CONF=$work/slurm.conf
started=()  # pids of the daemons this script started

# Stepds outlive slurmd; ours are the ones whose environment names our config.
our_stepds() {
  for d in /proc/[0-9]*; do
    [ "$(cat "$d/comm" 2>/dev/null)" = slurmstepd ] || continue
    { tr '\0' '\n' <"$d/environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF" && echo "${d#/proc/}"
  done
}
stop_pid() {  # TERM, up to 10 s, then KILL
  local p=$1
  kill -0 "$p" 2>/dev/null || return 0
  kill "$p" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  echo "WARNING: pid $p ignored SIGTERM; SIGKILL"
  kill -9 "$p" 2>/dev/null
}
cleanup() {
  kill "${watchdog:-}" 2>/dev/null
  local t0=$SECONDS
  if [ -n "${ctld_up:-}" ]; then
    scancel --quiet --full --user=root 2>/dev/null
    scancel --quiet --full --user="$user" 2>/dev/null
    for _ in $(seq 100); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  for p in $(our_stepds); do kill -9 "$p" 2>/dev/null; done
  local i
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop_pid "${started[$i]}"; done
  wait 2>/dev/null
  if [ "$failures" -gt 0 ] || [ -n "${keep_logs:-}" ]; then
    for f in "$work"/*.log; do echo "---- $f (tail)"; tail -15 "$f"; done
  fi
  # USCHED_SLURM_KEEP=DIR keeps the cluster's logs and configs there.
  [ -n "${USCHED_SLURM_KEEP:-}" ] && mkdir -p "$USCHED_SLURM_KEEP" && cp -r "$work"/*.log "$work"/*.conf "$USCHED_SLURM_KEEP"/
  rm -rf "$work"
  echo "cleanup: $((SECONDS - t0)) s (total $SECONDS s)"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# Bounded: every Slurm command gives up after 60 s, and the whole run
# stops (and cleans up) after 150 s, inside ctest's 300 s with room for a
# first install of the Slurm packages.
srun() { timeout 60 "$(type -P srun)" "$@"; }
sbatch() { timeout 60 "$(type -P sbatch)" "$@"; }
(
  trap 'kill $s 2>/dev/null; exit 0' TERM
  sleep 150 & s=$!
  wait $s && echo "FAILED: the slurm tier ran over 150 s" && kill -TERM $$
) 2>/dev/null &
watchdog=$!

# Ports: a free block, so two runs or another Slurm on this host do not meet.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 50); do
  base=$((20000 + (RANDOM % 4000) * 4))
  port_free $base && port_free $((base + 1)) && port_free $((base + 2)) && break
done
ncpus=$(nproc --all)

# --- munge ----------------------------------------------------------------
mungekey -c -k "$work/munge.key" >/dev/null 2>&1 || die "mungekey"
munged -F -f -S "$work/munge.sock" --key-file="$work/munge.key" --log-file="$work/munged.log" \
  --pid-file="$work/munged.pid" --seed-file="$work/munged.seed" >"$work/munged.out.log" 2>&1 &
started+=($!)
for _ in $(seq 50); do [ -S "$work/munge.sock" ] && break; sleep 0.1; done
[ -S "$work/munge.sock" ] || die "munged did not start"

# --- one uschedd per node ---------------------------------------------------
for n in n1 n2; do
  "$uschedd" --foreground --socket "$work/$n.sock" --state-dir "$work/state-$n" --cgroup-top "usched-slurm-$tag-$n" \
    --no-defaults --cleanup-on-exit >"$work/uschedd-$n.log" 2>&1 &
  started+=($!)
done
for n in n1 n2; do
  for _ in $(seq 100); do "$usched" --socket "$work/$n.sock" list >/dev/null 2>&1 && break; sleep 0.05; done
  "$usched" --socket "$work/$n.sock" batch on 'cpu*' lwktpri 6 >/dev/null || die "creating batch on $n"
  "$usched" --socket "$work/$n.sock" gangs on cpu0 lwktpri 6 >/dev/null || die "creating gangs on $n"
  "$usched" --socket "$work/$n.sock" private on 'cpu*' lwktpri 6 >/dev/null || die "creating private on $n"
  "$usched" --socket "$work/$n.sock" pinned on 'cpu*' lwktpri 6 locked >/dev/null || die "creating pinned on $n"
done

# --- Slurm --------------------------------------------------------------------
plugstack() {  # required|optional [socket pattern]
  echo "$1 $plugin socket=${2:-$work/%n.sock} quantum=100 allow=batch:gangs:pinned" >"$work/plugstack.conf"
}
plugstack required
cat >"$work/cgroup.conf" <<CONF
CgroupPlugin=cgroup/v1
IgnoreSystemd=yes
CONF
cat >"$SLURM_CONF" <<CONF
ClusterName=usched$tag
SlurmctldHost=localhost
SlurmctldPort=$base
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge.sock
StateSaveLocation=$work/ctld
SlurmdSpoolDir=$work/spool-%n
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd-%n.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
ReturnToService=2
MpiDefault=none
PlugStackConfig=$work/plugstack.conf
InactiveLimit=0
# Contain: an extern step per job and node, as most sites run.
PrologFlags=Contain
KillWait=2
MinJobAge=5
SlurmdTimeout=30
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((base + 1)) CPUs=$ncpus State=UNKNOWN
NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((base + 2)) CPUs=$ncpus State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=10 State=UP
CONF
slurmctld -D -i -f "$SLURM_CONF" >"$work/slurmctld.out.log" 2>&1 &
started+=($!)
ctld_up=1
for n in n1 n2; do
  slurmd -D -N "$n" -f "$SLURM_CONF" >"$work/slurmd-$n.out.log" 2>&1 &
  started+=($!)
done
for _ in $(seq 300); do
  [ "$(sinfo -h -N -o '%N %t' 2>/dev/null | grep -c ' idle$')" = 2 ] && break
  sleep 0.1
done
[ "$(sinfo -h -N -o '%N %t' 2>/dev/null | grep -c ' idle$')" = 2 ] ||
  { keep_logs=1; sinfo -N; die "n1 and n2 did not come up idle"; }
pass "munged, slurmctld, slurmd n1 and n2 up on ports $base-$((base + 2))"

as_user() { timeout 60 runuser -u "$user" -- env SLURM_CONF="$SLURM_CONF" "$@"; }
# The value of "key": in the one-line JSON of `usched show --json`.
json_field() { grep -o "\"$2\": *\"\?[^,\"}]*" <<<"$1" | head -1 | sed 's/.*: *"\?//'; }

# --- 1. srun -N2 -n2 --usched=batch: each task on its step's scheduler -------------
out=$(srun -N2 -n2 --usched=batch -l grep Cpus_allowed_list /proc/self/status 2>&1)
echo "$out"
[ "$(grep -c 'Cpus_allowed_list' <<<"$out")" = 2 ] || fail "srun --usched=batch: expected two tasks' CPUs"
# The same with the scheduler's own view: each task names its scheduler and
# the daemon of its node lists it as a member there.
out=$(srun -N2 -n2 --usched=batch -l sh -c 'echo "$SLURMD_NODENAME $$ $USCHED_SCHEDULER $(grep Cpus_allowed_list /proc/self/status | cut -f2)"; "'"$usched"'" --socket "$USCHED_SOCKET" show "$USCHED_SCHEDULER" --json | tr -d "\n "' 2>&1)
echo "$out"
for n in n1 n2; do
  line=$(grep -E "^[0-9]+: $n " <<<"$out" | head -1)
  read -r _ node pid sched cpus <<<"$line"
  [ -n "$line" ] || { fail "no task ran on $n"; continue; }
  [[ $sched =~ ^batch/job[0-9]+\.0$ ]] || fail "$n: USCHED_SCHEDULER=$sched"
  show=$(grep -E "^[0-9]+: \{" <<<"$out" | grep "\"pid\":$pid[,}]" | head -1)
  grep -q "\"name\":\"$sched\"" <<<"$show" || fail "$n: task $pid is not a member of $sched: $show"
  eff=$(json_field "$show" effectiveCpus)
  [ "$cpus" = "$eff" ] || fail "$n: task on CPUs $cpus, its scheduler $sched on $eff"
  [ "$cpus" = "$eff" ] && pass "$n: task $pid of $sched on CPUs $cpus, the scheduler's"
done
for n in n1 n2; do
  left=$("$usched" --socket "$work/$n.sock" list | grep -c 'batch/job' || true)
  [ "$left" = 0 ] || fail "$n: step schedulers left after the steps ended: $("$usched" --socket "$work/$n.sock" list)"
done

# Two tasks on one node, both cores: Slurm's task/affinity binds each task
# to a core, and the plugin, the last writer, puts both on their step's
# scheduler (both CPUs); under a locked scheduler each task gets a vcpu
# (a CPU) of its own.
if [ "$ncpus" -ge 2 ]; then
  out=$(srun -N1 -n2 -w n1 --usched=batch -l grep Cpus_allowed_list /proc/self/status 2>&1)
  echo "$out"
  [ "$(grep -c "Cpus_allowed_list:.0-$((ncpus - 1))$" <<<"$out")" = 2 ] &&
    pass "-n2 --usched=batch: both tasks on the step's CPUs 0-$((ncpus - 1)), not Slurm's one core each" ||
    fail "-n2 --usched=batch: tasks not on the step's scheduler's CPUs"
  out=$(srun -N1 -n2 -w n1 --usched=pinned -l grep Cpus_allowed_list /proc/self/status 2>&1)
  echo "$out"
  cpus=$(grep -o 'Cpus_allowed_list:.*' <<<"$out" | cut -f2 | sort | tr '\n' ' ')
  [ "$cpus" = "0 1 " ] && pass "-n2 --usched=pinned (locked): one CPU per task ($cpus)" ||
    fail "-n2 --usched=pinned: tasks on '$cpus', expected 0 and 1"
fi

# A figure, not a check: what the plugin adds to a one-task step (connect,
# create, chown, bind, destroy), median of 5 each, alternating.
ms_now() { echo $(($(date +%s%N) / 1000000)); }
plain=() placed=()
for _ in 1 2 3 4 5; do
  t=$(ms_now); srun -N1 -n1 -w n1 true >/dev/null 2>&1; plain+=($(($(ms_now) - t)))
  t=$(ms_now); srun -N1 -n1 -w n1 --usched=batch true >/dev/null 2>&1; placed+=($(($(ms_now) - t)))
done
median() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
echo "FIGURE srun -n1 true: $(median "${plain[@]}") ms plain, $(median "${placed[@]}") ms with --usched=batch (median of 5)"

# Waits up to $1 tenths of a second for the command after it to succeed.
wait_for() {
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
  return 1
}
job_done() { [ -z "$(squeue -h -j "$1" 2>/dev/null)" ]; }

# --- 2. sbatch with #SBATCH --usched=batch, as an unprivileged user --------
# The batch step runs on its own scheduler, handed to the user, who divides
# it further in its own vcpu numbers.
cat >"$work/jobs/job.sh" <<JOB
#!/bin/sh
#SBATCH --usched=batch
#SBATCH -N1 -n1 -w n1
#SBATCH -o $work/jobs/out.%j
echo "task \$\$ \$USCHED_SCHEDULER \$(grep Cpus_allowed_list /proc/self/status | cut -f2)"
"$usched" --socket "\$USCHED_SOCKET" show "\$USCHED_SCHEDULER" --json | tr -d '\n '; echo
"$usched" --socket "\$USCHED_SOCKET" "\$USCHED_SCHEDULER/mine" on cpu0 && echo "made \$USCHED_SCHEDULER/mine"
srun sh -c 'echo "step \$USCHED_SCHEDULER \$(grep Cpus_allowed_list /proc/self/status | cut -f2)"'
JOB
chmod 755 "$work/jobs/job.sh"
jid=$(cd "$work/jobs" && as_user sbatch --parsable "$work/jobs/job.sh")
if [ -z "$jid" ]; then
  fail "sbatch as $user"
else
  wait_for 300 job_done "$jid" || fail "sbatch job $jid did not finish in 30 s"
  jout=$(cat "$work/jobs/out.$jid" 2>/dev/null)
  echo "$jout"
  read -r _ pid sched cpus <<<"$(grep '^task ' <<<"$jout")"
  show=$(grep '^{' <<<"$jout")
  [ "$sched" = "batch/job$jid.batch" ] || fail "sbatch: USCHED_SCHEDULER=$sched, expected batch/job$jid.batch"
  grep -q "\"pid\":$pid[,}]" <<<"$show" || fail "sbatch: the batch script $pid is not a member of $sched"
  [ "$(json_field "$show" ownerUid)" = "$uid" ] || fail "sbatch: $sched is not owned by $user ($uid): $show"
  [ "$cpus" = "$(json_field "$show" effectiveCpus)" ] || fail "sbatch: script on $cpus, $sched elsewhere"
  grep -q "^made $sched/mine$" <<<"$jout" || fail "sbatch: $user could not create $sched/mine"
  # An srun in the script takes the option from sbatch: its step is placed too.
  grep -q "^step batch/job$jid.0 " <<<"$jout" || fail "sbatch: the srun step in the script was not placed"
  [ "$failures" = 0 ] && pass "sbatch as $user: script on $sched (CPUs $cpus, owner uid $uid), made $sched/mine"
  wait_for 50 eval '! "$usched" --socket "$work/n1.sock" list | grep -q "batch/job$jid"' ||
    fail "sbatch: $sched (or below) left after the job: $("$usched" --socket "$work/n1.sock" list)"
fi

# --- 3. a scheduler that does not exist: required fails, optional runs ----
# (srun 22.05 reports "task 0 launch failed" yet exits 0: what counts is
# that the command never ran.)
out=$(srun -N1 -n1 -w n1 --usched=nosuch echo ran-unplaced 2>&1); rc=$?
echo "$out (srun exit $rc)"
grep -q "^ran-unplaced$" <<<"$out" && fail "--usched=nosuch under 'required': the command ran"
grep -q "no scheduler named 'nosuch'" <<<"$out" || fail "--usched=nosuch: the job's output does not name the scheduler"
! grep -q "^ran-unplaced$" <<<"$out" && grep -q "no scheduler named 'nosuch'" <<<"$out" &&
  pass "required: --usched=nosuch does not run, the output names it"
plugstack optional
out=$(srun -N1 -n1 -w n1 --usched=nosuch echo ran-unplaced 2>&1); rc=$?
echo "$out"
[ $rc = 0 ] && grep -q "^ran-unplaced$" <<<"$out" || fail "--usched=nosuch under 'optional': the step did not run"
grep -q "nosuch" <<<"$out" || fail "--usched=nosuch under 'optional': no message naming it"
[ $rc = 0 ] && grep -q "no scheduler named 'nosuch'" <<<"$out" && pass "optional: --usched=nosuch runs unplaced, says why"
plugstack required
# A scheduler the user may not use (root's, not on allow=): refused, named.
out=$(cd "$work/jobs" && as_user srun -N1 -n1 -w n1 --usched=private echo ran-unplaced 2>&1)
echo "$out"
! grep -q "^ran-unplaced$" <<<"$out" && grep -q "may not use scheduler 'private'" <<<"$out" &&
  pass "$user naming root's 'private': refused, the output says why" || fail "$user could use 'private' or no message"
# No uschedd on the node: the error says so.
plugstack required "$work/absent-%n.sock"
out=$(srun -N1 -n1 -w n1 --usched=batch echo ran-unplaced 2>&1); rc=$?
plugstack required
echo "$out (srun exit $rc)"
! grep -q "^ran-unplaced$" <<<"$out" && grep -q "cannot reach uschedd at $work/absent-n1.sock" <<<"$out" &&
  pass "no uschedd: the step does not run, the output names the socket" || fail "no uschedd: no clear message"

# --- 4. scancel of a running step: its tasks and its scheduler go ------------
srun -N1 -n1 -w n2 --usched=batch -J scancelme sleep 120 >"$work/scancel.out.log" 2>&1 &
srun_pid=$!
member=""
find_member() {
  member=$("$usched" --socket "$work/n2.sock" list --json | tr -d '\n ' | grep -o '"name":"batch/job[0-9]*\.0"' | head -1)
  [ -n "$member" ]
}
if ! wait_for 200 find_member; then
  fail "scancel: the step's scheduler never appeared on n2"
else
  sched=${member#\"name\":\"}; sched=${sched%\"}
  show=$("$usched" --socket "$work/n2.sock" show "$sched" --json | tr -d '\n ')
  tpid=$(grep -o '"pid":[0-9]*' <<<"$show" | head -1 | cut -d: -f2)
  step=$(squeue -h -s -n scancelme -o %i | head -1)
  # Slurm still accounts the task (jobacct_gather/linux through sstat).
  wait_for 50 eval '[ -n "$(sstat -n -P -j "$step" -o JobID 2>/dev/null)" ]' && pass "sstat sees step $step" ||
    fail "sstat does not see step $step"
  scancel "$step"
  wait_for 100 eval '! kill -0 "$tpid" 2>/dev/null' || fail "scancel: task $tpid still alive 10 s later"
  wait_for 100 eval '! "$usched" --socket "$work/n2.sock" list | grep -q "$sched"' ||
    fail "scancel: $sched still there 10 s later"
  kill -0 "$tpid" 2>/dev/null || "$usched" --socket "$work/n2.sock" list | grep -q "$sched" ||
    pass "scancel $step: task $tpid gone, $sched gone"
fi
wait "$srun_pid" 2>/dev/null

# --- 5. two concurrent gang steps on the same CPUs take turns ----------------
# One job, one CPU, two overlapping steps, each a gang of `gangs` (one vcpu:
# its two gangs cannot share a row). Their run time is sampled from
# /proc/PID/stat: with gangs they are never runnable at the same time.
gang_job() {  # gang flag: "--usched-gang" or ""
  cat >"$work/jobs/gang.sh" <<JOB
#!/bin/bash
#SBATCH -N1 -n1 -c1 -w n1 -o $work/jobs/gang.%j
for s in a b; do
  srun --overlap -n1 --usched=gangs $1 bash -c 'echo \$\$ >$work/jobs/spin.\$0; end=\$((SECONDS + 15)); while [ \$SECONDS -lt \$end ]; do :; done' \$s &
done
wait
JOB
  rm -f "$work"/jobs/spin.*
  sbatch --parsable "$work/jobs/gang.sh"
}
# Samples (every 5 ms, for 1.5 s) of the two spinners' states in
# /proc/PID/stat: "both" counts samples in which both were runnable (R),
# "a" and "b" those in which each was. A frozen task is never R. The
# spinners stop by themselves after 15 s; the job is cancelled long before.
# The sampler forks nothing (builtins, a read timeout on a FIFO as its
# clock) and runs at SCHED_RR 1, so other work on the machine does not
# thin out its samples; it sleeps most of the time.
mkfifo "$work/tick"
states() {
  local a b sa sb both=0 ra=0 rb=0 total=0 rest stop now
  chrt -r -p 1 $BASHPID >/dev/null 2>&1
  exec 7<>"$work/tick"
  a=$(<"$work/jobs/spin.a") b=$(<"$work/jobs/spin.b")
  now=${EPOCHREALTIME/./}
  stop=$((now + 1500000))
  while ((now < stop)); do
    { read -r _ _ sa rest <"/proc/$a/stat" && read -r _ _ sb rest <"/proc/$b/stat"; } 2>/dev/null || break
    total=$((total + 1))
    [ "$sa" = R ] && ra=$((ra + 1))
    [ "$sb" = R ] && rb=$((rb + 1))
    [ "$sa" = R ] && [ "$sb" = R ] && both=$((both + 1))
    read -r -t 0.005 -u 7
    now=${EPOCHREALTIME/./}
  done
  ((total >= 100)) || { echo "only $total samples" >&2; return 1; }
  echo "$((100 * both / total)) $((100 * ra / total)) $((100 * rb / total)) $total"
}
spinners_up() { [ -s "$work/jobs/spin.a" ] && [ -s "$work/jobs/spin.b" ]; }
for mode in --usched-gang ""; do
  gid=$(gang_job "$mode")
  if ! wait_for 300 spinners_up; then fail "gang job $gid ($mode): spinners did not start"; continue; fi
  sleep 0.3
  [ -n "$mode" ] && gl=$("$usched" --socket "$work/n1.sock" gang list 2>&1)
  read -r pct ra rb total <<<"$(states)"
  echo "${mode:-no gang}: both R in ${pct:-?}% of ${total:-?} samples, a in ${ra:-?}%, b in ${rb:-?}%"
  scancel "$gid"
  wait_for 100 job_done "$gid"
  if [ -n "$mode" ]; then
    echo "$gl"
    gang_pct=$pct
    ((${ra:-0} >= 20 && ${rb:-0} >= 20)) || fail "--usched-gang: a step hardly ran (a ${ra:-?}%, b ${rb:-?}%)"
    [ "$(grep -c "gangs/job$gid\." <<<"$gl")" = 2 ] || fail "gang list does not show both steps' gangs"
  else
    free_pct=$pct
  fi
done
if [ -n "${gang_pct:-}" ] && [ -n "${free_pct:-}" ]; then
  ((gang_pct <= 5)) || fail "--usched-gang: both steps runnable in $gang_pct% of samples (at most 5%: the switch itself)"
  ((free_pct >= 80)) || fail "without --usched-gang both steps runnable in only $free_pct% of samples: the measure cannot tell"
  ((gang_pct <= 5 && free_pct >= 80)) && pass "gangs: both steps runnable in $gang_pct% of samples ($free_pct% without gangs)"
else
  fail "gang sampling did not complete"
fi
wait_for 50 eval '! "$usched" --socket "$work/n1.sock" gang list | grep -q "gangs/job"' || fail "gangs left after the job"

exit $((failures > 0))
