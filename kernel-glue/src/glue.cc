// Kinds, TaskOrigin's state-file format, probing and the affinity-only
// back end.
#include "usched/glue/glue.h"

#include <unistd.h>

#include <cctype>
#include <charconv>
#include <sstream>

#include "freezer.h"
#include "internal.h"
#include "usched/glue/guardian.h"

namespace usched::glue {
namespace {

// '%', ';' and newlines in cgroup paths are percent-encoded so that an
// origin stays one line of ';'-separated fields.
std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '%') out += "%25";
    else if (c == ';') out += "%3B";
    else if (c == '\n') out += "%0A";
    else out += c;
  }
  return out;
}

Result<std::string> unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    std::string_view code = s.substr(i + 1, 2);
    if (code == "25") out += '%';
    else if (code == "3B" || code == "3b") out += ';';
    else if (code == "0A" || code == "0a") out += '\n';
    else return invalid("bad escape '%" + std::string(code) + "'");
    i += 2;
  }
  return out;
}

bool parse_int(std::string_view s, int& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kAuto: return "auto";
    case Kind::kCgroupV2: return "cgroup-v2";
    case Kind::kCgroupV1: return "cgroup-v1";
    case Kind::kAffinity: return "affinity";
    case Kind::kFake: return "fake";
    case Kind::kSystemd: return "systemd";
  }
  return "?";
}

const char* partition_name(Partition p) {
  switch (p) {
    case Partition::kMember: return "member";
    case Partition::kRoot: return "root";
    case Partition::kIsolated: return "isolated";
  }
  return "?";
}

Result<Kind> parse_kind(std::string_view s) {
  if (s == "auto") return Kind::kAuto;
  if (s == "v2" || s == "cgroup-v2") return Kind::kCgroupV2;
  if (s == "v1" || s == "cgroup-v1") return Kind::kCgroupV1;
  if (s == "affinity") return Kind::kAffinity;
  if (s == "fake") return Kind::kFake;
  if (s == "systemd") return Kind::kSystemd;
  return invalid("unknown glue kind '" + std::string(s) + "' (want v2|cgroup-v2|v1|cgroup-v1|affinity|fake|systemd|auto)");
}

std::string TaskOrigin::to_string() const {
  std::string s = "cpus=" + cpus.to_string() + ";policy=" + std::to_string(policy) +
                  ";prio=" + std::to_string(rt_priority) + ";nice=" + std::to_string(nice);
  for (const auto& [h, p] : cgroups) s += ";cg:" + escape(h) + "=" + escape(p);
  return s;
}

Result<TaskOrigin> TaskOrigin::parse(std::string_view s) {
  TaskOrigin o;
  bool have_cpus = false;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(';', pos);
    if (end == std::string_view::npos) end = s.size();
    std::string_view item = s.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) {
      if (end == s.size()) break;
      return invalid("task origin: empty field in '" + std::string(s) + "'");
    }
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) return invalid("task origin: field '" + std::string(item) + "' has no '='");
    std::string_view key = item.substr(0, eq), val = item.substr(eq + 1);
    auto num = [&](int& out) -> Status {
      if (!parse_int(val, out))
        return invalid("task origin: field '" + std::string(key) + "': '" + std::string(val) + "' is not a number");
      return {};
    };
    if (key == "cpus") {
      auto c = CpuSet::parse(val);
      if (!c) return invalid("task origin: field 'cpus': " + c.status().message());
      o.cpus = c.value();
      have_cpus = true;
    } else if (key == "policy") {
      if (Status st = num(o.policy); !st) return st;
    } else if (key == "prio") {
      if (Status st = num(o.rt_priority); !st) return st;
    } else if (key == "nice") {
      if (Status st = num(o.nice); !st) return st;
    } else if (key.substr(0, 3) == "cg:" && key.size() > 3) {
      auto h = unescape(key.substr(3));
      auto p = unescape(val);
      if (!h || !p) return invalid("task origin: field '" + std::string(key) + "': " + (!h ? h : p).status().message());
      o.cgroups[h.value()] = p.value();
    } else {
      return invalid("task origin: unknown field '" + std::string(key) + "'");
    }
  }
  if (!have_cpus) return invalid("task origin: missing field 'cpus' in '" + std::string(s) + "'");
  return o;
}

