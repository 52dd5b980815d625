// The systemd cgroup driver (docs/systemd.md): on a host where systemd is
// PID 1 and owns the cgroup v2 tree, every cgroup uschedd needs is a
// transient unit asked of systemd over D-Bus (sd-bus): a slice per entity,
// a delegated scope per member that uschedd may move, and gang freezer
// groups inside those scopes. A process of another unit is never moved.
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <ctime>

#include "freezer.h"
#include "internal.h"
#include "usched/glue/guardian.h"
#include "usched/glue/systemd_names.h"

#if USCHED_HAVE_SYSTEMD
#include <systemd/sd-bus.h>
#endif

namespace usched::glue::detail {

#if USCHED_HAVE_SYSTEMD
namespace {

namespace sd = usched::glue::systemd;

constexpr const char* kDest = "org.freedesktop.systemd1";
constexpr const char* kPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";
// systemd runs a start job asynchronously: how long a scope may take to
// show in /proc/PID/cgroup (an emulated guest is slow).
constexpr auto kMoveBound = std::chrono::seconds(10);

struct BusError {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  ~BusError() { sd_bus_error_free(&e); }
  std::string text(int r) const {
    if (e.message) return std::string(e.message) + (e.name ? std::string(" (") + e.name + ")" : "");
    return std::strerror(-r);
  }
};

struct Msg {
  sd_bus_message* m = nullptr;
  ~Msg() { sd_bus_message_unref(m); }
};

int append_property(sd_bus_message* m, const sd::Property& p) {
  int r = sd_bus_message_open_container(m, 'r', "sv");
  if (r < 0) return r;
  if ((r = sd_bus_message_append(m, "s", p.name.c_str())) < 0) return r;
  const char* sig = sd::signature(p.value);
  if ((r = sd_bus_message_open_container(m, 'v', sig)) < 0) return r;
  switch (p.value.index()) {
    case 0: r = sd_bus_message_append(m, "s", std::get<0>(p.value).c_str()); break;
    case 1: r = sd_bus_message_append(m, "b", static_cast<int>(std::get<1>(p.value))); break;
    case 2: r = sd_bus_message_append(m, "t", std::get<2>(p.value)); break;
    case 3: {
      const auto& v = std::get<3>(p.value);
      r = sd_bus_message_append_array(m, 'u', v.data(), v.size() * sizeof(uint32_t));
      break;
    }
    case 4: {
      const auto& v = std::get<4>(p.value);
      r = sd_bus_message_append_array(m, 'y', v.data(), v.size());
      break;
    }
  }
  if (r < 0) return r;
  if ((r = sd_bus_message_close_container(m)) < 0) return r;
  return sd_bus_message_close_container(m);
}

int append_properties(sd_bus_message* m, const std::vector<sd::Property>& props) {
  int r = sd_bus_message_open_container(m, 'a', "(sv)");
  if (r < 0) return r;
  for (const auto& p : props)
    if ((r = append_property(m, p)) < 0) return r;
  return sd_bus_message_close_container(m);
}

class SystemdGlue final : public Glue {
 public:
  explicit SystemdGlue(const Options& o) : o_(o), proc_(o.proc_root), top_dir_(o.cgroup_root + sd::slice_path(o.top, "")) {}
  ~SystemdGlue() override { sd_bus_flush_close_unref(bus_); }

  Kind kind() const override { return Kind::kSystemd; }
  Result<CpuSet> present_cpus() override { return read_cpulist(o_.sys_root + "/devices/system/cpu/present"); }
  Result<CpuSet> online_cpus() override { return read_cpulist(o_.sys_root + "/devices/system/cpu/online"); }

  Status setup() override {
    std::lock_guard<std::mutex> l(mu_);
    if (Status st = connect(); !st) return st;
    // The top slice first: every entity's slice nests in it.
    if (Status st = start_or_update(sd::slice_name(o_.top, ""), {{"Description", std::string("usched: the scheduler tree")}});
        !st)
      return st;
    if (knob_exists(top_dir_)) return cgroup_thaw_tree(top_dir_, true, settle_);
    return {};
  }

  Status apply_group(const std::string& entity, const GroupSettings& s) override { return apply_groups({{entity, s}}); }

