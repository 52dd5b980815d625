//! The kernel glue: one interface that makes Linux enforce what the tree
//! decides, with back ends for cgroup v2, cgroup v1 (cpuset + cpu), affinity
//! only, and a fake recorder for tests. The glue holds no policy: it is told
//! which CPUs and which class, and writes them. Every knob write goes through
//! one function (knob.h) that returns a typed error.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "usched/cpuset.h"
#include "usched/lwkt.h"
#include "usched/result.h"

namespace usched::glue {

class Guardian;

// The cpuset partition an entity asks for (cgroup v2 cpuset.cpus.partition):
// none (a member of its parent's partition), a partition root (an exclusive
// entity), or an isolated partition root (no load balancing on its CPUs).
enum class Partition { kMember, kRoot, kIsolated };
const char* partition_name(Partition p);  // "member", "root", "isolated"

// What an entity's cgroup should say. Paths are entity names ("batch/jobA");
// the back end maps them under its own top directory ("usched/").
struct GroupSettings {
  CpuSet cpus;        // never empty: the caller passes runnable CPUs
  ClassParams cls;    // weight/shares/idle; realtime ignores weight
  // cgroup v2 makes kRoot a partition when the kernel allows it (and
  // reports why not, see partition_state); kIsolated must become one or
  // apply_groups fails. Back ends without partitions (v1, affinity) keep
  // exclusion in the tree alone and refuse kIsolated.
  Partition partition = Partition::kMember;
};

// What a member's threads should get, applied at once (the fast path).
struct TaskSettings {
  CpuSet cpus;
  ClassParams cls;
};

// Where a task came from, captured at bind time so that unbind and
// --cleanup-on-exit can return it: affinity, policy, priority and the
// cgroup of each hierarchy the back end manages. Serialisable (to_string /
// parse) for the state file.
struct TaskOrigin {
  CpuSet cpus;
  int policy = 0;       // SCHED_OTHER
  int rt_priority = 0;
  int nice = 0;
  std::map<std::string, std::string> cgroups;  // hierarchy -> path relative to its mount
  std::string to_string() const;
  static Result<TaskOrigin> parse(std::string_view s);
};

// kSystemd: the systemd cgroup driver (docs/systemd.md), every cgroup a
// transient unit asked of systemd over D-Bus; the others write cgroupfs.
enum class Kind { kAuto, kCgroupV2, kCgroupV1, kAffinity, kFake, kSystemd };
const char* kind_name(Kind k);  // "cgroup-v2", "cgroup-v1", "affinity", "fake", "systemd", "auto"
Result<Kind> parse_kind(std::string_view s);  // v2|cgroup-v2|v1|cgroup-v1|affinity|fake|systemd|auto

struct Options {
  Kind kind = Kind::kAuto;
  // Roots, so that tests can hand in a temp directory laid out like them.
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string proc_root = "/proc";
  std::string sys_root = "/sys";
  // Name of our top directory in each hierarchy.
  std::string top = "usched";
  // Fake back end: append one line per operation to this file ("" = none).
  std::string fake_log;
  // Fake back end: "OP[:SUBSTRING]=ERRNO,..." makes matching operations fail,
  // e.g. "place=1" (EPERM), "apply_group:batch=28" (ENOSPC).
  std::string fake_fail;
  // Fake back end: the present and online CPUs it reports.
  std::string fake_cpus = "0-3";
  // How long a gang freeze may take to be confirmed before it counts as
  // failed (and the gang is left thawed); 0: the kernel's RR time slice
  // plus a tick, at least 40 ms. A slow CPU (an emulated VM, a host with
  // its CPUs overcommitted) delivers freezes later.
  int freeze_timeout_ms = 0;
};

class Glue {
 public:
  virtual ~Glue() = default;
  virtual Kind kind() const = 0;
  std::string name() const { return kind_name(kind()); }

  // CPUs the machine has (present) and that are online.
  virtual Result<CpuSet> present_cpus() = 0;
  virtual Result<CpuSet> online_cpus() = 0;

  // Creates (or adopts) our top directory in each hierarchy, thawed.
  virtual Status setup() = 0;
  // Creates the entity's cgroup if missing (its parent must exist), then
  // writes cpus (and mems on v1) and the class knobs. Idempotent.
  virtual Status apply_group(const std::string& entity, const GroupSettings& s) = 0;
  // The whole desired set of entity groups, in pre-order (parents first).
  // Creates missing directories and writes only changed values. cgroup v1
  // and v2 require a child's cpuset to stay inside its parent's at every
  // moment, so cpus are written in two passes: top-down old|new, then
  // bottom-up new. Groups that exist but are not listed are left alone.
  virtual Status apply_groups(const std::vector<std::pair<std::string, GroupSettings>>& all) = 0;
  // Moves any task left inside to the parent, then removes the directory.
  virtual Status remove_group(const std::string& entity) = 0;
  // Removes every entity group under our top directory that `keep` does
  // not name, deepest first, as remove_group does (tasks left inside go to
  // the parent). At start-up: uschedd killed between recording a destroy
  // and removing the group left it behind. Back ends without groups have
  // nothing to do.
  virtual Status prune_groups(const std::set<std::string>& keep) { return {}; }
  // The kernel's verdict on the entity's partition, as cgroup v2's
  // cpuset.cpus.partition reads ("member", "root", "isolated", "root
  // invalid (REASON)", ...); for a kRoot entity the kernel refused at the
  // last apply_groups: "member (not a partition: REASON)". "" where the
  // back end has no partitions.
  virtual std::string partition_state(const std::string& entity) { return ""; }