namespace detail {
namespace {

// Affinity and class only: for machines without writable cgroups, and for
// unprivileged users on their own processes.
class AffinityGlue final : public Glue {
 public:
  explicit AffinityGlue(const Options& o) : o_(o), proc_(o.proc_root) {}
  Kind kind() const override { return Kind::kAffinity; }
  Result<CpuSet> present_cpus() override { return read_cpulist(o_.sys_root + "/devices/system/cpu/present"); }
  Result<CpuSet> online_cpus() override { return read_cpulist(o_.sys_root + "/devices/system/cpu/online"); }
  Status setup() override { return {}; }
  Status apply_group(const std::string& e, const GroupSettings&) override { return check_entity(e); }
  Status apply_groups(const std::vector<std::pair<std::string, GroupSettings>>& all) override {
    for (const auto& [e, s] : all)
      if (Status st = check_entity(e); !st) return st;
    return refuse_isolated(all, "the affinity back end has no cgroups");
  }
  Status remove_group(const std::string&) override { return {}; }
  Status place(int pid, int tid, const TaskSettings& s) override { return place_task(proc_, pid, tid, s); }
  Status join_group(int, int, const std::string&, const TaskSettings&) override { return {}; }
  Result<TaskOrigin> capture_origin(int pid, int tid) override { return capture_sched(pid, tid); }
  Status restore(int pid, int tid, const TaskOrigin& o) override { return restore_sched(proc_, pid, tid, o); }
  Status teardown() override { return thaw_all(); }

  // Without cgroups, gangs are whole processes stopped with SIGSTOP.
  Status join_gang(const std::string& entity, const std::string& gang, int pid, int tid) override {
    if (Status st = check_entity(entity); !st) return st;
    if (tid != 0 && tid != pid) {
      return invalid("without a cgroup freezer gangs are stopped with SIGSTOP, which stops whole processes: add pid " +
                     std::to_string(pid) + ", not thread " + std::to_string(tid));
    }
    // The guardian learns of the process before it can ever be stopped.
    if (guardian_) {
      auto info = proc_.task(pid);
      if (!info) return info.status();
      guardian_->watch_pid(pid, info->start_time);
    }
    gangs_[entity + "/" + gang].insert(pid);
    return {};
  }
  Status leave_gang(const std::string& entity, const std::string& gang, int pid, int) override {
    auto it = gangs_.find(entity + "/" + gang);
    if (it == gangs_.end() || !it->second.erase(pid)) return {};
    if (stopped_.count(it->first)) (void)signal_freeze(proc_, {pid}, false, settle_);
    unwatch(pid);
    return {};
  }
  Status freeze_gang(const std::string& entity, const std::string& gang, bool frozen) override {
    auto it = gangs_.find(entity + "/" + gang);
    if (it == gangs_.end()) return {};
    if (frozen) stopped_.insert(it->first);
    Status st = signal_freeze(proc_, it->second, frozen, settle_);
    if (!frozen || !st) stopped_.erase(it->first);
    return st;
  }
  Status remove_gang(const std::string& entity, const std::string& gang) override {
    Status st = freeze_gang(entity, gang, false);
    if (auto it = gangs_.find(entity + "/" + gang); it != gangs_.end()) {
      const std::set<int> pids = std::move(it->second);
      gangs_.erase(it);
      for (int pid : pids) unwatch(pid);
    }
    return st;
  }
  Status thaw_all() override {
    Status first;
    for (const std::string& g : std::set<std::string>(stopped_)) {
      Status st = signal_freeze(proc_, gangs_[g], false, settle_);
      if (!st && first) first = st;
    }
    stopped_.clear();
    return first;
  }
  std::string freezer() const override { return "SIGSTOP/SIGCONT"; }

 protected:
  void tell_guardian() override {
    for (const auto& [g, pids] : gangs_)
      for (int pid : pids)
        if (auto info = proc_.task(pid)) guardian_->watch_pid(pid, info->start_time);
  }

 private:
  // The guardian forgets a process once no gang holds it.
  void unwatch(int pid) {
    if (!guardian_) return;
    for (const auto& [g, pids] : gangs_)
      if (pids.count(pid)) return;
    guardian_->unwatch_pid(pid);
  }