  Status apply_groups(const std::vector<std::pair<std::string, GroupSettings>>& all) override {
    for (const auto& [e, s] : all) {
      if (Status st = check_entity(e); !st) return st;
      if (s.cpus.empty()) return invalid("apply_group " + e + ": empty cpu set");
    }
    std::lock_guard<std::mutex> l(mu_);
    // Pre-order: a parent slice exists before its children. cgroup v2 does
    // not refuse a child's cpuset outside its parent's (it narrows the
    // effective set), so one pass is enough.
    for (const auto& [e, s] : all) {
      if (Status st = start_or_update(sd::slice_name(o_.top, e), sd::slice_properties(e, s.cpus, s.cls)); !st)
        return st;
    }
    return {};
  }

  Status remove_group(const std::string& entity) override {
    if (Status st = check_entity(entity); !st) return st;
    std::lock_guard<std::mutex> l(mu_);
    return remove_slice(entity);
  }

  Status prune_groups(const std::set<std::string>& keep) override {
    std::lock_guard<std::mutex> l(mu_);
    auto units = list_slices();
    if (!units) return units.status();
    // Deepest first, as a destroy goes.
    std::vector<std::string> stale;
    for (const std::string& u : *units) {
      auto e = sd::entity_of_slice(o_.top, u);
      if (e && !e->empty() && !keep.count(*e) && check_entity(*e)) stale.push_back(*e);
    }
    std::sort(stale.begin(), stale.end(), [](const std::string& a, const std::string& b) {
      return std::count(a.begin(), a.end(), '/') > std::count(b.begin(), b.end(), '/');
    });
    Status first;
    for (const std::string& e : stale) {
      Status st = remove_slice(e);
      if (!st && first) first = st;
    }
    return first;
  }

  Status place(int pid, int tid, const TaskSettings& s) override { return place_task(proc_, pid, tid, s); }

  std::string note_bind(int pid, int tid, bool started) override {
    std::lock_guard<std::mutex> l(mu_);
    if (tid != 0) return "";
    if (started) started_.insert(pid);
    auto d = decide(pid);
    if (!d || d->move) return "";
    return "it stays in " + d->unit + ": CPUs by affinity and class only, no cgroup";
  }

  Status join_group(int pid, int tid, const std::string& entity, const TaskSettings& s) override {
    if (Status st = check_entity(entity); !st) return st;
    if (tid != 0) return {};  // threads: affinity and class only, as on cgroup v2
    std::lock_guard<std::mutex> l(mu_);
    auto d = decide(pid);
    if (!d) return d.status();
    if (!d->move) return {};  // its unit keeps it
    if (Status st = move_to_entity(pid, entity, *d); !st) return st;
    // Attaching to a cpuset reset the affinity to the slice's CPUs.
    return for_each_thread(proc_, pid, 0, [&](int t) { return set_affinity(t, s.cpus); });
  }

  Result<TaskOrigin> capture_origin(int pid, int tid) override { return capture_sched_and_unified(proc_, pid, tid); }

  Status restore(int pid, int tid, const TaskOrigin& o) override {
    if (tid == 0) {
      std::lock_guard<std::mutex> l(mu_);
      started_.erase(pid);
      auto now = cgroup_of(pid);
      if (!now) return now.status().code() == Code::kNotFound ? Status() : now.status();
      if (sd::in_our_tree(o_.top, *now)) {
        auto it = o.cgroups.find("unified");
        if (Status st = return_process(pid, it == o.cgroups.end() ? "" : it->second); !st) {
          if (!alive(pid)) return {};
          return st;
        }
      }
    }
    return restore_sched(proc_, pid, tid, o);
  }

  Status teardown() override {
    std::lock_guard<std::mutex> l(mu_);
    if (Status st = connect(); !st) return st;
    Status first;
    if (knob_exists(top_dir_)) {
      if (Status st = cgroup_thaw_tree(top_dir_, true, settle_); !st) first = st;
      for (int pid : pids_below(top_dir_)) {
        Status st = return_process(pid, "");
        if (!st && alive(pid) && first) first = st;
      }
    }
    if (Status st = stop_unit(sd::slice_name(o_.top, "")); !st && first) first = st;
    return first;
  }