  // The fast path a caller waits for: affinity and scheduling class on every
  // thread of pid (tid == 0; threads created meanwhile are caught by
  // re-reading the task list until it is stable) or on one thread.
  virtual Status place(int pid, int tid, const TaskSettings& s) = 0;
  // Cgroup membership (may wait ~10 ms for an RCU grace period): moves the
  // process (tid == 0) or the thread into the entity's cgroup. For realtime
  // members (s.cls) the cpu hierarchy's root is used on v1 (RT group
  // scheduling gives child groups no runtime). Attaching a task to a cpuset
  // (cpuset_attach, v1 and v2) resets its affinity to the cpuset's CPUs, so
  // s.cpus is applied again afterwards: a locked member is pinned to fewer
  // CPUs than its group.
  virtual Status join_group(int pid, int tid, const std::string& entity, const TaskSettings& s) = 0;

  virtual Result<TaskOrigin> capture_origin(int pid, int tid) = 0;
  // Told once per new member, before it is placed: whether it was started
  // bound (the caller binds itself, as `usched run` does, or its own child,
  // as rfork does) or is an existing process bound from outside. Returns
  // what the caller should be told when the member gets less than a full
  // placement ("" otherwise): the systemd driver leaves a process of
  // another unit in that unit, with affinity and class only.
  virtual std::string note_bind(int pid, int tid, bool started) { return ""; }
  // Puts the task back: cgroups (or the hierarchy root when the old group is
  // gone), affinity, policy. A task that has exited is not an error.
  virtual Status restore(int pid, int tid, const TaskOrigin& o) = 0;

  // Removes every cgroup under our top directory, deepest first, moving any
  // task left to the hierarchy root. Used by --cleanup-on-exit.
  virtual Status teardown() = 0;

  // ---- gang freezer (the co-scheduler's enforcement) ----
  // One freezer group per gang ("<top>/<entity>/gang:<G>" in the v1 freezer
  // hierarchy, under the entity's cgroup on v2; a set of pids for the
  // SIGSTOP fallback). A gang group is thawed when made.
  //
  // Moves a process (tid == 0: all its threads, and those it creates later
  // inherit the group) or one thread into the gang's freezer group.
  virtual Status join_gang(const std::string& entity, const std::string& gang, int pid, int tid) = 0;
  // Before single threads of pid (a thread name glob) join the gang: makes
  // the freezer take threads of this process one by one. cgroup v2 freezes
  // a group, and a process's threads share its group unless it is the root
  // of a threaded subtree: the process gets one of its own in the entity,
  // with a threaded group for the gang in it. Refused with the reason, and
  // nothing changed, when the kernel will not make it. The v1 freezer takes
  // threads as they are: nothing to do.
  virtual Status isolate_threads(const std::string& entity, const std::string& gang, int pid) { return {}; }
  // Takes a task out of the gang's freezer group (back to the hierarchy's
  // root, or to the entity's members on v2). An exited task is not an error.
  virtual Status leave_gang(const std::string& entity, const std::string& gang, int pid, int tid) = 0;
  // Freezes or thaws the gang and returns once the kernel confirms it (v1
  // freezer.state FROZEN, v2 cgroup.events "frozen 1", every process in
  // state T for SIGSTOP). A v1 freeze stuck in FREEZING (it races exec) is
  // thawed and retried; if it still does not settle, the gang is left
  // thawed and the error returned.
  virtual Status freeze_gang(const std::string& entity, const std::string& gang, bool frozen) = 0;
  // Thaws the gang, moves its tasks back to the hierarchy root and removes
  // the group.
  virtual Status remove_gang(const std::string& entity, const std::string& gang) = 0;
  // Thaws every gang group under our top directory (start-up and every stop
  // path: nothing may stay frozen when the daemon is gone).
  virtual Status thaw_all() = 0;
  // How gangs are enforced: "cgroup-v1 freezer", "cgroup-v2 cgroup.freeze",
  // "SIGSTOP/SIGCONT", "fake".
  virtual std::string freezer() const = 0;

  // Hands the back end the guardian (guardian.h; not owned, outlives the
  // glue's use of it): from now on the back end tells it, before anything
  // is frozen, what it may freeze, so that the guardian can thaw it all
  // when uschedd dies.
  void attach_guardian(Guardian* g) {
    guardian_ = g;
    if (g) tell_guardian();
  }

 protected:
  // What may be frozen so far (the freezer trees; stopped processes).
  virtual void tell_guardian() {}
  Guardian* guardian_ = nullptr;
};

// "gang:" cannot start an entity name component ([A-Za-z0-9_.-]), so a gang
// group never collides with a child entity's directory.
inline std::string gang_dir_name(const std::string& gang) { return "gang:" + gang; }

Result<std::unique_ptr<Glue>> make_glue(const Options& o);
// What Kind::kAuto picks, with the reason ("cgroup v1: cpuset at
// /sys/fs/cgroup/cpuset, cpu at /sys/fs/cgroup/cpu").
std::pair<Kind, std::string> probe(const Options& o);
// Whether the systemd driver can run here (PID 1 is systemd, cgroup v2 at
// o.cgroup_root, systemd answers on the system bus), with the reason.
std::pair<bool, std::string> probe_systemd(const Options& o);

}  // namespace usched::glue
