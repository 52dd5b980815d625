#include <cerrno>
#include <filesystem>
#include <sstream>

#include "internal.h"

namespace usched::glue::detail {

Status write_cpus_two_pass(std::vector<CpusWrite>& v) {
  for (CpusWrite& w : v) {
    CpuSet t = w.old | w.want;
    if (t == w.old) continue;
    if (auto st = write_knob(w.path, t.to_string()); !st) return st.status();
    w.old = t;
  }
  for (auto it = v.rbegin(); it != v.rend(); ++it) {
    if (it->want == it->old) continue;
    // An empty list (v2: all of the parent's) is a newline: a write of no
    // bytes never reaches the kernel.
    const std::string value = it->want.empty() ? "\n" : it->want.to_string();
    if (auto st = write_knob(it->path, value); !st) return st.status();
    it->old = it->want;
  }
  return {};
}

Result<TaskOrigin> capture_sched_and_unified(const ProcFs& proc, int pid, int tid) {
  auto o = capture_sched(pid, tid);
  if (!o) return o;
  auto cg = read_proc_cgroup(proc, pid, tid);
  if (!cg) return cg.status();
  if (auto it = cg->find("unified"); it != cg->end()) o->cgroups["unified"] = it->second;
  return o;
}

Status refuse_isolated(const std::vector<std::pair<std::string, GroupSettings>>& all, const std::string& why) {
  for (const auto& [e, s] : all) {
    if (s.partition != Partition::kIsolated) continue;
    return Status(Code::kFailedPrecondition,
                  "'isolated' (" + e + ") needs a cgroup v2 cpuset partition, and " + why +
                      "; 'exclusive' alone keeps the CPUs to " + e + " without taking them out of load balancing");
  }
  return {};
}

Status move_ids(const std::string& from_file, const std::string& to_file) {
  auto ids = read_knob(from_file);
  // A threaded group's cgroup.procs cannot be read (EOPNOTSUPP): its
  // threads leave with their process, from the subtree's root.
  if (!ids) return ids.err() == ENOENT || ids.err() == EOPNOTSUPP ? Status() : ids.status();
  std::istringstream in(ids.value());
  std::string id;
  while (in >> id) {
    auto st = write_knob(to_file, id);
    if (!st && st.err() != ESRCH) return st.status();
  }
  return {};
}

std::vector<std::string> subdirs_deepest_first(const std::string& top) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(top, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
    std::string d = it->path().string();
    auto sub = subdirs_deepest_first(d);
    out.insert(out.end(), sub.begin(), sub.end());
    out.push_back(d);
  }
  return out;
}

KnobResult<std::string> read_optional(const std::string& path, bool& exists) {
  auto r = read_knob_trimmed(path);
  exists = r.is_ok() || r.err() != ENOENT;
  if (!r && r.err() == ENOENT) return std::string();
  return r;
}

}  // namespace usched::glue::detail