  // ---- gangs: a "gang:G" group inside each member's delegated scope ----
  Status join_gang(const std::string& entity, const std::string& gang, int pid, int tid) override {
    if (Status st = check_entity(entity); !st) return st;
    if (tid != 0 && tid != pid) {
      return invalid("the systemd driver freezes whole processes: add pid " + std::to_string(pid) +
                     ", not thread " + std::to_string(tid) + ", to gang " + gang);
    }
    std::lock_guard<std::mutex> l(mu_);
    auto d = decide(pid);
    if (!d) return d.status();
    if (!d->move) {
      return precondition("pid " + std::to_string(pid) + " stays in " + d->unit +
                          ", which systemd supervises and usched does not freeze or move; a gang member must be "
                          "started by usched (usched run --gang, rfork)");
    }
    // The cgroup move of a new member may still be on its way: do it now.
    if (Status st = move_to_entity(pid, entity, *d); !st) return st;
    auto now = cgroup_of(pid);
    if (!now) return now.status();
    const sd::CgroupUnit u = sd::unit_of_cgroup(*now);
    const std::string scope_dir = o_.cgroup_root + scope_cgroup(*now, u);
    const std::string dir = scope_dir + "/" + gang_dir_name(gang);
    if (auto st = make_dir(dir); !st) return st;
    if (auto st = write_knob(dir + "/cgroup.procs", std::to_string(pid)); !st) return st;
    gangs_[key(entity, gang)][pid] = dir;
    return {};
  }

  Status leave_gang(const std::string& entity, const std::string& gang, int pid, int) override {
    std::lock_guard<std::mutex> l(mu_);
    auto g = gangs_.find(key(entity, gang));
    if (g == gangs_.end()) return {};
    auto it = g->second.find(pid);
    if (it == g->second.end()) return {};
    const std::string dir = it->second;
    g->second.erase(it);
    return drop_gang_dir(dir, pid);
  }

  Status freeze_gang(const std::string& entity, const std::string& gang, bool frozen) override {
    std::lock_guard<std::mutex> l(mu_);
    auto g = gangs_.find(key(entity, gang));
    if (g == gangs_.end()) return {};
    // Every member's group is asked first, so that they stop (or go on)
    // together; then each is confirmed.
    std::vector<int> gone;
    for (const auto& [pid, dir] : g->second) {
      auto st = write_knob(dir + "/cgroup.freeze", frozen ? "1" : "0");
      if (!st && st.err() == ENOENT) gone.push_back(pid);  // the member exited and systemd removed its scope
    }
    for (int pid : gone) g->second.erase(pid);
    Status first;
    for (const auto& [pid, dir] : g->second) {
      Status st = cgroup_freeze(dir, true, frozen, settle_);
      if (!st && knob_exists(dir) && first) first = st;
    }
    if (!first && frozen) {  // never half frozen
      for (const auto& [pid, dir] : g->second) (void)cgroup_freeze(dir, true, false, settle_);
    }
    return first;
  }

  Status remove_gang(const std::string& entity, const std::string& gang) override {
    std::lock_guard<std::mutex> l(mu_);
    auto g = gangs_.find(key(entity, gang));
    if (g == gangs_.end()) return {};
    Status first;
    for (const auto& [pid, dir] : g->second) {
      Status st = cgroup_freeze(dir, true, false, settle_);
      if (st) st = drop_gang_dir(dir, pid);
      if (!st && knob_exists(dir) && first) first = st;
    }
    gangs_.erase(g);
    return first;
  }

  Status thaw_all() override {
    if (!knob_exists(top_dir_)) return {};
    return cgroup_thaw_tree(top_dir_, true, settle_);
  }
  std::string freezer() const override { return "cgroup-v2 cgroup.freeze in systemd scopes"; }
  void tell_guardian() override { guardian_->watch_tree(top_dir_, true); }

 private:
  struct Decision {
    bool move = false;
    std::string path;  // the process's cgroup now
    std::string unit;  // the unit it belongs to ("" in none)
  };

  static std::string key(const std::string& entity, const std::string& gang) { return entity + "\n" + gang; }

  Status connect() {
    if (bus_) return {};
    int r = sd_bus_open_system(&bus_);
    if (r < 0) {
      bus_ = nullptr;
      return Status(Code::kUnavailable, std::string("systemd driver: cannot connect to the system bus: ") +
                                            std::strerror(-r));
    }
    return {};
  }

  // The unified cgroup of a process ("/system.slice/victim.service").
  Result<std::string> cgroup_of(int pid) {
    auto cg = read_proc_cgroup(proc_, pid, 0);
    if (!cg) return cg.status();
    auto it = cg->find("unified");
    if (it == cg->end()) return internal("pid " + std::to_string(pid) + " has no cgroup v2 line in /proc/PID/cgroup");
    return it->second;
  }

  // A zombie is gone: systemd can no longer move it, and nothing of it runs.
  // (A gang member killed just before a destroy can die between the listing
  // of the slice's processes and its move; counted alive, its failed move
  // ended remove_slice before StopUnit and left the slice active.)
  bool alive(int pid) const {
    auto t = proc_.task(pid);
    return t.is_ok() && !t->exited();
  }

