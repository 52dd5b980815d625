// Tier 3, the cgroup v2 gang freezer against the real kernel. A machine with
// cgroup v1 cpusets (like CI's) still mounts a v2 hierarchy without
// controllers, and cgroup.freeze needs none: the v2 back end's gang groups
// are made there and frozen for real. The rest of the v2 back end (cpuset,
// cpu weights) needs controllers and is tested against a fake cgroupfs
// (tests/glue/cgroup_v2_test.cc).
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/kernel.h"
#include "usched/glue/glue.h"
#include "usched/glue/proc.h"

namespace usched::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Nanoseconds the process's main thread has run (schedstat), as the glue
// reads it.
long long ran_ns(pid_t pid) {
  auto r = glue::ProcFs().run_ns(pid, pid);
  return r ? static_cast<long long>(r.value()) : -1;
}

long long ran_during(pid_t pid, std::chrono::milliseconds d) {
  const long long a = ran_ns(pid);
  std::this_thread::sleep_for(d);
  return ran_ns(pid) - a;
}

// The task's group in the v2 hierarchy (the "0::" line of /proc/PID/cgroup).
std::string v2_cgroup(pid_t pid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/cgroup"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return "";
}

std::string frozen_line(const std::string& dir) {
  std::istringstream in(read_file(dir + "/cgroup.events"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("frozen ", 0) == 0) return line;
  return "";
}

std::string why_not() {
  if (::geteuid() != 0) return "the v2 freezer test needs root";
  if (cgroup2_mount().empty()) return "no cgroup v2 hierarchy mounted";
  if (!fs::exists("/proc/self/schedstat")) return "no /proc/PID/schedstat (CONFIG_SCHED_INFO)";
  return "";
}

class V2Freezer : public ::testing::Test {
 protected:
  void SetUp() override {
    USCHED_SKIP_OR_FAIL_IF(why_not());
    root_ = cgroup2_mount();
    top_ = "usched-test-v2f-" + random_suffix();
    // What the back end's setup would make, minus the controllers this
    // hierarchy does not have: the entity and its members leaf.
    for (const std::string& d : {top_, top_ + "/vm", top_ + "/vm/@members"})
      ASSERT_EQ(::mkdir((root_ + "/" + d).c_str(), 0755), 0) << d << ": " << std::strerror(errno);
    if (!fs::exists(root_ + "/" + top_ + "/vm/cgroup.freeze")) {
      USCHED_SKIP_OR_FAIL_IF("this kernel has no cgroup.freeze (Linux < 5.2)");
    }
    glue::Options o;
    o.kind = glue::Kind::kCgroupV2;
    o.cgroup_root = root_;
    o.top = top_;
    auto g = glue::make_glue(o);
    ASSERT_TRUE(g.is_ok()) << g.status().message();
    glue_ = std::move(*g);
  }
  void TearDown() override {
    // Children die first (SIGKILL reaches frozen v2 tasks), then whatever
    // is left is thawed and removed, even after a failed assertion.
    for (auto& c : kids_) c->kill();
    remove_cgroup_top(top_);
    if (!top_.empty()) {
      EXPECT_FALSE(fs::exists(root_ + "/" + top_)) << "cgroup left behind";
    }
  }
  pid_t spinner() {
    // Bounded: 30 s of CPU at most, whatever happens to the test.
    kids_.push_back(std::make_unique<Child>(std::vector<std::string>{"sh", "-c", "ulimit -t 30; while :; do :; done"}));
    return kids_.back()->pid();
  }
  std::string gang_dir() const { return root_ + "/" + top_ + "/vm/gang:g"; }

  std::string root_, top_;
  std::unique_ptr<glue::Glue> glue_;
  std::vector<std::unique_ptr<Child>> kids_;
};

TEST_F(V2Freezer, AGangGroupFreezesAndThawsOnlyOnceTheKernelConfirms) {
  const pid_t a = spinner(), b = spinner();
  for (pid_t p : {a, b}) ASSERT_TRUE(glue_->join_gang("vm", "g", p, 0).is_ok());
  for (pid_t p : {a, b}) {
    EXPECT_EQ(v2_cgroup(p), "/" + top_ + "/vm/gang:g") << "pid " << p << " is not in the gang's group";
  }
  EXPECT_GT(ran_during(a, 200ms), 20'000'000) << "the spinner does not run before any freeze";

  ASSERT_TRUE(glue_->freeze_gang("vm", "g", true).is_ok());
  // Confirmed: the call returned only once the kernel said so.
  EXPECT_EQ(frozen_line(gang_dir()), "frozen 1");
  for (pid_t p : {a, b}) EXPECT_LT(ran_during(p, 200ms), 2'000'000) << "pid " << p << " ran while frozen";

  ASSERT_TRUE(glue_->freeze_gang("vm", "g", false).is_ok());
  EXPECT_EQ(frozen_line(gang_dir()), "frozen 0");
  for (pid_t p : {a, b}) EXPECT_GT(ran_during(p, 200ms), 20'000'000) << "pid " << p << " did not run after the thaw";
}

TEST_F(V2Freezer, ThawAllAndRemovingTheGangLeaveNothingFrozen) {
  const pid_t a = spinner();
  ASSERT_TRUE(glue_->join_gang("vm", "g", a, 0).is_ok());
  ASSERT_TRUE(glue_->freeze_gang("vm", "g", true).is_ok());
  ASSERT_EQ(frozen_line(gang_dir()), "frozen 1");

  // What uschedd does at start-up and on every way out.
  ASSERT_TRUE(glue_->thaw_all().is_ok());
  EXPECT_EQ(frozen_line(gang_dir()), "frozen 0");
  EXPECT_GT(ran_during(a, 200ms), 20'000'000);

  // Removing a frozen gang thaws it and returns its process to the
  // entity's members leaf; the gang's group is gone.
  ASSERT_TRUE(glue_->freeze_gang("vm", "g", true).is_ok());
  auto st = glue_->remove_gang("vm", "g");
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_FALSE(fs::exists(gang_dir()));
  EXPECT_EQ(v2_cgroup(a), "/" + top_ + "/vm/@members");
  EXPECT_GT(ran_during(a, 200ms), 20'000'000) << "the process stayed frozen after its gang was removed";
}

TEST_F(V2Freezer, AMemberKilledWhileFrozenDoesNotKeepTheGangFromThawing) {
  const pid_t a = spinner(), b = spinner();
  for (pid_t p : {a, b}) ASSERT_TRUE(glue_->join_gang("vm", "g", p, 0).is_ok());
  ASSERT_TRUE(glue_->freeze_gang("vm", "g", true).is_ok());
  kids_.front()->kill();  // SIGKILL of a frozen member, reaped
  ASSERT_TRUE(glue_->freeze_gang("vm", "g", false).is_ok());
  EXPECT_EQ(frozen_line(gang_dir()), "frozen 0");
  EXPECT_GT(ran_during(b, 200ms), 20'000'000);
}

// A process with two spinning threads: "CPU 0/KVM" (the gang's) and "IO"
// (not), alive until killed or 60 s pass (alarm). Forked before any thread
// of the test's own spins.
class TwoThreads {
 public:
  TwoThreads() {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::alarm(60);
      auto spin = +[](void* name) -> void* {
        pthread_setname_np(pthread_self(), static_cast<const char*>(name));
        for (;;) {
        }
      };
      pthread_t t[2];
      pthread_create(&t[0], nullptr, spin, const_cast<char*>("CPU 0/KVM"));
      pthread_create(&t[1], nullptr, spin, const_cast<char*>("IO"));
      for (;;) ::pause();
    }
  }
  ~TwoThreads() { kill_and_reap(pid_); }
  TwoThreads(const TwoThreads&) = delete;
  TwoThreads& operator=(const TwoThreads&) = delete;
  pid_t pid() const { return pid_; }
  int tid(const std::string& comm) const {
    std::error_code ec;
    for (auto& e : fs::directory_iterator("/proc/" + std::to_string(pid_) + "/task", ec)) {
      if (read_file(e.path().string() + "/comm") == comm + "\n") return std::stoi(e.path().filename());
    }
    return 0;
  }

 private:
  pid_t pid_ = -1;
};

