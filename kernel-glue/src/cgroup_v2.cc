// cgroup v2 back end: <root>/<top>/<entity path>, with the members of an
// entity in the leaf "<entity>/@members". v2 forbids processes in a cgroup
// that distributes controllers to children ("no internal processes"), and
// entities have both members and child entities; '@' cannot appear in an
// entity name, so the leaf never collides with a child.
//
// Gangs: "<entity>/gang:<G>" takes whole processes. A process some of
// whose threads are gang members (a thread name glob) gets a group of its
// own, "<entity>/@pid:<PID>", made the root of a threaded subtree: its
// gang threads sit in the threaded child "@pid:<PID>/gang:<G>" (written to
// cgroup.threads), the others in "@pid:<PID>" itself, never frozen. A
// subtree of its own and not the process's current group, because only an
// empty group can become threaded and a threaded subtree takes the threads
// of its own processes only (cgroup-v2.rst, "Threads"). No controller is
// enabled inside it: every thread stays under the cpuset and cpu weight of
// "@pid:<PID>", a domain group beside "@members" with the entity's CPUs.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>

#include "freezer.h"
#include "internal.h"
#include "usched/glue/guardian.h"

namespace usched::glue::detail {
namespace {

constexpr const char* kMembers = "@members";
// "@pid:<PID>": a process's own threaded subtree (its gang threads).
constexpr const char* kThreadRoot = "@pid:";
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
  // there keeps it inside the entity's cpuset. A single thread goes to the
  // gang's group in its process's threaded subtree (isolate_threads).
  Status join_gang(const std::string& entity, const std::string& gang, int pid, int tid) override {
    if (Status st = check_entity(entity); !st) return st;
    if (tid != 0) {
      // Only a process bound to this entity as a whole gets a threaded
      // subtree here: a thread bound on its own leaves its process where
      // it is, and moving the process would move its other threads too.
      auto cg = read_proc_cgroup(proc_, pid, 0);
      if (!cg) return cg.status();
      const std::string where = unified_path(*cg);
      if (where != members(entity) && where != thread_root(entity, pid)) {
        return precondition("cgroup v2 takes single threads of pid " + std::to_string(pid) + " into gang " + gang +
                            " only while the whole process is bound to " + entity + " (it is in " + where +
                            "): bind it, or add its threads with --threads");
      }
      if (Status st = isolate_threads(entity, gang, pid); !st) return st;
      const std::string dir = thread_root(entity, pid) + "/" + gang_dir_name(gang);
      return write_knob(dir + "/cgroup.threads", std::to_string(tid));
    }
    const std::string dir = gang_dir(entity, gang);
    if (auto st = make_dir(dir); !st) return st;
    return write_knob(dir + "/cgroup.procs", std::to_string(pid));
  }
  Status leave_gang(const std::string& entity, const std::string&, int pid, int tid) override {
    if (Status st = check_entity(entity); !st) return st;
    const std::string root = thread_root(entity, pid);
    if (tid != 0) {
      // Back to the process's thread root, unless the thread is not in its
      // threaded subtree (then it is in no gang group of ours either).
      auto cg = read_proc_cgroup(proc_, pid, tid);
      if (!cg) return cg.status().code() == Code::kNotFound ? Status() : cg.status();
      const std::string where = unified_path(*cg);
      if (where.rfind(root + "/", 0) != 0) return {};
      auto st = write_knob(root + "/cgroup.threads", std::to_string(tid));
      if (st.err() == ESRCH) return {};
      return st;
    }
    auto st = write_knob(members(entity) + "/cgroup.procs", std::to_string(pid));
    if (!st && st.err() != ESRCH) return st;
    return remove_thread_root(root);
  }