  // Whether a process is uschedd's to move (docs/systemd.md, the table).
  Result<Decision> decide(int pid) {
    auto now = cgroup_of(pid);
    if (!now) return now.status();
    Decision d;
    d.path = *now;
    const sd::CgroupUnit u = sd::unit_of_cgroup(*now);
    d.unit = u.unit;
    if (sd::in_our_tree(o_.top, *now) || u.unit.empty()) d.move = true;
    else d.move = started_.count(pid) && !sd::is_service(u.unit);
    return d;
  }

  // The cgroup of the unit itself (a gang member sits in "<scope>/gang:G").
  static std::string scope_cgroup(const std::string& path, const sd::CgroupUnit& u) {
    return path.substr(0, path.size() - u.subcgroup.size());
  }

  // Into a new scope in the entity's slice, unless it already is in one.
  Status move_to_entity(int pid, const std::string& entity, const Decision& d) {
    const std::string slice = sd::slice_name(o_.top, entity);
    const sd::CgroupUnit u = sd::unit_of_cgroup(d.path);
    if (sd::in_our_tree(o_.top, d.path) && u.slice == slice && !u.unit.empty()) return {};
    const std::string scope = sd::run_scope_name(o_.top, pid, seq_++);
    if (Status st = start_scope(scope, slice, pid, "usched member " + std::to_string(pid) + " of " + entity); !st)
      return st;
    return wait_in(pid, scope);
  }

  // Leaves usched: back to the unit it came from, or (that unit gone, or
  // none) to a scope of its own in the root slice.
  Status return_process(int pid, const std::string& origin) {
    const sd::CgroupUnit from = sd::unit_of_cgroup(origin);
    if (!origin.empty() && !from.unit.empty() && !sd::in_our_tree(o_.top, origin)) {
      Status st = attach(from.unit, from.subcgroup, pid);
      if (!st && !from.subcgroup.empty()) st = attach(from.unit, "", pid);
      if (st) return wait_in(pid, from.unit);
      // Its unit is gone (or refuses it): a scope of its own below.
    }
    const std::string scope = sd::returned_scope_name(o_.top, pid);
    if (Status st = start_scope(scope, "-.slice", pid, "process " + std::to_string(pid) + " returned by usched"); !st)
      return st;
    return wait_in(pid, scope);
  }

