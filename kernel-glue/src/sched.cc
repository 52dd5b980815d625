#include <sched.h>
#include <sys/resource.h>

#include <cerrno>
#include <set>
#include <sstream>

#include "internal.h"

namespace usched::glue::detail {
namespace {

std::string tid_target(int tid) { return "tid " + std::to_string(tid); }

// Dynamic cpu_set_t sized for the highest CPU asked about (kMaxCpus at most).
class CpuMask {
 public:
  explicit CpuMask(int ncpus) : n_(ncpus < 1 ? 1 : ncpus), set_(CPU_ALLOC(n_)), size_(CPU_ALLOC_SIZE(n_)) {
    CPU_ZERO_S(size_, set_);
  }
  ~CpuMask() { CPU_FREE(set_); }
  CpuMask(const CpuMask&) = delete;
  CpuMask& operator=(const CpuMask&) = delete;
  cpu_set_t* get() { return set_; }
  size_t size() const { return size_; }
  int bits() const { return static_cast<int>(size_ * 8); }

 private:
  int n_;
  cpu_set_t* set_;
  size_t size_;
};

}  // namespace

KnobStatus set_affinity(int tid, const CpuSet& cpus) {
  CpuMask m(cpus.last() + 1);
  for (int c : cpus.to_vector()) CPU_SET_S(c, m.size(), m.get());
  if (::sched_setaffinity(tid, m.size(), m.get()) != 0)
    return sys_error("sched_setaffinity", tid_target(tid), cpus.to_string(), errno);
  return {};
}

KnobResult<CpuSet> get_affinity(int tid) {
  CpuMask m(kMaxCpus);
  if (::sched_getaffinity(tid, m.size(), m.get()) != 0) return sys_error("sched_getaffinity", tid_target(tid), "", errno);
  CpuSet out;
  for (int c = 0; c < m.bits() && c < kMaxCpus; ++c)
    if (CPU_ISSET_S(c, m.size(), m.get())) out.add(c);
  return out;
}

KnobStatus set_class(int tid, const ClassParams& cls) {
  int policy = SCHED_OTHER;
  sched_param p{};
  if (cls.cls == SchedClass::kRealtime) {
    policy = SCHED_RR;
    p.sched_priority = cls.rt_priority;
  } else if (cls.cls == SchedClass::kIdle) {
    policy = SCHED_IDLE;
  }
  if (::sched_setscheduler(tid, policy, &p) != 0) {
    std::string v = class_name(cls.cls);
    if (policy == SCHED_RR) v += " " + std::to_string(p.sched_priority);
    return sys_error("sched_setscheduler", tid_target(tid), v, errno);
  }
  return {};
}

Status for_each_thread(const ProcFs& proc, int pid, int tid, const std::function<KnobStatus(int)>& fn) {
  if (tid != 0) {
    KnobStatus st = fn(tid);
    if (st.err() == ESRCH)
      return not_found("pid " + std::to_string(pid) + " tid " + std::to_string(tid) + " has exited (" +
                       st.error().message() + ")");
    return st.status();
  }
  std::set<int> done;
  // The leader first, without a listing: a process of one thread is then
  // done after one listing that shows nothing new. (Gone, ESRCH, it may
  // still have threads: they are in the listing.)
  done.insert(pid);
  if (KnobStatus st = fn(pid); !st && st.err() != ESRCH) return st.status();
  // Threads created while we work copy the affinity and policy of their
  // creator (which may not be placed yet): loop until a listing shows
  // nothing new.
  for (;;) {
    auto tids = proc.threads(pid);
    if (!tids) return tids.status();
    bool fresh = false;
    for (int t : tids.value()) {
      if (!done.insert(t).second) continue;
      fresh = true;
      KnobStatus st = fn(t);
      if (st.err() == ESRCH) continue;  // that thread exited meanwhile
      if (!st) return st.status();
    }
    if (!fresh) return {};
  }
}

Status place_task(const ProcFs& proc, int pid, int tid, const TaskSettings& s) {
  if (s.cpus.empty()) return invalid("place pid " + std::to_string(pid) + ": empty cpu set");
  return for_each_thread(proc, pid, tid, [&](int t) -> KnobStatus {
    if (auto st = set_affinity(t, s.cpus); !st) return st;
    return set_class(t, s.cls);
  });
}

Result<TaskOrigin> capture_sched(int pid, int tid) {
  int t = tid != 0 ? tid : pid;
  TaskOrigin o;
  auto cpus = get_affinity(t);
  if (!cpus) return cpus.status();
  o.cpus = cpus.value();
  int policy = ::sched_getscheduler(t);
  if (policy < 0) return sys_error("sched_getscheduler", tid_target(t), "", errno).status();
  o.policy = policy;
  sched_param p{};
  if (::sched_getparam(t, &p) != 0) return sys_error("sched_getparam", tid_target(t), "", errno).status();
  o.rt_priority = p.sched_priority;
  errno = 0;
  int nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(t));  // a tid names one thread on Linux
  if (nice == -1 && errno != 0) return sys_error("getpriority", tid_target(t), "", errno).status();
  o.nice = nice;
  return o;
}

