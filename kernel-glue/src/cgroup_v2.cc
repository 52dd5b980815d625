// cgroup v2 back end: <root>/<top>/<entity path>, with the members of an
// entity in the leaf "<entity>/@members". v2 forbids processes in a cgroup
// that distributes controllers to children ("no internal processes"), and
// entities have both members and child entities; '@' cannot appear in an
// entity name, so the leaf never collides with a child.
#include <cerrno>
#include <map>
#include <mutex>
#include <sstream>

#include "freezer.h"
#include "internal.h"
#include "usched/glue/guardian.h"

namespace usched::glue::detail {
namespace {

constexpr const char* kMembers = "@members";
constexpr const char* kPartition = "cpuset.cpus.partition";

// "root invalid (Parent is not a partition root)" -> "Parent is not a
// partition root"; "" for a valid verdict ("member", "root", "isolated").
std::string invalid_reason(const std::string& verdict) {
  if (verdict.find(" invalid") == std::string::npos) return "";
  const auto open = verdict.find('(');
  const auto close = verdict.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return verdict;
  return verdict.substr(open + 1, close - open - 1);
}

// The mode of a verdict: its first word ("root invalid (...)" -> "root").
std::string mode_of(const std::string& verdict) { return verdict.substr(0, verdict.find(' ')); }

bool has_word(const std::string& text, const std::string& word) {
  std::istringstream in(text);
  std::string w;
  while (in >> w)
    if (w == word) return true;
  return false;
}

class V2Glue final : public Glue {
 public:
  explicit V2Glue(const Options& o) : o_(o), proc_(o.proc_root), root_(o.cgroup_root), top_(root_ + "/" + o.top) {}

  Kind kind() const override { return Kind::kCgroupV2; }
  Result<CpuSet> present_cpus() override { return read_cpulist(o_.sys_root + "/devices/system/cpu/present"); }
  Result<CpuSet> online_cpus() override { return read_cpulist(o_.sys_root + "/devices/system/cpu/online"); }

  // Gang groups sit beside "@members" under the entity: moving a process
  // there keeps it inside the entity's cpuset.
  Status join_gang(const std::string& entity, const std::string& gang, int pid, int tid) override {
    if (Status st = check_entity(entity); !st) return st;
    const std::string dir = gang_dir(entity, gang);
    if (auto st = make_dir(dir); !st) return st;
    // Single threads need a threaded subtree (cgroup.threads): whole
    // processes only here.
    if (tid != 0 && tid != pid) {
      return invalid("cgroup v2 freezes whole processes: add pid " + std::to_string(pid) + ", not thread " +
                     std::to_string(tid) + ", to gang " + gang);
    }
    return write_knob(dir + "/cgroup.procs", std::to_string(pid));
  }
  Status leave_gang(const std::string& entity, const std::string&, int pid, int) override {
    auto st = write_knob(top_ + "/" + entity + "/" + kMembers + "/cgroup.procs", std::to_string(pid));
    if (st.err() == ESRCH) return {};
    return st;
  }
  Status freeze_gang(const std::string& entity, const std::string& gang, bool frozen) override {
    if (frozen) {
      if (Status st = evict_kernel_threads(entity, gang); !st) return st;
    }
    return cgroup_freeze(gang_dir(entity, gang), true, frozen, settle_);
  }
  // KVM starts kernel threads (kvm-pit/PID, kvm-nx-lpage-recovery-PID) in
  // the cgroups of the VM process that creates the VM
  // (cgroup_attach_task_all), so they land in the gang's group. The v2
  // freezer never freezes a kernel thread (cgroup_freeze_task skips
  // PF_KTHREAD) yet counts it among the group's tasks, so a group holding
  // one never reports "frozen 1": every freeze would wait out the settle
  // bound and be undone. So before each freeze, kernel threads found in the
  // group go to the entity's "@members" (placed, never frozen, as they are
  // not the gang's work). One that cannot be moved fails the freeze at once,
  // naming it, with the gang thawed: no wait, no half-frozen gang.
  Status evict_kernel_threads(const std::string& entity, const std::string& gang) {
    const std::string dir = gang_dir(entity, gang);
    auto procs = read_knob(dir + "/cgroup.procs");
    if (!procs) return procs.status();
    std::istringstream in(procs.value());
    int pid = 0;
    while (in >> pid) {
      auto t = proc_.task(pid);
      if (!t || !t->kernel_thread) continue;
      const std::string to = top_ + "/" + entity + "/" + kMembers + "/cgroup.procs";
      if (auto st = write_knob(to, std::to_string(pid)); !st && st.err() != ESRCH) {
        return Status(Code::kFailedPrecondition,
                      "gang " + gang + " holds kernel thread " + std::to_string(pid) + " (" + t->comm +
                          "), which a cgroup v2 freezer never freezes, and it cannot be moved out (" +
                          st.status().message() + "); the gang is left thawed");
      }
    }
    return {};
  }
  Status remove_gang(const std::string& entity, const std::string& gang) override {
    const std::string dir = gang_dir(entity, gang);
    if (!knob_exists(dir)) return {};
    if (Status st = cgroup_freeze(dir, true, false, settle_); !st) return st;
    const std::string members = top_ + "/" + entity + "/" + kMembers;
    if (Status st = move_ids(dir + "/cgroup.procs", members + "/cgroup.procs"); !st) return st;
    return remove_dir(dir);
  }
  Status thaw_all() override { return cgroup_thaw_tree(top_, true, settle_); }
  std::string freezer() const override { return "cgroup-v2 cgroup.freeze"; }
  void tell_guardian() override { guardian_->watch_tree(top_, true); }
  std::string gang_dir(const std::string& entity, const std::string& gang) const {
    return top_ + "/" + entity + "/" + gang_dir_name(gang);
  }

