// What every tier-3 test needs: whether this machine can run it (root and a
// cpuset controller), the skip-or-fail rule of USCHED_REQUIRE_KERNEL, and
// the kernel's own view of a task (its allowed CPUs, its cpuset cgroup).
#pragma once

#include <sched.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>
#include <sstream>
#include <string>

#include "support/harness.h"

namespace usched::test {

inline const std::string kCgroupRoot = "/sys/fs/cgroup";

// Under USCHED_REQUIRE_KERNEL=1 (CI) a test that would skip fails.
inline bool kernel_required() {
  const char* v = std::getenv("USCHED_REQUIRE_KERNEL");
  return v && std::string(v) == "1";
}

// "" when the machine can run the kernel tier, else why not (`who` names
// the tests in the message: "kernel tests need root").
inline std::string kernel_unavailable(const std::string& who = "kernel tests") {
  if (::geteuid() != 0) return who + " need root";
  const bool v1 = std::filesystem::exists(kCgroupRoot + "/cpuset/cpuset.cpus");
  const bool v2 = read_file(kCgroupRoot + "/cgroup.controllers").find("cpuset") != std::string::npos;
  if (!v1 && !v2) return "no cgroup cpuset controller (v1 or v2) at " + kCgroupRoot;
  return "";
}

// True on a cgroup v2 machine whose root offers cpusets (a production
// Debian 12 box, the VM tier's guests); false on a v1 or hybrid one like CI.
inline bool cgroup_v2_cpusets() {
  return !std::filesystem::exists(kCgroupRoot + "/cpuset/cpuset.cpus") &&
         read_file(kCgroupRoot + "/cgroup.controllers").find("cpuset") != std::string::npos;
}

// Where the cpuset cgroups of uschedd's entities live: the v1 cpuset
// hierarchy, or the v2 root.
inline std::string cpuset_hierarchy() { return cgroup_v2_cpusets() ? kCgroupRoot : kCgroupRoot + "/cpuset"; }

// Every hierarchy uschedd makes its top directory in (v1: cpuset and cpu;
// v2: the one root), for checks that nothing was left behind.
inline std::vector<std::string> cgroup_hierarchies() {
  if (cgroup_v2_cpusets()) return {kCgroupRoot};
  return {kCgroupRoot + "/cpuset", kCgroupRoot + "/cpu"};
}

// The online CPUs as a cpu list ("0-1", "0-7"): where an unplaced task runs.
inline std::string all_cpus() {
  std::string s = read_file("/sys/devices/system/cpu/online");
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// Skips the test with the reason `why` (when not empty), or fails it under
// USCHED_REQUIRE_KERNEL=1.
#define USCHED_SKIP_OR_FAIL_IF(why_expr)                                          \
  do {                                                                            \
    const std::string why_ = (why_expr);                                          \
    if (!why_.empty()) {                                                          \
      if (::usched::test::kernel_required()) FAIL() << why_ << " (USCHED_REQUIRE_KERNEL=1)"; \
      GTEST_SKIP() << why_;                                                       \
    }                                                                             \
  } while (0)

#define REQUIRE_KERNEL() USCHED_SKIP_OR_FAIL_IF(::usched::test::kernel_unavailable())

// Cpus_allowed_list of /proc/PID[/task/TID]/status, as the kernel says.
inline std::string cpus_allowed(pid_t pid, pid_t tid = 0) {
  const std::string base = "/proc/" + std::to_string(pid);
  std::istringstream in(read_file(tid ? base + "/task/" + std::to_string(tid) + "/status" : base + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Cpus_allowed_list:", 0) == 0) {
      auto v = line.substr(18);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "";
}

// The cpuset cgroup of a task (the v1 cpuset line, or the v2 "0::" line).
inline std::string cpuset_cgroup(pid_t pid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/cgroup"));
  std::string line;
  while (std::getline(in, line)) {
    const auto c1 = line.find(':');
    const auto c2 = line.find(':', c1 + 1);
    const std::string ctrl = line.substr(c1 + 1, c2 - c1 - 1);
    if (ctrl.find("cpuset") != std::string::npos || ctrl.empty()) return line.substr(c2 + 1);
  }
  return "";
}

// Where the cgroup v2 hierarchy is mounted ("" when it is not): the root
// on a v2 machine, /sys/fs/cgroup/unified on a hybrid one like this.
inline std::string cgroup2_mount() {
  std::istringstream in(read_file("/proc/self/mountinfo"));
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
    const auto dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) continue;
    std::istringstream f(line.substr(0, dash));
    std::string id, parent, dev, root, mount;
    if (f >> id >> parent >> dev >> root >> mount) return mount;
  }
  return "";
}

// A safety net for teardown: whatever a test left under `top` in any
// hierarchy (v1 cpuset, cpu, freezer; the v2 hierarchy) is thawed, its
// tasks are moved back to the hierarchy's root, and its directories are
// removed, deepest first.
inline void remove_cgroup_top(const std::string& top) {
  if (top.empty()) return;
  std::vector<std::pair<std::string, bool>> roots;  // (root, is v2)
  for (const std::string h : {"freezer", "cpuset", "cpu"}) roots.emplace_back(kCgroupRoot + "/" + h, false);
  const std::string v2 = cgroup2_mount();
  if (!v2.empty()) roots.emplace_back(v2, true);
  // Twice: a v2 threaded group lists no processes and empties only once its
  // process has left the subtree's root, which comes after it below.
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& [root, is_v2] : roots) {
      const std::string dir = root + "/" + top;
      if (!std::filesystem::exists(dir)) continue;
      std::vector<std::string> dirs;
      for (auto& e : std::filesystem::recursive_directory_iterator(dir)) {
        if (e.is_directory()) dirs.push_back(e.path());
      }
      dirs.push_back(dir);
      std::sort(dirs.begin(), dirs.end(), [](auto& a, auto& b) { return a.size() > b.size(); });
      for (auto& d : dirs) {
        if (!is_v2 && std::filesystem::exists(d + "/freezer.state")) std::ofstream(d + "/freezer.state") << "THAWED";
        if (is_v2 && std::filesystem::exists(d + "/cgroup.freeze")) std::ofstream(d + "/cgroup.freeze") << "0";
        std::istringstream tasks(read_file(d + (is_v2 ? "/cgroup.procs" : "/tasks")));
        for (std::string t; tasks >> t;) std::ofstream(root + (is_v2 ? "/cgroup.procs" : "/tasks")) << t;
        ::rmdir(d.c_str());
      }
    }
  }
}

// The calling thread at SCHED_FIFO 10 while it lives: above gang members
// (SCHED_RR 1 in REAL, or any normal class), so a sampler is on time on a
// loaded machine. Never held across a fork.
class Fifo {
 public:
  Fifo() {
    sched_param sp{};
    sp.sched_priority = 10;
    ok_ = ::sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
  }
  ~Fifo() {
    sched_param sp{};
    if (ok_) ::sched_setscheduler(0, SCHED_OTHER, &sp);
  }
  Fifo(const Fifo&) = delete;
  Fifo& operator=(const Fifo&) = delete;

 private:
  bool ok_ = false;
};

}  // namespace usched::test