long long thread_ran_during(pid_t pid, int tid, std::chrono::milliseconds d) {
  auto at = [&] {
    auto r = glue::ProcFs().run_ns(pid, tid);
    return r ? static_cast<long long>(r.value()) : -1;
  };
  const long long a = at();
  std::this_thread::sleep_for(d);
  return at() - a;
}

std::string v2_thread_cgroup(pid_t pid, int tid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/cgroup"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return "";
}

// The real kernel's thread mode: the gang's thread sits in a threaded group
// of its process's own subtree and freezes alone; the process's other
// thread never does; the process leaving the gang leaves the subtree whole,
// thawed, and the subtree is removed.
TEST_F(V2Freezer, AGangThreadFreezesInAThreadedGroupWhileItsProcesssOtherThreadRuns) {
  TwoThreads p;
  ASSERT_TRUE(eventually([&] { return p.tid("CPU 0/KVM") && p.tid("IO"); }));
  const int vcpu = p.tid("CPU 0/KVM"), io = p.tid("IO");
  // Bound to the entity, as uschedd's bind leaves it.
  {
    std::ofstream(root_ + "/" + top_ + "/vm/@members/cgroup.procs") << p.pid();
  }
  ASSERT_EQ(v2_cgroup(p.pid()), "/" + top_ + "/vm/@members");
  auto st = glue_->isolate_threads("vm", "g", p.pid());
  ASSERT_TRUE(st.is_ok()) << st.message();
  st = glue_->join_gang("vm", "g", p.pid(), vcpu);
  ASSERT_TRUE(st.is_ok()) << st.message();
  const std::string own = "/" + top_ + "/vm/@pid:" + std::to_string(p.pid());
  EXPECT_EQ(read_file(root_ + own + "/cgroup.type"), "domain threaded\n");
  EXPECT_EQ(read_file(root_ + own + "/gang:g/cgroup.type"), "threaded\n");
  EXPECT_EQ(v2_thread_cgroup(p.pid(), vcpu), own + "/gang:g");
  EXPECT_EQ(v2_thread_cgroup(p.pid(), io), own);
  EXPECT_EQ(v2_thread_cgroup(p.pid(), p.pid()), own);

  ASSERT_TRUE(glue_->freeze_gang("vm", "g", true).is_ok());
  EXPECT_EQ(frozen_line(root_ + own + "/gang:g"), "frozen 1");
  EXPECT_EQ(frozen_line(root_ + own), "frozen 0");
  EXPECT_LT(thread_ran_during(p.pid(), vcpu, 200ms), 2'000'000) << "the gang thread ran while frozen";
  EXPECT_GT(thread_ran_during(p.pid(), io, 200ms), 20'000'000) << "the other thread stopped with the gang";

  // A thread leaving the gang goes back to the thread root, thawed.
  ASSERT_TRUE(glue_->leave_gang("vm", "g", p.pid(), vcpu).is_ok());
  EXPECT_EQ(v2_thread_cgroup(p.pid(), vcpu), own);
  EXPECT_GT(thread_ran_during(p.pid(), vcpu, 200ms), 20'000'000);
  ASSERT_TRUE(glue_->join_gang("vm", "g", p.pid(), vcpu).is_ok());
  ASSERT_TRUE(glue_->freeze_gang("vm", "g", true).is_ok());

  // Guardian and start-up: a walk of the top thaws the threaded group.
  ASSERT_TRUE(glue_->thaw_all().is_ok());
  EXPECT_EQ(frozen_line(root_ + own + "/gang:g"), "frozen 0");
  ASSERT_TRUE(glue_->freeze_gang("vm", "g", true).is_ok());

  // The process leaves the gang (frozen as it is): whole, thawed, and its
  // subtree is gone.
  st = glue_->leave_gang("vm", "g", p.pid(), 0);
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_EQ(v2_thread_cgroup(p.pid(), vcpu), "/" + top_ + "/vm/@members");
  EXPECT_EQ(v2_thread_cgroup(p.pid(), io), "/" + top_ + "/vm/@members");
  EXPECT_FALSE(fs::exists(root_ + own)) << own << " left behind";
  EXPECT_GT(thread_ran_during(p.pid(), vcpu, 200ms), 20'000'000) << "the gang thread stayed frozen";
}

}  // namespace
}  // namespace usched::test
