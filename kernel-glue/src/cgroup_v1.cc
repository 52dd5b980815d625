// cgroup v1 back end: one directory per entity in the cpuset and the cpu
// hierarchies, under <hierarchy>/<top>/.
#include <cerrno>

#include "freezer.h"
#include "internal.h"
#include "usched/glue/guardian.h"

namespace usched::glue::detail {
namespace {

class V1Glue final : public Glue {
 public:
  V1Glue(const Options& o, std::string cpuset_root, std::string cpu_root)
      : o_(o), proc_(o.proc_root), cs_root_(std::move(cpuset_root)), cpu_root_(std::move(cpu_root)) {}

  Kind kind() const override { return Kind::kCgroupV1; }
  Result<CpuSet> present_cpus() override { return read_cpulist(o_.sys_root + "/devices/system/cpu/present"); }
  Result<CpuSet> online_cpus() override { return read_cpulist(o_.sys_root + "/devices/system/cpu/online"); }

  Status setup() override {
    if (auto st = make_dir(cs_top()); !st) return st;
    // A new v1 cpuset has empty cpus and mems and refuses tasks until both
    // are written (cpuset_can_attach: -ENOSPC).
    for (const char* knob : {"cpuset.mems", "cpuset.cpus"}) {
      auto parent = read_knob_trimmed(cs_root_ + "/" + knob);
      if (!parent) return parent.status();
      auto cur = read_knob_trimmed(cs_top() + "/" + knob);
      if (!cur) return cur.status();
      if (cur.value() != parent.value())
        if (auto st = write_knob(cs_top() + "/" + knob, parent.value()); !st) return st;
    }
    if (auto st = make_dir(cpu_top()); !st) return st;
    if (knob_exists(fz_root())) {
      if (auto st = make_dir(fz_top()); !st) return st;
      // Gangs are not kept across restarts: a daemon that died mid-quantum
      // may have left groups frozen. Thaw them all, then return their tasks.
      if (Status st = cgroup_thaw_tree(fz_top(), false, settle_); !st) return st;
      for (const std::string& d : subdirs_deepest_first(fz_top())) {
        Status st = move_ids(d + "/tasks", fz_root() + "/tasks");
        if (st) st = remove_dir(d);
        if (!st) return st;
      }
    }
    return {};
  }

  Status join_gang(const std::string& entity, const std::string& gang, int pid, int tid) override {
    if (Status st = check_entity(entity); !st) return st;
    if (!knob_exists(fz_root())) return precondition("no cgroup v1 freezer mounted at " + fz_root());
    std::string dir = fz_top();
    for (const std::string& part : {entity, gang_dir_name(gang)}) {
      // Entity directories may be nested ("batch/jobA").
      size_t pos = 0;
      while (pos <= part.size()) {
        size_t end = part.find('/', pos);
        if (end == std::string::npos) end = part.size();
        dir += "/" + part.substr(pos, end - pos);
        if (auto st = make_dir(dir); !st) return st;
        pos = end + 1;
      }
    }
    // The v1 freezer takes single threads through tasks; a whole process
    // through cgroup.procs, and threads it creates later inherit the group.
    const std::string file = tid == 0 ? "/cgroup.procs" : "/tasks";
    return write_knob(dir + file, std::to_string(tid == 0 ? pid : tid));
  }

  Status leave_gang(const std::string&, const std::string&, int pid, int tid) override {
    if (tid != 0) {
      // A thread kept out of a gang (a thread-glob member's other threads)
      // is usually not in any group of ours: a move would still wait for an
      // RCU grace period (cgroup_threadgroup_rwsem), so look first.
      // Unreadable (it exited): the write below says so.
      if (auto cg = read_proc_cgroup(proc_, pid, tid); cg) {
        auto it = cg->find("freezer");
        const std::string mine = "/" + o_.top;
        if (it != cg->end() && it->second != mine && it->second.rfind(mine + "/", 0) != 0) return {};
      }
    }
    const std::string file = tid == 0 ? "/cgroup.procs" : "/tasks";
    auto st = write_knob(fz_root() + file, std::to_string(tid == 0 ? pid : tid));
    if (st.err() == ESRCH) return {};
    return st;
  }
  Status freeze_gang(const std::string& entity, const std::string& gang, bool frozen) override {
    // The group is made when its first task joins; a gang whose members
    // are thread globs may have none yet (the vCPUs are not started): it
    // holds nothing to freeze.
    if (!knob_exists(gang_dir(entity, gang))) return {};
    return cgroup_freeze(gang_dir(entity, gang), false, frozen, settle_);
  }

