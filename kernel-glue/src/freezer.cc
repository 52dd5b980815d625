// Gang freezing, shared by the back ends: the cgroup v1 freezer
// (freezer.state), cgroup v2 cgroup.freeze, and SIGSTOP/SIGCONT. Every
// knob goes through write_knob/read_knob; a freeze only counts once the
// kernel confirms it.
#include "freezer.h"

#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <vector>

namespace usched::glue::detail {
namespace {

using Clock = std::chrono::steady_clock;

// A spinning thread notices a freeze only when it next enters the kernel
// (measured 4-12 ms on a 2-vCPU VM, one timer tick); an exiting task or
// one in an uninterruptible sleep can hold FREEZING far longer. A runnable
// task freezes only once it runs, and a SCHED_RR task queued behind another
// of the same priority waits up to a whole RR time slice (100 ms by
// default): a bound below that made a gang of realtime members that shared
// a CPU with another never freeze, and once left thawed never again. So the
// bound is 40 ms or the RR slice plus a tick, whichever is longer
// (freeze_settle). Poll finely: the caller's strand waits meanwhile.
constexpr int kRetries = 2;

void pause_briefly() {
  timespec ts{0, 20'000};  // 20 us
  ::nanosleep(&ts, nullptr);
}

bool events_frozen(const std::string& text, bool want) {
  std::istringstream in(text);
  std::string k, v;
  while (in >> k >> v)
    if (k == "frozen") return (v == "1") == want;
  return false;
}

// Polls until the kernel reports the state asked for, or `settle` passes.
KnobResult<bool> wait_settled(const std::string& dir, bool v2, bool frozen, std::chrono::milliseconds settle) {
  const auto until = Clock::now() + settle;
  for (;;) {
    if (v2) {
      auto ev = read_knob(dir + "/cgroup.events");
      if (!ev) return ev.error();
      if (events_frozen(ev.value(), frozen)) return true;
    } else {
      auto s = read_knob_trimmed(dir + "/freezer.state");  // reading FREEZING re-checks the tasks (update_if_frozen)
      if (!s) return s.error();
      if (s.value() == (frozen ? "FROZEN" : "THAWED")) return true;
    }
    if (Clock::now() > until) return false;
    pause_briefly();
  }
}

}  // namespace

std::chrono::milliseconds freeze_settle(const ProcFs& proc, int override_ms) {
  if (override_ms > 0) return std::chrono::milliseconds(override_ms);
  long rr_ms = 100;  // the kernel's default (RR_TIMESLICE)
  if (auto v = read_knob_trimmed(proc.root() + "/sys/kernel/sched_rr_timeslice_ms")) {
    char* end = nullptr;
    const long n = std::strtol(v.value().c_str(), &end, 10);
    if (end && *end == '\0' && n > 0 && n < 10'000) rr_ms = n;
  }
  return std::chrono::milliseconds(std::max(40L, rr_ms + 10));
}

Status cgroup_freeze(const std::string& dir, bool v2, bool frozen, std::chrono::milliseconds settle) {
  return cgroup_freeze(std::vector<std::string>{dir}, v2, frozen, settle);
}

Status cgroup_freeze(const std::vector<std::string>& dirs, bool v2, bool frozen, std::chrono::milliseconds settle) {
  // Every group is asked first and confirmed after, so that a gang in
  // several groups (v2: one per process whose threads are members) stops
  // at once rather than group after group.
  auto set_all = [&](bool want) -> KnobResult<std::string> {
    for (const std::string& d : dirs) {
      const std::string knob = d + (v2 ? "/cgroup.freeze" : "/freezer.state");
      if (auto st = write_knob(knob, v2 ? (want ? "1" : "0") : (want ? "FROZEN" : "THAWED")); !st) return st.error();
    }
    std::string stuck;
    for (const std::string& d : dirs) {
      auto ok = wait_settled(d, v2, want, settle);
      if (!ok) return ok.error();
      if (!ok.value() && stuck.empty()) stuck = d;
    }
    return stuck;
  };
  std::string stuck;
  for (int attempt = 0; attempt < kRetries; ++attempt) {
    auto r = set_all(frozen);
    if (!r) {
      if (frozen) (void)set_all(false);  // never leave part of the gang frozen
      return r.status();
    }
    stuck = r.value();
    if (stuck.empty()) return {};
    if (!frozen) break;
    // Stuck in FREEZING (v1 races exec, or a task in D state): thaw, retry.
    (void)set_all(false);
  }
  if (frozen) (void)set_all(false);  // never leave it half frozen
  return Status(Code::kUnavailable, std::string(frozen ? "freeze" : "thaw") + " of " + stuck + " did not settle within " +
                                        std::to_string(settle.count()) + " ms after " + std::to_string(kRetries) +
                                        " tries; the gang is left thawed");
}

Status cgroup_thaw_tree(const std::string& top, bool v2, std::chrono::milliseconds settle) {
  if (!knob_exists(top)) return {};
  Status first;
  auto dirs = subdirs_deepest_first(top);
  dirs.push_back(top);
  for (const std::string& d : dirs) {
    const std::string knob = d + (v2 ? "/cgroup.freeze" : "/freezer.state");
    if (!knob_exists(knob)) continue;
    auto cur = read_knob_trimmed(knob);
    if (cur && (cur.value() == "THAWED" || cur.value() == "0")) continue;
    Status st = cgroup_freeze(d, v2, false, settle);
    if (!st && first) first = st;  // keep going: thaw as much as we can
  }
  return first;
}

KnobStatus signal_process(int pid, bool stop) {
  if (::kill(pid, stop ? SIGSTOP : SIGCONT) != 0) {
    return sys_error("kill", "pid " + std::to_string(pid), stop ? "SIGSTOP" : "SIGCONT", errno);
  }
  return {};
}

Status signal_freeze(const ProcFs& proc, const std::set<int>& pids, bool frozen, std::chrono::milliseconds settle) {
  for (int pid : pids) {
    auto st = signal_process(pid, frozen);
    if (!st && st.err() != ESRCH) return st;
  }
  if (!frozen) return {};
  // SIGSTOP is delivered asynchronously: confirmed when every process shows
  // state T (stopped) in /proc/PID/stat.
  const auto until = Clock::now() + settle;
  for (int pid : pids) {
    for (;;) {
      auto t = proc.task(pid);
      if (!t || t->state == 'T' || t->state == 't' || t->exited()) break;
      if (Clock::now() > until) {
        for (int p : pids) (void)signal_process(p, false);
        return Status(Code::kUnavailable, "SIGSTOP of pid " + std::to_string(pid) + " not seen within " +
                                              std::to_string(settle.count()) + " ms; the gang is left running");
      }
      pause_briefly();
    }
  }
  return {};
}

}  // namespace usched::glue::detail