Status restore_sched(const ProcFs& proc, int pid, int tid, const TaskOrigin& o) {
  Status st = for_each_thread(proc, pid, tid, [&](int t) -> KnobStatus {
    if (!o.cpus.empty()) {
      if (auto s = set_affinity(t, o.cpus); !s) return s;
    }
    sched_param p{};
    p.sched_priority = o.rt_priority;
    if (::sched_setscheduler(t, o.policy, &p) != 0)
      return sys_error("sched_setscheduler", tid_target(t), std::to_string(o.policy) + " " + std::to_string(o.rt_priority), errno);
    errno = 0;
    int cur = ::getpriority(PRIO_PROCESS, static_cast<id_t>(t));
    if (!(cur == -1 && errno != 0) && cur != o.nice && ::setpriority(PRIO_PROCESS, static_cast<id_t>(t), o.nice) != 0)
      return sys_error("setpriority", tid_target(t), std::to_string(o.nice), errno);
    return {};
  });
  if (st.code() == Code::kNotFound) return {};  // the task has exited: nothing to restore
  return st;
}

std::map<std::string, std::string> parse_proc_cgroup(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    if (a == std::string::npos) continue;
    size_t b = line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string ctrls = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (ctrls.empty()) {
      out["unified"] = path;
      continue;
    }
    std::istringstream cs(ctrls);
    std::string c;
    while (std::getline(cs, c, ',')) out[c] = path;
  }
  return out;
}

Result<std::map<std::string, std::string>> read_proc_cgroup(const ProcFs& proc, int pid, int tid) {
  std::string path = proc.root() + "/" + std::to_string(pid);
  if (tid != 0) path += "/task/" + std::to_string(tid);
  auto r = read_knob(path + "/cgroup");
  if (!r) return r.status();
  return parse_proc_cgroup(r.value());
}

Result<CpuSet> read_cpulist(const std::string& path) {
  auto r = read_knob(path);
  if (!r) return r.status();
  auto c = CpuSet::parse(r.value());
  if (!c) return internal("parse " + path + ": " + c.status().message());
  return c.value();
}

Status check_entity(const std::string& entity) {
  if (entity.empty() || entity.front() == '/' || entity.back() == '/') return invalid("bad entity path '" + entity + "'");
  std::istringstream in(entity);
  std::string part;
  while (std::getline(in, part, '/')) {
    if (part.empty() || part == "." || part == ".." || part.find('@') != std::string::npos)
      return invalid("bad entity path '" + entity + "': component '" + part + "'");
  }
  return {};
}

std::string parent_entity(const std::string& entity) {
  size_t p = entity.rfind('/');
  return p == std::string::npos ? std::string() : entity.substr(0, p);
}

bool is_realtime(const ClassParams& c) { return c.cls == SchedClass::kRealtime; }
bool wants_idle(const ClassParams& c) { return c.cls == SchedClass::kIdle || c.cgroup_idle; }

}  // namespace usched::glue::detail