  Options o_;
  ProcFs proc_;
  const std::chrono::milliseconds settle_ = freeze_settle(proc_, o_.freeze_timeout_ms);  // read once
  std::map<std::string, std::set<int>> gangs_;  // "entity/gang" -> pids
  std::set<std::string> stopped_;
};

struct Mount {
  std::string point, fstype, superopts;
};

// Mount points in mountinfo escape space, tab, newline and '\' as \ooo.
std::string unoctal(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<Mount> read_mounts(const std::string& path) {
  std::vector<Mount> out;
  auto r = read_knob(path);
  if (!r) return out;
  std::istringstream in(r.value());
  std::string line;
  while (std::getline(in, line)) {
    // id parent maj:min root mountpoint options [optional...] - fstype source superopts
    std::istringstream ls(line);
    std::vector<std::string> f;
    std::string w;
    while (ls >> w) f.push_back(w);
    size_t dash = 0;
    for (size_t i = 6; i < f.size(); ++i)
      if (f[i] == "-") {
        dash = i;
        break;
      }
    if (dash == 0 || f.size() < dash + 4) continue;
    out.push_back({unoctal(f[4]), f[dash + 1], f[dash + 3]});
  }
  return out;
}

bool has_token(const std::string& list, std::string_view tok, char sep) {
  std::istringstream in(list);
  std::string t;
  while (std::getline(in, t, sep)) {
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    if (t == tok) return true;
  }
  return false;
}

bool has_word(const std::string& text, std::string_view word) {
  std::istringstream in(text);
  std::string w;
  while (in >> w)
    if (w == word) return true;
  return false;
}

bool writable(const std::string& dir) { return ::geteuid() == 0 || ::access(dir.c_str(), W_OK) == 0; }

}  // namespace

struct ProbeResult {
  Kind kind = Kind::kAffinity;
  std::string reason;
  std::string cpuset_dir, cpu_dir;  // v1
};

ProbeResult probe_detail(const Options& o) {
  ProbeResult p;
  const std::string mi = o.proc_root + "/self/mountinfo";
  auto mounts = read_mounts(mi);
  if (mounts.empty()) {
    p.reason = "affinity: cannot read " + mi;
    return p;
  }
  std::string v2_why;
  for (const Mount& m : mounts) {
    if (m.fstype != "cgroup2" || m.point != o.cgroup_root) continue;
    auto ctl = read_knob(o.cgroup_root + "/cgroup.controllers");
    if (!ctl) {
      v2_why = "cgroup2 at " + m.point + " but " + ctl.error().message();
    } else if (!has_word(ctl.value(), "cpuset") || !has_word(ctl.value(), "cpu")) {
      v2_why = "cgroup2 at " + m.point + " lacks the cpuset or cpu controller";
    } else if (!writable(o.cgroup_root)) {
      v2_why = "cgroup2 at " + m.point + " is not writable by us";
    } else {
      p.kind = Kind::kCgroupV2;
      p.reason = "cgroup v2 at " + m.point + " with cpuset and cpu";
      return p;
    }
  }
  const std::string under = o.cgroup_root + "/";
  for (const Mount& m : mounts) {
    if (m.fstype != "cgroup" || m.point.compare(0, under.size(), under) != 0) continue;
    if (p.cpuset_dir.empty() && has_token(m.superopts, "cpuset", ',')) p.cpuset_dir = m.point;
    if (p.cpu_dir.empty() && has_token(m.superopts, "cpu", ',')) p.cpu_dir = m.point;
  }
  // "cpu,cpuacct" is mounted at .../cpu,cpuacct with a symlink "cpu".
  if (!p.cpu_dir.empty() && knob_exists(under + "cpu")) p.cpu_dir = under + "cpu";
  if (!p.cpuset_dir.empty() && knob_exists(under + "cpuset")) p.cpuset_dir = under + "cpuset";
  if (!p.cpuset_dir.empty() && !p.cpu_dir.empty()) {
    if (writable(p.cpuset_dir) && writable(p.cpu_dir)) {
      p.kind = Kind::kCgroupV1;
      p.reason = "cgroup v1: cpuset at " + p.cpuset_dir + ", cpu at " + p.cpu_dir;
      return p;
    }
    p.reason = "affinity: cgroup v1 at " + p.cpuset_dir + " and " + p.cpu_dir + " is not writable by us";
    return p;
  }
  p.reason = "affinity: " + (v2_why.empty() ? "no cgroup2 mount at " + o.cgroup_root : v2_why) +
             (p.cpuset_dir.empty() ? ", no cgroup v1 cpuset" : "") + (p.cpu_dir.empty() ? ", no cgroup v1 cpu" : "");
  return p;
}

std::unique_ptr<Glue> make_affinity(const Options& o) { return std::make_unique<AffinityGlue>(o); }

}  // namespace detail

std::pair<Kind, std::string> probe(const Options& o) {
  auto p = detail::probe_detail(o);
  return {p.kind, p.reason};
}

std::pair<bool, std::string> probe_systemd(const Options& o) { return detail::probe_systemd(o); }

Result<std::unique_ptr<Glue>> make_glue(const Options& o) {
  Kind k = o.kind;
  detail::ProbeResult p;
  if (k == Kind::kAuto || k == Kind::kCgroupV1) {
    p = detail::probe_detail(o);
    if (k == Kind::kAuto) k = p.kind;
  }
  switch (k) {
    case Kind::kCgroupV2:
      return detail::make_v2(o);
    case Kind::kCgroupV1:
      // Forced v1 without the mounts in mountinfo (a test's temp dir): the
      // conventional layout under cgroup_root.
      return detail::make_v1(o, p.cpuset_dir.empty() ? o.cgroup_root + "/cpuset" : p.cpuset_dir,
                             p.cpu_dir.empty() ? o.cgroup_root + "/cpu" : p.cpu_dir);
    case Kind::kAffinity:
      return detail::make_affinity(o);
    case Kind::kFake:
      return detail::make_fake(o);
    case Kind::kSystemd:
      return detail::make_systemd(o);
    case Kind::kAuto:
      break;
  }
  return internal("make_glue: no back end for kind " + std::string(kind_name(k)));
}

}  // namespace usched::glue