  Status setup() override {
    if (Status st = enable_controllers(root_); !st) return st;
    if (auto st = make_dir(top_); !st) return st;
    if (Status st = enable_controllers(top_); !st) return st;
    // Never leave our subtree frozen (a daemon that died mid-quantum).
    bool has_freeze = false;
    auto fr = read_optional(top_ + "/cgroup.freeze", has_freeze);
    if (!fr) return fr.status();
    if (has_freeze && fr.value() == "1")
      if (auto st = write_knob(top_ + "/cgroup.freeze", "0"); !st) return st;
    if (Status st = cgroup_thaw_tree(top_, true, settle_); !st) return st;
    return {};
  }

  Status apply_group(const std::string& entity, const GroupSettings& s) override {
    return apply_groups({{entity, s}});
  }

  Status apply_groups(const std::vector<std::pair<std::string, GroupSettings>>& all) override {
    for (const auto& [e, s] : all) {
      if (Status st = check_entity(e); !st) return st;
      if (s.cpus.empty()) return invalid("apply_group " + e + ": empty cpu set");
    }
    // One entity at a time in pre-order: a child's cpuset.* and cpu.* files
    // appear only once its parent's subtree_control enables the controllers.
    std::vector<CpusWrite> cpus;
    for (const auto& [e, s] : all) {
      const std::string dir = top_ + "/" + e;
      if (auto st = make_dir(dir); !st) return st;
      auto c = read_cpulist(dir + "/cpuset.cpus");
      if (!c) return c.status();
      auto w = read_knob_trimmed(dir + "/cpu.weight");
      if (!w) return w.status();
      bool has_idle = false;
      auto id = read_optional(dir + "/cpu.idle", has_idle);  // Linux 5.15+
      if (!id) return id.status();

      if (Status st = enable_controllers(dir); !st) return st;
      if (auto st = make_dir(dir + "/" + kMembers); !st) return st;
      // As on v1: an idle group refuses weight writes, so leave idle
      // first and write the weight only to a group that is not idle.
      const bool idle = wants_idle(s.cls) && has_idle;
      if (has_idle && !idle && id.value() != "0")
        if (auto st = write_knob(dir + "/cpu.idle", "0"); !st) return st;
      std::string weight = std::to_string(s.cls.cpu_weight);
      if (!idle && w.value() != weight)
        if (auto st = write_knob(dir + "/cpu.weight", weight); !st) return st;
      if (idle && id.value() != "1")
        if (auto st = write_knob(dir + "/cpu.idle", "1"); !st) return st;
      cpus.push_back({dir + "/cpuset.cpus", c.value(), s.cpus});
    }
    return apply_partitions(all, cpus);
  }