  Status remove_gang(const std::string& entity, const std::string& gang) override {
    const std::string dir = gang_dir(entity, gang);
    if (!knob_exists(dir)) return {};
    if (Status st = cgroup_freeze(dir, false, false, settle_); !st) return st;
    if (Status st = move_ids(dir + "/tasks", fz_root() + "/tasks"); !st) return st;
    return remove_dir(dir);
  }

  Status thaw_all() override { return cgroup_thaw_tree(fz_top(), false, settle_); }
  std::string freezer() const override { return "cgroup-v1 freezer"; }
  void tell_guardian() override { guardian_->watch_tree(fz_top(), false); }

  Status apply_group(const std::string& entity, const GroupSettings& s) override {
    return apply_groups({{entity, s}});
  }

  Status apply_groups(const std::vector<std::pair<std::string, GroupSettings>>& all) override {
    struct Plan {
      std::string cs, cpu;
      std::string mems, shares, idle;
      bool has_idle = false;
    };
    for (const auto& [e, s] : all) {
      if (Status st = check_entity(e); !st) return st;
      if (s.cpus.empty()) return invalid("apply_group " + e + ": empty cpu set");
    }
    if (Status st = refuse_isolated(all, "cgroup v1 has none"); !st) return st;
    auto top_mems = read_knob_trimmed(cs_top() + "/cpuset.mems");
    if (!top_mems) return top_mems.status();

    // Create and read everything first, so that a missing knob stops us
    // before any value is written.
    std::vector<Plan> plan;
    std::vector<CpusWrite> cpus;
    for (const auto& [e, s] : all) {
      Plan p{cs_top() + "/" + e, cpu_top() + "/" + e, "", "", "", false};
      if (auto st = make_dir(p.cs); !st) return st;
      if (auto st = make_dir(p.cpu); !st) return st;
      auto c = read_cpulist(p.cs + "/cpuset.cpus");
      if (!c) return c.status();
      cpus.push_back({p.cs + "/cpuset.cpus", c.value(), s.cpus});
      auto m = read_knob_trimmed(p.cs + "/cpuset.mems");
      if (!m) return m.status();
      p.mems = m.value();
      auto sh = read_knob_trimmed(p.cpu + "/cpu.shares");
      if (!sh) return sh.status();
      p.shares = sh.value();
      // cpu.idle exists since Linux 5.15.
      auto id = read_optional(p.cpu + "/cpu.idle", p.has_idle);
      if (!id) return id.status();
      p.idle = id.value();
      plan.push_back(std::move(p));
    }
    for (size_t i = 0; i < all.size(); ++i) {
      const Plan& p = plan[i];
      const ClassParams& cls = all[i].second.cls;
      if (p.mems != top_mems.value())
        if (auto st = write_knob(p.cs + "/cpuset.mems", top_mems.value()); !st) return st;
      // The kernel refuses a shares write on an idle group (EINVAL) and
      // reports a fixed weight for it: leave idle first, and write shares
      // only to a group that is not idle.
      const bool idle = wants_idle(cls) && p.has_idle;
      if (p.has_idle && !idle && p.idle != "0")
        if (auto st = write_knob(p.cpu + "/cpu.idle", "0"); !st) return st;
      std::string shares = std::to_string(cls.cpu_shares);
      if (!idle && p.shares != shares)
        if (auto st = write_knob(p.cpu + "/cpu.shares", shares); !st) return st;
      if (idle && p.idle != "1")
        if (auto st = write_knob(p.cpu + "/cpu.idle", "1"); !st) return st;
    }
    return write_cpus_two_pass(cpus);
  }

  Status remove_group(const std::string& entity) override {
    if (Status st = check_entity(entity); !st) return st;
    std::string parent = parent_entity(entity);
    for (const std::string& top : {cs_top(), cpu_top()}) {
      std::string dir = top + "/" + entity;
      if (!knob_exists(dir)) continue;
      std::string to = parent.empty() ? top : top + "/" + parent;
      if (Status st = move_ids(dir + "/tasks", to + "/tasks"); !st) return st;
      if (auto st = remove_dir(dir); !st) return st;
    }
    return {};
  }

  Status prune_groups(const std::set<std::string>& keep) override {
    Status first;
    for (const std::string& top : {cs_top(), cpu_top()}) {
      for (const std::string& d : subdirs_deepest_first(top)) {
        const std::string entity = d.substr(top.size() + 1);
        if (keep.count(entity)) continue;
        const std::string parent = parent_entity(entity);
        Status st = move_ids(d + "/tasks", (parent.empty() ? top : top + "/" + parent) + "/tasks");
        if (st) st = remove_dir(d);
        if (!st && first) first = st;  // keep going: remove as much as we can
      }
    }
    return first;
  }

