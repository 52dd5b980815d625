// The VM tier's own tests (run inside the 4- and 8-vCPU guests by
// scripts/vm-test.sh, never on the host): the tree's vcpu arithmetic
// realised on real CPUs under cgroup v2, checked from outside through the
// kernel's view (Cpus_allowed_list of each member, cpuset.cpus and
// cpuset.cpus.effective of each cgroup). The suite says which guest a test
// needs: OnFourCpus and OnEightCpus need that many CPUs, OnAnyCpus (at
// least 4) adapts to the CPUs there are. A guest with too few CPUs fails
// them (they are never skipped: the tier exists to run them).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "guest_daemon.h"
#include "usched/cpuset.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;

class Arith : public GuestDaemonTest {
 protected:
  // Binds n new sleepers to `name` in turn; returns their Cpus_allowed_list.
  std::vector<std::string> bind_sleepers(const std::string& name, int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) {
      kids_.push_back(std::make_unique<Child>());
      const pid_t p = kids_.back()->pid();
      auto r = daemon_->cli({"bind", name, "--pid", std::to_string(p)});
      EXPECT_EQ(r.exit_code, 0) << r.err;
      out.push_back(cpus_allowed(p));
    }
    return out;
  }
  // cpuset.cpus of the entity's cgroup, as the kernel reads it back.
  std::string cgroup_cpus(const std::string& entity, const char* knob = "cpuset.cpus") {
    return trimmed(read_file(cpuset_hierarchy() + "/" + top_ + "/" + entity + "/" + knob));
  }
  // The vcpus of the entity as the API reports them.
  std::vector<std::string> api_vcpus(const std::string& entity) {
    std::vector<std::string> out;
    auto s = client_->get(entity);
    EXPECT_TRUE(s.is_ok()) << entity << ": " << s.status().message();
    if (s.is_ok())
      for (const auto& v : s->vcpu()) out.push_back(v.cpus());
    return out;
  }

};

using V = std::vector<std::string>;

class OnFourCpus : public Arith {
 protected:
  void SetUp() override { need(4); }
};
class OnEightCpus : public Arith {
 protected:
  void SetUp() override { need(8); }
};
class OnAnyCpus : public Arith {
 protected:
  void SetUp() override { need(4); }
};

TEST_F(OnEightCpus, FourVcpusOnAPoolOfEightEachGetTwoAdjacentCpus) {
  create("v4 on cpu0-7 vcpus 4 locked");
  EXPECT_EQ(api_vcpus("v4"), (V{"0-1", "2-3", "4-5", "6-7"}));
  EXPECT_EQ(cgroup_cpus("v4"), "0-7");
  EXPECT_EQ(bind_sleepers("v4", 4), (V{"0-1", "2-3", "4-5", "6-7"}));
}

TEST_F(OnEightCpus, ThreeLevelsDeepFourOnEightThenEightOnFour) {
  // v4: 4 vcpus on 8 CPUs: {0,1} {2,3} {4,5} {6,7}.
  create("v4 on cpu* vcpus 4");
  // mid: 8 vcpus on v4's 4: vcpu i is v4's vcpu i mod 4.
  create("v4/mid on cpu0-3 vcpus 8");
  EXPECT_EQ(cgroup_cpus("v4/mid"), "0-7");
  EXPECT_EQ(api_vcpus("v4/mid"), (V{"0-1", "2-3", "4-5", "6-7", "0-1", "2-3", "4-5", "6-7"}));
  // leaf: mid's vcpus 5 and 6, which are v4's vcpus 1 and 2; locked.
  create("v4/mid/leaf on cpu5 cpu6 locked");
  EXPECT_EQ(cgroup_cpus("v4/mid/leaf"), "2-5");
  EXPECT_EQ(cgroup_cpus("v4/mid/leaf", "cpuset.cpus.effective"), "2-5");
  EXPECT_EQ(bind_sleepers("v4/mid/leaf", 3), (V{"2-3", "4-5", "2-3"}));
  // Resizing the top level moves everything below it: on cpu0-3 v4's
  // vcpus are {0} {1} {2} {3}, so mid's vcpus 5 and 6 are CPUs 1 and 2.
  create("update v4 on cpu0-3");
  EXPECT_EQ(cgroup_cpus("v4"), "0-3");
  EXPECT_EQ(cgroup_cpus("v4/mid"), "0-3");
  EXPECT_EQ(cgroup_cpus("v4/mid/leaf"), "1-2");
  std::vector<std::string> now;
  for (auto& k : kids_) now.push_back(cpus_allowed(k->pid()));
  EXPECT_EQ(now, (V{"1", "2", "1"}));
}

TEST_F(OnFourCpus, EightVcpusOnAPoolOfFourWrapAround) {
  create("e8 on cpu0-3 vcpus 8 locked");
  EXPECT_EQ(api_vcpus("e8"), (V{"0", "1", "2", "3", "0", "1", "2", "3"}));
  EXPECT_EQ(cgroup_cpus("e8"), "0-3");
  EXPECT_EQ(bind_sleepers("e8", 8), (V{"0", "1", "2", "3", "0", "1", "2", "3"}));
}

TEST_F(OnFourCpus, ThreeLevelsDeepEightOnFourThenFourOnTwo) {
  create("e8 on cpu* vcpus 8");
  // e8's vcpus 2..5 are CPUs 2, 3, 0, 1.
  create("e8/x on cpu2-5");
  EXPECT_EQ(cgroup_cpus("e8/x"), "0-3");
  EXPECT_EQ(api_vcpus("e8/x"), (V{"2", "3", "0", "1"}));
  // x's vcpus 1 and 2 (CPUs 3 and 0) as 4 vcpus, locked.
  create("e8/x/y on cpu1 cpu2 vcpus 4 locked");
  EXPECT_EQ(cgroup_cpus("e8/x/y"), "0,3");
  EXPECT_EQ(bind_sleepers("e8/x/y", 4), (V{"3", "0", "3", "0"}));
}

TEST_F(OnAnyCpus, LockedSchedulerSpreadsOneChildPerCpu) {
  const int n = online_cpu_count();
  create("L on cpu* locked");
  auto got = bind_sleepers("L", n);
  V want;
  for (int i = 0; i < n; ++i) want.push_back(std::to_string(i));
  EXPECT_EQ(got, want);
  // One more goes to the vcpu with the fewest members, the lowest on ties.
  EXPECT_EQ(bind_sleepers("L", 1), V{"0"});
}

TEST_F(OnAnyCpus, ExclusiveSubsetIsTakenFromEveryOtherScheduler) {
  const int n = online_cpu_count();
  const std::string last2 = std::to_string(n - 2) + "-" + std::to_string(n - 1);
  const std::string rest = "0-" + std::to_string(n - 3);
  auto norm = bind_sleepers("NORM", 1);
  ASSERT_EQ(norm[0], "0-" + std::to_string(n - 1));
  create("X on cpu" + last2 + " exclusive");
  // The member already in NORM moved off the exclusive CPUs, and new ones
  // are placed without them; X's own members get exactly them.
  EXPECT_EQ(cpus_allowed(kids_[0]->pid()), rest);
  EXPECT_EQ(bind_sleepers("IDLE", 1), V{rest});
  EXPECT_EQ(bind_sleepers("X", 1), V{last2});
  EXPECT_EQ(cgroup_cpus("X"), last2);
  // And released again when X goes.
  create("destroy X --force");
  EXPECT_EQ(cpus_allowed(kids_[0]->pid()), "0-" + std::to_string(n - 1));
}

}  // namespace
}  // namespace usched::test