  std::string partition_state(const std::string& entity) override {
    bool exists = false;
    auto v = read_optional(top_ + "/" + entity + "/" + kPartition, exists);
    if (!v || !exists) return "";
    std::lock_guard lock(refused_mu_);
    if (auto it = refused_.find(entity); it != refused_.end() && v.value() == "member")
      return "member (not a partition: " + it->second + ")";
    return v.value();
  }

  Status remove_group(const std::string& entity) override {
    if (Status st = check_entity(entity); !st) return st;
    const std::string dir = top_ + "/" + entity;
    if (!knob_exists(dir)) return {};
    std::string parent = parent_entity(entity);
    // A top-level entity's members go back to the root (our top directory
    // distributes controllers, so it may hold no processes itself).
    std::string to = parent.empty() ? root_ + "/cgroup.procs" : members(parent) + "/cgroup.procs";
    if (Status st = move_ids(members(entity) + "/cgroup.procs", to); !st) return st;
    if (auto st = remove_dir(members(entity)); !st) return st;
    if (auto st = remove_dir(dir); !st) return st;
    return {};
  }

  Status prune_groups(const std::set<std::string>& keep) override {
    Status first;
    for (const std::string& d : subdirs_deepest_first(top_)) {
      // An entity's own leaves ("@members", "gang:G") go with it.
      std::string entity = d.substr(top_.size() + 1);
      const auto slash = entity.rfind('/');
      const std::string last = slash == std::string::npos ? entity : entity.substr(slash + 1);
      if (last == kMembers || last.rfind("gang:", 0) == 0) entity = slash == std::string::npos ? "" : entity.substr(0, slash);
      if (entity.empty() || keep.count(entity)) continue;
      const std::string parent = parent_entity(entity);
      const std::string to = parent.empty() ? root_ + "/cgroup.procs" : members(parent) + "/cgroup.procs";
      Status st = cgroup_freeze(d, true, false, settle_);  // a frozen task must not leave frozen
      if (st) st = move_ids(d + "/cgroup.procs", to);
      if (st) st = remove_dir(d);
      if (!st && first) first = st;  // keep going: remove as much as we can
    }
    return first;
  }

  Status place(int pid, int tid, const TaskSettings& s) override { return place_task(proc_, pid, tid, s); }

  Status join_group(int pid, int tid, const std::string& entity, const TaskSettings& s) override {
    if (Status st = check_entity(entity); !st) return st;
    // Thread members get affinity and class only (place): putting single
    // threads into cgroups needs a threaded subtree, and "threaded" spreads
    // to the whole subtree, which then loses the cpu controller's weight
    // across processes and refuses domain children. A thread's cpuset is
    // enforced by its affinity instead.
    if (tid != 0) return {};
    // Realtime members use the same directory: v2 has no per-group RT
    // runtime unless CONFIG_RT_GROUP_SCHED, which v2 setups leave off.
    if (auto st = write_knob(members(entity) + "/cgroup.procs", std::to_string(pid)); !st) return st;
    // cpuset_attach reset every thread's affinity to the cgroup's CPUs.
    return for_each_thread(proc_, pid, 0, [&](int t) { return set_affinity(t, s.cpus); });
  }

