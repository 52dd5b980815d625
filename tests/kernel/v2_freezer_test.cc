// Tier 3, the cgroup v2 gang freezer against the real kernel. A machine with
// cgroup v1 cpusets (like CI's) still mounts a v2 hierarchy without
// controllers, and cgroup.freeze needs none: the v2 back end's gang groups
// are made there and frozen for real. The rest of the v2 back end (cpuset,
// cpu weights) needs controllers and is tested against a fake cgroupfs
// (tests/glue/cgroup_v2_test.cc).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
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

}  // namespace
}  // namespace usched::test