  Status place(int pid, int tid, const TaskSettings& s) override {
    Status st = place_task(proc_, pid, tid, s);
    if (st || !is_realtime(s.cls) || st.code() != Code::kPermissionDenied) return st;
    // sched_setscheduler refuses SCHED_RR (EPERM) to a task whose cpu group
    // has no RT runtime (RT group scheduling): move it to the cpu root,
    // which has the whole budget, then try again.
    const std::string file = tid == 0 ? "/cgroup.procs" : "/tasks";
    if (auto mv = write_knob(cpu_root_ + file, std::to_string(tid == 0 ? pid : tid)); !mv) return st;
    return place_task(proc_, pid, tid, s);
  }

  Status join_group(int pid, int tid, const std::string& entity, const TaskSettings& s) override {
    if (Status st = check_entity(entity); !st) return st;
    // Whole processes through cgroup.procs (all threads at once), single
    // threads through tasks.
    const std::string file = tid == 0 ? "/cgroup.procs" : "/tasks";
    const std::string id = std::to_string(tid == 0 ? pid : tid);
    if (auto st = write_knob(cs_top() + "/" + entity + file, id); !st) return st;
    // With RT group scheduling a child cpu group has rt_runtime_us 0 and
    // refuses SCHED_RR tasks (sched_rt_can_attach): realtime members stay
    // in the hierarchy's root, which has the whole RT budget.
    std::string cpu_dir = is_realtime(s.cls) ? cpu_root_ : cpu_top() + "/" + entity;
    if (auto st = write_knob(cpu_dir + file, id); !st) return st;
    // cpuset_attach just set every moved thread's affinity to the cpuset's
    // CPUs; a locked member is meant to have fewer.
    return for_each_thread(proc_, pid, tid, [&](int t) { return set_affinity(t, s.cpus); });
  }

  Result<TaskOrigin> capture_origin(int pid, int tid) override {
    auto o = capture_sched(pid, tid);
    if (!o) return o;
    auto cg = read_proc_cgroup(proc_, pid, tid);
    if (!cg) return cg.status();
    for (const char* h : {"cpuset", "cpu"})
      if (auto it = cg->find(h); it != cg->end()) o->cgroups[h] = it->second;
    return o;
  }

  Status restore(int pid, int tid, const TaskOrigin& o) override {
    const std::string file = tid == 0 ? "/cgroup.procs" : "/tasks";
    const std::string id = std::to_string(tid == 0 ? pid : tid);
    for (const auto& [h, root] : {std::pair<std::string, std::string>{"cpuset", cs_root_}, {"cpu", cpu_root_}}) {
      auto it = o.cgroups.find(h);
      if (it == o.cgroups.end()) continue;
      std::string dir = it->second == "/" ? root : root + it->second;
      auto st = write_knob(dir + file, id);
      if (st.err() == ENOENT) st = write_knob(root + file, id);  // the old group is gone
      if (st.err() == ESRCH) return {};                          // the task has exited
      if (!st) return st;
    }
    return restore_sched(proc_, pid, tid, o);
  }

  Status teardown() override {
    Status first;
    (void)thaw_all();
    for (const auto& [root, top] : {std::pair{cs_root_, cs_top()}, std::pair{cpu_root_, cpu_top()},
                                    std::pair{fz_root(), fz_top()}}) {
      if (!knob_exists(top)) continue;
      auto dirs = subdirs_deepest_first(top);
      dirs.push_back(top);
      for (const std::string& d : dirs) {
        Status st = move_ids(d + "/tasks", root + "/tasks");
        if (st) st = remove_dir(d);
        if (!st && first) first = st;  // keep going: remove as much as we can
      }
    }
    return first;
  }

 private:
  std::string cs_top() const { return cs_root_ + "/" + o_.top; }
  std::string cpu_top() const { return cpu_root_ + "/" + o_.top; }
  std::string fz_root() const { return o_.cgroup_root + "/freezer"; }
  std::string fz_top() const { return fz_root() + "/" + o_.top; }
  std::string gang_dir(const std::string& entity, const std::string& gang) const {
    return fz_top() + "/" + entity + "/" + gang_dir_name(gang);
  }

  Options o_;
  ProcFs proc_;
  const std::chrono::milliseconds settle_ = freeze_settle(proc_, o_.freeze_timeout_ms);  // read once
  std::string cs_root_, cpu_root_;
};

}  // namespace

std::unique_ptr<Glue> make_v1(const Options& o, std::string cpuset_dir, std::string cpu_dir) {
  return std::make_unique<V1Glue>(o, std::move(cpuset_dir), std::move(cpu_dir));
}

}  // namespace usched::glue::detail