  // The process's own threaded subtree in the entity, with the gang's
  // threaded group in it, and the process moved in (from "@members", or
  // from wherever it is: it is bound to this entity). Idempotent. When the
  // kernel refuses any step, what this call made is removed again and the
  // error says which step and why.
  Status isolate_threads(const std::string& entity, const std::string& gang, int pid) override {
    if (Status st = check_entity(entity); !st) return st;
    const std::string root = thread_root(entity, pid);
    const std::string dir = root + "/" + gang_dir_name(gang);
    const bool had_root = knob_exists(root), had_dir = knob_exists(dir);
    auto undo = [&] {
      if (!had_dir) (void)remove_dir(dir);
      if (!had_root) (void)remove_dir(root);
    };
    auto refused = [&](const std::string& step, const Status& why) {
      undo();
      std::string hint;
      if (why.message().find("EOPNOTSUPP") != std::string::npos) {
        hint = "; the kernel makes a group threaded only when it is empty, its parent is a domain group "
               "without domain controllers (memory, io, pids) enabled, and the process's threads are all "
               "inside one threaded subtree";
      }
      return Status(why.code() == Code::kInternal ? Code::kFailedPrecondition : why.code(),
                    "cannot give pid " + std::to_string(pid) + " a threaded cgroup of its own in " + entity + " (" +
                        step + "): " + why.message() + hint + "; nothing was changed");
    };
    auto cg = read_proc_cgroup(proc_, pid, 0);
    if (!cg) return cg.status();
    if (auto st = make_dir(root); !st) return refused("making " + root, st);
    if (auto st = make_dir(dir); !st) return refused("making " + dir, st);
    auto type = read_knob_trimmed(dir + "/cgroup.type");
    if (!type) return refused("reading its type", type.status());
    if (type.value() != "threaded") {
      if (auto st = write_knob(dir + "/cgroup.type", "threaded"); !st) return refused("making the gang's group threaded", st);
    }
    if (unified_path(*cg) == root) return {};
    // Attaching a process to another cpuset (cpuset_attach) resets every
    // thread's affinity to that cpuset's CPUs; the move changes nothing
    // else, so each thread gets back what it had.
    std::map<int, CpuSet> had;
    (void)for_each_thread(proc_, pid, 0, [&](int t) -> KnobStatus {
      auto a = get_affinity(t);
      if (a) had[t] = a.value();
      return {};
    });
    if (auto st = write_knob(root + "/cgroup.procs", std::to_string(pid)); !st) {
      return refused("moving the process into " + root, st);
    }
    for (const auto& [t, cpus] : had) (void)set_affinity(t, cpus);
    return {};
  }

