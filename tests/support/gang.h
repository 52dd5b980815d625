// What the kernel-tier gang tests share: processes whose threads are gang
// members (bounded in time), a SCHED_FIFO guard for samplers, and the
// kernel's view of the gang freezer (v1 freezer.state, or v2 cgroup.freeze
// and cgroup.events, under a top).
#pragma once

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/harness.h"
#include "support/kernel.h"
#include "usched/glue/proc.h"

namespace usched::test {

// Where gang groups are: the v1 freezer hierarchy, or beside the entity's
// members in the v2 hierarchy.
inline const bool kV2 = cgroup_v2_cpusets();
inline const std::string kFreezer = kV2 ? kCgroupRoot : kCgroupRoot + "/freezer";

// Why the kernel-tier gang tests cannot run here ("" when they can).
inline std::string gang_kernel_missing() {
  if (::geteuid() != 0) return "gang kernel tests need root";
  if (!kV2 && !std::filesystem::exists(kFreezer + "/tasks")) return "no cgroup v1 freezer at " + kFreezer;
  if (!std::filesystem::exists("/proc/self/schedstat")) return "no /proc/PID/schedstat (CONFIG_SCHED_INFO)";
  if (std::thread::hardware_concurrency() < 2) return "gangs of two need two CPUs";
  return "";
}

// A process with two worker threads, alive until it is killed or
// `limit_s` passes (alarm: bounded even if the test dies). Spinning
// workers burn their CPU; the others wake every millisecond, enough to be
// placed, frozen and thawed without taking the machine. Fork it before the
// test raises its own priority, so it starts at SCHED_OTHER.
class Spinners {
 public:
  explicit Spinners(bool spin = true, int limit_s = 30 * time_scale()) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::alarm(static_cast<unsigned>(limit_s));
      pthread_t t[2];
      for (auto& x : t) {
        pthread_create(&x, nullptr, spin ? +[](void*) -> void* { for (;;) {} }
                                         : +[](void*) -> void* {
                                             for (;;) {
                                               timespec ts{0, 1'000'000};
                                               ::nanosleep(&ts, nullptr);
                                             }
                                           },
                       nullptr);
      }
      for (;;) ::pause();
    }
  }
  ~Spinners() { kill(); }
  Spinners(const Spinners&) = delete;
  Spinners& operator=(const Spinners&) = delete;
  void kill() { kill_and_reap(pid_); }
  pid_t pid() const { return pid_; }
  // The two worker threads (not the main one, which sleeps in pause).
  std::vector<int> workers() const {
    std::vector<int> out;
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/task", ec)) {
      int tid = std::stoi(e.path().filename());
      if (tid != pid_) out.push_back(tid);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  pid_t pid_ = -1;
};

// Nanoseconds the thread has run (schedstat, exact), as the glue reads it.
inline uint64_t run_ns(int pid, int tid) {
  auto r = glue::ProcFs().run_ns(pid, tid);
  return r ? r.value() : 0;
}

// A group's freezer state in v1's words: v1 freezer.state, or on v2 the
// wish (cgroup.freeze) and the kernel's confirmation (cgroup.events
// "frozen"): FROZEN, FREEZING, THAWED, or THAWING while a thaw is pending.
inline std::string freezer_state(const std::string& dir) {
  if (!kV2) {
    std::string s = read_file(dir + "/freezer.state");
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    return s;
  }
  const bool want = read_file(dir + "/cgroup.freeze").rfind("1", 0) == 0;
  const bool is = read_file(dir + "/cgroup.events").find("frozen 1") != std::string::npos;
  return want ? (is ? "FROZEN" : "FREEZING") : (is ? "THAWING" : "THAWED");
}

// The freezer state of every group under our top directory.
// Every directory below `dir` (absolute paths, `dir` itself not among
// them; none when it does not exist). Never throws: uschedd may remove a
// group while the walk runs (the chaos test destroys schedulers from
// another thread), and the throwing increment of a range-for then ended a
// test with std::terminate. A walk that meets a vanished directory starts
// again, so that a partial tree is not taken for the whole one (after 20
// tries, the last partial one).
inline std::vector<std::string> dirs_under(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  for (int attempt = 0; attempt < 20; ++attempt) {
    out.clear();
    std::error_code ec;
    if (!fs::exists(dir, ec)) return out;
    fs::recursive_directory_iterator it(dir, ec), end;
    while (!ec && it != end) {
      std::error_code dec;
      if (it->is_directory(dec)) out.push_back(it->path().string());
      it.increment(ec);
    }
    if (!ec) return out;
  }
  return out;
}

inline std::map<std::string, std::string> freezer_states(const std::string& top) {
  std::map<std::string, std::string> out;
  for (const std::string& d : dirs_under(kFreezer + "/" + top)) out[d] = freezer_state(d);
  return out;
}

inline bool any_frozen(const std::string& top) {
  for (auto& [d, s] : freezer_states(top))
    if (s != "THAWED" && !s.empty()) return true;
  return false;
}

// State letter of /proc/PID/stat ('T' stopped, 'Z' zombie), '?' when gone.
inline char task_state(int pid) {
  const std::string s = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto rp = s.rfind(')');
  return rp == std::string::npos || rp + 2 >= s.size() ? '?' : s[rp + 2];
}

// A uschedd on real cgroups under a private top, with two gang member
// processes a_ and b_; whatever a test leaves is thawed and removed.
class GangDaemonTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "uschedd log (tail):\n" << tail(daemon_->log());
    a_.reset();
    b_.reset();
    if (daemon_) daemon_->stop(SIGTERM);
    remove_cgroup_top(top_);  // whatever happened: thaw and remove every group of ours
  }
  static std::string tail(const std::string& s) { return s.size() > 4000 ? s.substr(s.size() - 4000) : s; }
  CmdResult cli(std::vector<std::string> args) { return daemon_->cli(args, {.timeout = scaled(10s)}); }
  // (Re)starts uschedd on top_ and the test's state directory. Where the
  // machine runs slower than real hardware (time_scale() > 1, an emulated
  // VM guest), a freeze is confirmed later too: the daemon is given the
  // default bound (the RR slice plus a tick) stretched alike.
  void start_daemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--cgroup-top", top_, "--no-config", "--log-level", "debug"};
    if (time_scale() > 1) args.insert(args.end(), {"--freeze-timeout-ms", std::to_string(110 * time_scale())});
    args.insert(args.end(), extra.begin(), extra.end());
    daemon_ = std::make_unique<Daemon>(args, state_.path());
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }

  TempDir state_;
  std::string top_ = "usched-test-" + random_suffix();
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<Spinners> a_, b_;
};

}  // namespace usched::test