  Result<TaskOrigin> capture_origin(int pid, int tid) override {
    auto o = capture_sched(pid, tid);
    if (!o) return o;
    auto cg = read_proc_cgroup(proc_, pid, tid);
    if (!cg) return cg.status();
    if (auto it = cg->find("unified"); it != cg->end()) o->cgroups["unified"] = it->second;
    return o;
  }

  Status restore(int pid, int tid, const TaskOrigin& o) override {
    auto it = o.cgroups.find("unified");
    if (tid == 0 && it != o.cgroups.end()) {
      std::string dir = it->second == "/" ? root_ : root_ + it->second;
      const std::string id = std::to_string(pid);
      auto st = write_knob(dir + "/cgroup.procs", id);
      if (st.err() == ENOENT) st = write_knob(root_ + "/cgroup.procs", id);  // the old group is gone
      if (st.err() == ESRCH) return {};                                       // the task has exited
      if (!st) return st;
    }
    return restore_sched(proc_, pid, tid, o);
  }

  Status teardown() override {
    if (!knob_exists(top_)) return {};
    auto dirs = subdirs_deepest_first(top_);
    dirs.push_back(top_);
    Status first;
    for (const std::string& d : dirs) {
      Status st = move_ids(d + "/cgroup.procs", root_ + "/cgroup.procs");
      if (st) st = remove_dir(d);
      if (!st && first) first = st;  // keep going: remove as much as we can
    }
    return first;
  }

 private:
  std::string members(const std::string& entity) const { return top_ + "/" + entity + "/" + kMembers; }

  // "+cpuset +cpu" in dir's subtree_control, for those of the two that dir
  // has (cgroup.controllers) and has not enabled yet.
  Status enable_controllers(const std::string& dir) {
    auto have = read_knob(dir + "/cgroup.controllers");
    if (!have) return have.status();
    auto on = read_knob(dir + "/cgroup.subtree_control");
    if (!on) return on.status();
    std::string add;
    for (const char* c : {"cpuset", "cpu"})
      if (has_word(have.value(), c) && !has_word(on.value(), c)) add += std::string(add.empty() ? "" : " ") + "+" + c;
    if (add.empty()) return {};
    return write_knob(dir + "/cgroup.subtree_control", add);
  }