  Status freeze_gang(const std::string& entity, const std::string& gang, bool frozen) override {
    std::vector<std::string> dirs = gang_dirs(entity, gang);
    if (frozen) {
      for (const std::string& d : dirs)
        if (Status st = evict_kernel_threads(entity, gang, d); !st) return st;
    }
    if (dirs.empty()) return {};  // no member has joined yet: nothing to stop
    return cgroup_freeze(dirs, true, frozen, settle_);
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
  // In a threaded group (a process's gang threads) cgroup.procs cannot be
  // read; its cgroup.threads lists the tasks, a kernel thread among them as
  // its own pid.
  Status evict_kernel_threads(const std::string& entity, const std::string& gang, const std::string& dir) {
    const bool threaded = dir != gang_dir(entity, gang);
    auto procs = read_knob(dir + (threaded ? "/cgroup.threads" : "/cgroup.procs"));
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
    // Processes with gang threads go back to "@members" whole, and their
    // threaded subtrees go, unless another gang still holds a thread there.
    for (const std::string& root : thread_roots(entity)) {
      const std::string d = root + "/" + gang_dir_name(gang);
      if (!knob_exists(d)) continue;
      if (Status st = cgroup_freeze(d, true, false, settle_); !st) return st;
      if (subdirs_deepest_first(root).size() > 1) {
        auto st = move_ids(d + "/cgroup.threads", root + "/cgroup.threads");
        if (st) st = remove_dir(d);
        if (!st) return st;
        continue;
      }
      if (Status st = move_ids(root + "/cgroup.procs", members(entity) + "/cgroup.procs"); !st) return st;
      if (Status st = remove_thread_root(root); !st) return st;
    }
    const std::string dir = gang_dir(entity, gang);
    if (!knob_exists(dir)) return {};
    if (Status st = cgroup_freeze(dir, true, false, settle_); !st) return st;
    if (Status st = move_ids(dir + "/cgroup.procs", members(entity) + "/cgroup.procs"); !st) return st;
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
    // A process's threaded subtree whose process is gone (it exited while
    // no uschedd ran) goes; one still populated is adopted with its gang.
    for (const std::string& d : subdirs_deepest_first(top_)) {
      if (!is_thread_root(d)) continue;
      auto ev = read_knob(d + "/cgroup.events");
      if (ev && ev.value().find("populated 0") != std::string::npos) (void)remove_thread_root(d);
    }
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
      // A threaded group goes with its thread root, which its process
      // must leave first.
      if (is_thread_root(d.substr(0, d.rfind('/')))) continue;
      // An entity's own leaves ("@members", "gang:G", "@pid:N" and its
      // "gang:G") go with it.
      std::string entity = d.substr(top_.size() + 1);
      for (;;) {
        const auto slash = entity.rfind('/');
        const std::string last = slash == std::string::npos ? entity : entity.substr(slash + 1);
        if (last[0] != '@' && last.rfind("gang:", 0) != 0) break;
        entity = slash == std::string::npos ? "" : entity.substr(0, slash);
      }
      if (entity.empty() || keep.count(entity)) continue;
      const std::string parent = parent_entity(entity);
      const std::string to = parent.empty() ? root_ + "/cgroup.procs" : members(parent) + "/cgroup.procs";
      Status st = cgroup_thaw_tree(d, true, settle_);  // a frozen task must not leave frozen
      // A process leaves its threaded subtree whole, before the subtree's
      // threaded groups (which list no processes) are removed.
      if (st) st = move_ids(d + "/cgroup.procs", to);
      for (const std::string& sub : subdirs_deepest_first(d))
        if (st) st = remove_dir(sub);
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
    // A process in its own threaded subtree in this entity (gang threads)
    // is in the entity already; a move to "@members" would take its
    // threads out of their gang.
    auto cg = read_proc_cgroup(proc_, pid, 0);
    if (!cg) return cg.status();
    if (unified_path(*cg) != thread_root(entity, pid)) {
      if (auto st = write_knob(members(entity) + "/cgroup.procs", std::to_string(pid)); !st) return st;
    }
    // cpuset_attach reset every thread's affinity to the cgroup's CPUs.
    return for_each_thread(proc_, pid, 0, [&](int t) { return set_affinity(t, s.cpus); });
  }

  Result<TaskOrigin> capture_origin(int pid, int tid) override { return capture_sched_and_unified(proc_, pid, tid); }

  Status restore(int pid, int tid, const TaskOrigin& o) override {
    auto it = o.cgroups.find("unified");
    if (tid == 0 && it != o.cgroups.end()) {
      std::string dir = it->second == "/" ? root_ : root_ + it->second;
      const std::string id = std::to_string(pid);
      auto st = write_knob(dir + "/cgroup.procs", id);
      if (st.err() == ENOENT) st = write_knob(root_ + "/cgroup.procs", id);  // the old group is gone
      if (!st && st.err() != ESRCH) return st;  // ESRCH: the task has exited
      // Its threaded subtree, if it had one, is empty now.
      for (const std::string& d : subdirs_deepest_first(top_))
        if (d.size() > top_.size() && d.substr(d.rfind('/') + 1) == kThreadRoot + std::to_string(pid))
          if (Status rs = remove_thread_root(d); !rs) return rs;
      if (st.err() == ESRCH) return {};
    }
    return restore_sched(proc_, pid, tid, o);
  }

  Status teardown() override {
    if (!knob_exists(top_)) return {};
    auto dirs = subdirs_deepest_first(top_);
    dirs.push_back(top_);
    Status first;
    // Processes leave their threaded subtrees whole first: the threaded
    // groups below list no processes and empty only then.
    for (const std::string& d : dirs) {
      if (!is_thread_root(d)) continue;
      Status st = move_ids(d + "/cgroup.procs", root_ + "/cgroup.procs");
      if (!st && first) first = st;
    }
    for (const std::string& d : dirs) {
      Status st = move_ids(d + "/cgroup.procs", root_ + "/cgroup.procs");
      if (st) st = remove_dir(d);
      if (!st && first) first = st;  // keep going: remove as much as we can
    }
    return first;
  }

 private:
  std::string members(const std::string& entity) const { return top_ + "/" + entity + "/" + kMembers; }
  std::string thread_root(const std::string& entity, int pid) const {
    return top_ + "/" + entity + "/" + kThreadRoot + std::to_string(pid);
  }
  static bool is_thread_root(const std::string& dir) {
    return dir.compare(dir.rfind('/') + 1, std::strlen(kThreadRoot), kThreadRoot) == 0;
  }
  // The processes' threaded subtrees in the entity.
  // Read at every freeze: the entity's own directory only, not below.
  std::vector<std::string> thread_roots(const std::string& entity) const {
    namespace fs = std::filesystem;
    std::vector<std::string> out;
    std::error_code ec;
    for (fs::directory_iterator it(top_ + "/" + entity, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string d = it->path().string();
      if (is_thread_root(d) && it->is_directory(ec)) out.push_back(d);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  // Every group that holds the gang's tasks: its own, for whole processes,
  // and its group in each process's threaded subtree.
  std::vector<std::string> gang_dirs(const std::string& entity, const std::string& gang) const {
    std::vector<std::string> out;
    if (knob_exists(gang_dir(entity, gang))) out.push_back(gang_dir(entity, gang));
    for (const std::string& r : thread_roots(entity))
      if (knob_exists(r + "/" + gang_dir_name(gang))) out.push_back(r + "/" + gang_dir_name(gang));
    return out;
  }
  // Thaws and removes a threaded subtree its process has left (or is
  // leaving by exiting); one still holding threads stays (EBUSY).
  Status remove_thread_root(const std::string& root) {
    if (!knob_exists(root)) return {};
    if (Status st = cgroup_thaw_tree(root, true, settle_); !st) return st;
    for (const std::string& d : subdirs_deepest_first(root))
      if (auto st = remove_dir(d); !st) return st;
    return remove_dir(root);
  }
  // The absolute directory of the "0::" line of /proc/PID/cgroup.
  std::string unified_path(const std::map<std::string, std::string>& cg) const {
    auto it = cg.find("unified");
    if (it == cg.end()) return "";
    return it->second == "/" ? root_ : root_ + it->second;
  }

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