  // Until /proc/PID/cgroup names the unit (systemd moves the process when
  // the start job runs, after the call returned).
  Status wait_in(int pid, const std::string& unit) {
    const auto until = std::chrono::steady_clock::now() + kMoveBound;
    for (;;) {
      auto now = cgroup_of(pid);
      if (!now) return now.status();
      if (sd::unit_of_cgroup(*now).unit == unit) return {};
      if (std::chrono::steady_clock::now() > until) {
        return Status(Code::kUnavailable, "systemd did not move pid " + std::to_string(pid) + " into " + unit +
                                                   " within " + std::to_string(kMoveBound.count()) + " s (it is in " +
                                                   *now + ")");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  Status drop_gang_dir(const std::string& dir, int pid) {
    const std::string scope_dir = dir.substr(0, dir.rfind('/'));
    auto st = write_knob(scope_dir + "/cgroup.procs", std::to_string(pid));
    if (!st && st.err() != ESRCH && st.err() != ENOENT) return st;
    auto rm = remove_dir(dir);
    if (!rm && rm.err() != ENOENT && rm.err() != EBUSY) return rm;
    return {};
  }

  // Processes in dir and below (a slice's scopes and their gang groups).
  std::vector<int> pids_below(const std::string& dir) {
    std::vector<int> out;
    auto dirs = subdirs_deepest_first(dir);
    dirs.push_back(dir);
    for (const std::string& d : dirs) {
      auto ids = read_knob(d + "/cgroup.procs");
      if (!ids) continue;
      std::istringstream in(ids.value());
      int pid = 0;
      while (in >> pid) out.push_back(pid);
    }
    return out;
  }

  Status remove_slice(const std::string& entity) {
    if (Status st = connect(); !st) return st;
    const std::string dir = o_.cgroup_root + sd::slice_path(o_.top, entity);
    // Stopping a slice stops every unit in it: whatever is still inside
    // goes to a scope of the parent's slice first.
    if (knob_exists(dir)) {
      if (Status st = cgroup_thaw_tree(dir, true, settle_); !st) return st;
      const std::string parent = parent_entity(entity);
      for (int pid : pids_below(dir)) {
        auto d = decide(pid);
        if (!d) continue;  // exited
        if (Status st = move_to_entity(pid, parent, *d); !st && alive(pid)) return st;
      }
    }
    if (Status st = stop_unit(sd::slice_name(o_.top, entity)); !st) return st;
    // The stop job runs after the call: wait until the cgroup is gone, so
    // that a slice of the same name made next starts afresh.
    const auto until = std::chrono::steady_clock::now() + kMoveBound;
    while (knob_exists(dir) && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return {};
  }

  // ---- D-Bus calls ----
  Status call_error(const std::string& what, int r, const BusError& e) {
    const Code c = sd_bus_error_has_name(&e.e, "org.freedesktop.DBus.Error.AccessDenied") ? Code::kPermissionDenied
                   : sd_bus_error_has_name(&e.e, "org.freedesktop.systemd1.NoSuchUnit")   ? Code::kNotFound
                                                                                          : Code::kInternal;
    return Status(c, "systemd: " + what + ": " + e.text(r));
  }

  // StartTransientUnit; a unit that exists already (adoption after a
  // restart, or an implicit parent slice) is updated and started instead.
  Status start_or_update(const std::string& unit, const std::vector<sd::Property>& props) {
    if (Status st = connect(); !st) return st;
    BusError e;
    int r = start_transient(unit, props, e);
    if (r >= 0) return {};
    if (!sd_bus_error_has_name(&e.e, "org.freedesktop.systemd1.UnitExists"))
      return call_error("StartTransientUnit " + unit + " (" + sd::describe(props) + ")", r, e);
    if (Status st = set_properties(unit, props); !st) return st;
    BusError e2;
    r = sd_bus_call_method(bus_, kDest, kPath, kManager, "StartUnit", &e2.e, nullptr, "ss", unit.c_str(), "replace");
    if (r < 0) return call_error("StartUnit " + unit, r, e2);
    return {};
  }

  int start_transient(const std::string& unit, const std::vector<sd::Property>& props, BusError& e) {
    Msg m, reply;
    int r = sd_bus_message_new_method_call(bus_, &m.m, kDest, kPath, kManager, "StartTransientUnit");
    if (r < 0) return r;
    if ((r = sd_bus_message_append(m.m, "ss", unit.c_str(), "fail")) < 0) return r;
    if ((r = append_properties(m.m, props)) < 0) return r;
    if ((r = sd_bus_message_append(m.m, "a(sa(sv))", 0)) < 0) return r;
    return sd_bus_call(bus_, m.m, 0, &e.e, &reply.m);
  }

  Status set_properties(const std::string& unit, const std::vector<sd::Property>& props) {
    Msg m, reply;
    BusError e;
    int r = sd_bus_message_new_method_call(bus_, &m.m, kDest, kPath, kManager, "SetUnitProperties");
    if (r >= 0) r = sd_bus_message_append(m.m, "sb", unit.c_str(), 1);
    if (r >= 0) r = append_properties(m.m, props);
    if (r >= 0) r = sd_bus_call(bus_, m.m, 0, &e.e, &reply.m);
    if (r < 0) return call_error("SetUnitProperties " + unit + " (" + sd::describe(props) + ")", r, e);
    return {};
  }

  Status start_scope(const std::string& scope, const std::string& slice, int pid, const std::string& description) {
    if (Status st = connect(); !st) return st;
    const auto props = sd::scope_properties(slice, pid, description);
    BusError e;
    int r = start_transient(scope, props, e);
    if (r < 0) {
      if (!alive(pid)) return not_found("pid " + std::to_string(pid) + " has exited");
      return call_error("StartTransientUnit " + scope + " (" + sd::describe(props) + ")", r, e);
    }
    return {};
  }

  Status attach(const std::string& unit, const std::string& sub, int pid) {
    Msg m, reply;
    BusError e;
    int r = sd_bus_message_new_method_call(bus_, &m.m, kDest, kPath, kManager, "AttachProcessesToUnit");
    if (r >= 0) r = sd_bus_message_append(m.m, "ss", unit.c_str(), sub.c_str());
    const uint32_t p = static_cast<uint32_t>(pid);
    if (r >= 0) r = sd_bus_message_append_array(m.m, 'u', &p, sizeof p);
    if (r >= 0) r = sd_bus_call(bus_, m.m, 0, &e.e, &reply.m);
    if (r < 0) return call_error("AttachProcessesToUnit " + unit + " '" + sub + "' pid " + std::to_string(pid), r, e);
    return {};
  }

  Status stop_unit(const std::string& unit) {
    BusError e;
    int r = sd_bus_call_method(bus_, kDest, kPath, kManager, "StopUnit", &e.e, nullptr, "ss", unit.c_str(), "replace");
    if (r < 0 && !sd_bus_error_has_name(&e.e, "org.freedesktop.systemd1.NoSuchUnit"))
      return call_error("StopUnit " + unit, r, e);
    return {};
  }

  // Every loaded unit named "<top>-*.slice".
  Result<std::vector<std::string>> list_slices() {
    if (Status st = connect(); !st) return st;
    Msg m, reply;
    BusError e;
    const std::string pattern = sd::escape(o_.top) + "-*.slice";
    int r = sd_bus_message_new_method_call(bus_, &m.m, kDest, kPath, kManager, "ListUnitsByPatterns");
    if (r >= 0) r = sd_bus_message_append(m.m, "as", 0);
    if (r >= 0) r = sd_bus_message_append(m.m, "as", 1, pattern.c_str());
    if (r >= 0) r = sd_bus_call(bus_, m.m, 0, &e.e, &reply.m);
    if (r < 0) return call_error("ListUnitsByPatterns " + pattern, r, e);
    std::vector<std::string> out;
    if ((r = sd_bus_message_enter_container(reply.m, 'a', "(ssssssouso)")) < 0) return call_error("reading units", r, e);
    const char *name = nullptr, *s1, *s2, *s3, *s4, *s5, *o1, *s6, *o2;
    uint32_t job = 0;
    while ((r = sd_bus_message_read(reply.m, "(ssssssouso)", &name, &s1, &s2, &s3, &s4, &s5, &o1, &job, &s6, &o2)) >
           0)
      out.emplace_back(name);
    if (r < 0) return call_error("reading units", r, e);
    return out;
  }

  Options o_;
  ProcFs proc_;
  const std::chrono::milliseconds settle_ = freeze_settle(proc_, o_.freeze_timeout_ms);
  const std::string top_dir_;  // <cgroup root>/usched.slice
  std::mutex mu_;              // the bus and the maps: called from the strand and the joiner
  sd_bus* bus_ = nullptr;
  uint64_t seq_ = static_cast<uint64_t>(::time(nullptr));  // scope names stay unique across restarts
  std::set<int> started_;      // pids started bound (usched run, rfork)
  std::map<std::string, std::map<int, std::string>> gangs_;  // entity\ngang -> pid -> gang group dir
};

}  // namespace

std::pair<bool, std::string> probe_systemd(const Options& o) {
  if (::access("/run/systemd/system", F_OK) != 0) return {false, "PID 1 is not systemd (no /run/systemd/system)"};
  struct statfs fs{};
  if (::statfs(o.cgroup_root.c_str(), &fs) != 0 || fs.f_type != CGROUP2_SUPER_MAGIC)
    return {false, "systemd runs, but " + o.cgroup_root + " is not the unified (v2) hierarchy"};
  sd_bus* bus = nullptr;
  int r = sd_bus_open_system(&bus);
  if (r < 0) return {false, std::string("systemd runs, but the system bus does not answer: ") + std::strerror(-r)};
  BusError e;
  r = sd_bus_call_method(bus, kDest, kPath, "org.freedesktop.DBus.Peer", "Ping", &e.e, nullptr, "");
  sd_bus_flush_close_unref(bus);
  if (r < 0) return {false, "systemd runs, but does not answer on the system bus: " + e.text(r)};
  return {true, "systemd is PID 1 with cgroup v2 at " + o.cgroup_root + " and answers on the system bus"};
}

Result<std::unique_ptr<Glue>> make_systemd(const Options& o) {
  auto [ok, why] = detail::probe_systemd(o);
  if (!ok) return precondition("the systemd cgroup driver cannot be used: " + why);
  return std::unique_ptr<Glue>(std::make_unique<SystemdGlue>(o));
}

#else  // !USCHED_HAVE_SYSTEMD

std::pair<bool, std::string> probe_systemd(const Options&) {
  return {false, "uschedd was built without libsystemd (sd-bus)"};
}

Result<std::unique_ptr<Glue>> make_systemd(const Options&) {
  return precondition("the systemd cgroup driver cannot be used: uschedd was built without libsystemd (sd-bus)");
}

#endif

}  // namespace usched::glue::detail