  // Cpuset partitions (cgroup-v2.rst, "cpuset.cpus.partition"): a partition
  // root's parent must be a valid partition root, so our top directory
  // becomes one (with the CPUs of all our entities: the kernel refuses it
  // when that is every CPU of a parent that holds processes) while any
  // entity wants a partition, and goes back to a member when none does.
  // The kernel takes every write and says in the file whether it honours
  // it ("root invalid (REASON)"), so each write is read back: an invalid
  // kRoot goes back to member and the reason is kept for partition_state;
  // an invalid kIsolated goes back to member and fails the call.
  //
  // Order: partitions that go away first (deepest first, the top last),
  // then the cpus (two passes), then partitions that come (the top first),
  // so that no partition exists with CPUs it is about to lose or a sibling
  // is about to take.
  Status apply_partitions(const std::vector<std::pair<std::string, GroupSettings>>& all, std::vector<CpusWrite>& cpus) {
    bool want_any = false;
    CpuSet used;
    for (const auto& [e, s] : all) {
      want_any |= s.partition != Partition::kMember;
      used = used | s.cpus;
    }
    const std::string top_file = top_ + "/" + kPartition;
    bool top_has = false;
    auto top_now = read_optional(top_file, top_has);
    if (!top_now) return top_now.status();
    if (!top_has) {
      // No partitions in this kernel (before 5.11) or no cpuset here.
      std::lock_guard lock(refused_mu_);
      refused_.clear();
      for (const auto& [e, s] : all) {
        if (s.partition == Partition::kIsolated)
          return precondition("'isolated' (" + e + ") needs " + top_file + ", which this kernel does not have");
        if (s.partition == Partition::kRoot) refused_[e] = "this kernel has no " + std::string(kPartition);
      }
      return write_cpus_two_pass(cpus);
    }
    // 1. Partitions that go away, deepest first.
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      if (it->second.partition != Partition::kMember) continue;
      if (Status st = set_partition(top_ + "/" + it->first, "member"); !st) return st;
    }
    if (!want_any && mode_of(top_now.value()) != "member")
      if (Status st = set_partition(top_, "member"); !st) return st;
    // 2. The cpus, with the top's: our entities' CPUs while it is to be a
    // partition root, else empty (all of its parent's, as setup made it).
    auto top_cpus = read_cpulist(top_ + "/cpuset.cpus");
    if (!top_cpus) return top_cpus.status();
    const CpuSet top_want = want_any ? used : CpuSet();
    cpus.insert(cpus.begin(), {top_ + "/cpuset.cpus", top_cpus.value(), top_want});
    if (Status st = write_cpus_two_pass(cpus); !st) return st;
    // 3. Partitions that come, the top first.
    std::map<std::string, std::string> refused;
    Status result;
    if (want_any) {
      auto verdict = make_partition(top_, "root");
      if (!verdict) return verdict.status();
      if (const std::string why = invalid_reason(verdict.value()); !why.empty()) {
        if (Status st = set_partition(top_, "member"); !st) return st;
        const std::string because = "the kernel refused to make " + top_ + " (CPUs " + used.to_string() +
                                    ") a partition root, which every partition of ours needs: " + why +
                                    (why.find("distribute") != std::string::npos
                                         ? " (it would take every CPU from the processes outside usched; "
                                           "leave at least one CPU out of every scheduler)"
                                         : "");
        for (const auto& [e, s] : all) {
          if (s.partition == Partition::kMember) continue;
          if (s.partition == Partition::kIsolated && result) result = precondition("'isolated' " + e + ": " + because);
          refused[e] = because;
        }
      } else {
        for (const auto& [e, s] : all) {
          if (s.partition == Partition::kMember) continue;
          const std::string dir = top_ + "/" + e;
          auto v = make_partition(dir, partition_name(s.partition));
          if (!v) return v.status();
          const std::string why = invalid_reason(v.value());
          if (why.empty()) continue;
          // Nothing half-made: the kernel's refusal leaves a member.
          if (Status st = set_partition(dir, "member"); !st) return st;
          if (s.partition == Partition::kIsolated && result)
            result = precondition("'isolated' " + e + ": the kernel refused the partition (" + v.value() +
                                  "); it needs CPUs that no sibling cgroup uses and a parent that is a valid "
                                  "partition root (an exclusive scheduler, or the top)");
          refused[e] = "the kernel said " + v.value();
        }
      }
    }
    std::lock_guard lock(refused_mu_);
    refused_ = std::move(refused);
    return result;
  }

  // Writes mode unless the file's mode is that already; returns the verdict read back.
  KnobResult<std::string> make_partition(const std::string& dir, const std::string& mode) {
    auto now = read_knob_trimmed(dir + "/" + kPartition);
    if (!now) return now;
    if (mode_of(now.value()) != mode) {
      if (auto st = write_knob(dir + "/" + kPartition, mode); !st) return st.error();
      return read_knob_trimmed(dir + "/" + kPartition);
    }
    return now;
  }
  Status set_partition(const std::string& dir, const std::string& mode) {
    auto v = make_partition(dir, mode);
    return v ? Status() : v.status();
  }

  Options o_;
  ProcFs proc_;
  const std::chrono::milliseconds settle_ = freeze_settle(proc_, o_.freeze_timeout_ms);  // read once
  std::string root_, top_;
  std::mutex refused_mu_;  // partition_state is read from the API's threads
  std::map<std::string, std::string> refused_;  // kRoot entity -> why it is a member
};

}  // namespace

std::unique_ptr<Glue> make_v2(const Options& o) { return std::make_unique<V2Glue>(o); }

}  // namespace usched::glue::detail
