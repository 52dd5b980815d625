#include "plan.h"

#include <gtest/gtest.h>

namespace usched::slurm {
namespace {

// Two sockets of two cores with two threads each, numbered as Linux does
// on most x86 machines: thread siblings are N and N+4.
std::vector<CpuTopo> two_sockets_smt() {
  return {{0, 0, 0}, {1, 0, 1}, {2, 1, 0}, {3, 1, 1}, {4, 0, 0}, {5, 0, 1}, {6, 1, 0}, {7, 1, 1}};
}

TEST(SlurmPlan, CoresMapToEveryThreadOfEachCoreInSocketOrder) {
  auto r = cores_to_cpus("0,3", two_sockets_smt());
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->to_string(), "0,3-4,7");
}

TEST(SlurmPlan, CoreNumbersFollowSocketThenCoreNotCpuNumbers) {
  // Core ids need not be dense: sysfs may say 0, 4 on one socket.
  std::vector<CpuTopo> topo = {{0, 0, 4}, {1, 0, 0}, {2, 1, 2}};
  auto r = cores_to_cpus("0-1", topo);
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->to_string(), "0-1");
  r = cores_to_cpus("0", topo);
  EXPECT_EQ(r->to_string(), "1");
  r = cores_to_cpus("2", topo);
  EXPECT_EQ(r->to_string(), "2");
}

TEST(SlurmPlan, RejectsACoreThisNodeDoesNotHave) {
  auto r = cores_to_cpus("0-4", two_sockets_smt());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().message(), "Slurm gave the step core 4 but this node has 4 cores");
}

TEST(SlurmPlan, RejectsAMalformedCoreList) {
  auto r = cores_to_cpus("0-x", two_sockets_smt());
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("'0-x'"), std::string::npos) << r.status().message();
}

TEST(SlurmPlan, PoolTakesOnlyVcpusWhollyOnTheStepsCpus) {
  std::vector<std::pair<int, CpuSet>> vcpus = {
      {0, CpuSet::of({0, 1})}, {1, CpuSet::of({2})}, {2, CpuSet::of({3})}, {3, CpuSet::of({2, 5})}};
  auto r = pool_on("batch", vcpus, CpuSet::range(1, 3));
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(*r, "cpu1 cpu2");
}

TEST(SlurmPlan, PoolFailsNamingTheSchedulerAndCpusWhenNothingFits) {
  std::vector<std::pair<int, CpuSet>> vcpus = {{0, CpuSet::of({0})}, {1, CpuSet()}};
  auto r = pool_on("batch", vcpus, CpuSet::of({1}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().message(), "scheduler 'batch' has no vcpu on the CPUs Slurm gave this step (1)");
}

TEST(SlurmPlan, VcpuListFromLibuschedKeepsEachIndexWithItsCpus) {
  auto v = parse_vcpus("0:0 1:2-3  2:5");
  ASSERT_TRUE(v) << v.status().message();
  ASSERT_EQ(v->size(), 3u);
  EXPECT_EQ((*v)[0].first, 0);
  EXPECT_EQ((*v)[0].second.to_vector(), std::vector<int>({0}));
  EXPECT_EQ((*v)[1].first, 1);
  EXPECT_EQ((*v)[1].second.to_vector(), std::vector<int>({2, 3}));
  EXPECT_EQ((*v)[2].first, 2);
  EXPECT_EQ((*v)[2].second.to_vector(), std::vector<int>({5}));
  auto empty = parse_vcpus("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(SlurmPlan, VcpuListRejectsMalformedEntriesNamingThem) {
  for (const char* bad : {"0", "x:1", "-1:2", "1:z", ":3"}) {
    auto v = parse_vcpus(bad);
    ASSERT_FALSE(v) << bad;
    EXPECT_NE(v.status().message().find(std::string("'") + bad + "'"), std::string::npos) << v.status().message();
  }
}

TEST(SlurmPlan, StepComponentSpellsOutSlurmsSpecialSteps) {
  EXPECT_EQ(step_component(1234, 0), "job1234.0");
  EXPECT_EQ(step_component(7, 0xfffffffbu), "job7.batch");
  EXPECT_EQ(step_component(7, 0xfffffffcu), "job7.extern");
  EXPECT_EQ(step_component(7, 0xfffffffau), "job7.interactive");
}

TEST(SlurmPlan, ArgsAcceptSocketAndQuantum) {
  auto r = parse_args({"socket=/run/x.sock", "quantum=50"});
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->socket, "/run/x.sock");
  EXPECT_EQ(r->quantum_ms, 50);
  r = parse_args({});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->socket, "");
  EXPECT_EQ(r->quantum_ms, 0);
}

TEST(SlurmPlan, ArgsSplitTheAllowListAtColons) {
  auto r = parse_args({"allow=batch:gangs::x/y"});
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->allow, (std::vector<std::string>{"batch", "gangs", "x/y"}));
}

TEST(SlurmPlan, ArgsRejectUnknownOrBadValuesNamingThem) {
  auto r = parse_args({"sock=/x"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().message(),
            "plugstack.conf argument 'sock=/x' is not one of socket=PATH, quantum=MS, allow=NAME[:NAME...]");
  r = parse_args({"socket=relative.sock"});
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("absolute"), std::string::npos);
  r = parse_args({"quantum=0"});
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("'quantum=0'"), std::string::npos);
}

TEST(SlurmPlan, RootMayUseAnyScheduler) { EXPECT_TRUE(may_use("REAL", {{"REAL", 0}}, 0, {})); }

TEST(SlurmPlan, UserMayUseWhatItOwnsAndWhatLiesBelow) {
  EXPECT_TRUE(may_use("team", {{"team", 1000}}, 1000, {}));
  EXPECT_TRUE(may_use("team/a", {{"team", 1000}, {"team/a", 0}}, 1000, {}));
}

TEST(SlurmPlan, UserMayUseTheAllowListAndBelowButNotLookalikes) {
  EXPECT_TRUE(may_use("batch", {{"batch", 0}}, 1000, {"batch"}));
  EXPECT_TRUE(may_use("batch/big", {{"batch", 0}, {"batch/big", 0}}, 1000, {"batch"}));
  EXPECT_FALSE(may_use("batchx", {{"batchx", 0}}, 1000, {"batch"}));
}

TEST(SlurmPlan, UserMayNotUseOthersSchedulersAndTheErrorSaysWhy) {
  Status s = may_use("REAL", {{"REAL", 0}}, 1000, {"batch"});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.code(), Code::kPermissionDenied);
  EXPECT_EQ(s.message(),
            "uid 1000 may not use scheduler 'REAL': it is not the user's (usched chown) and not on the plugin's "
            "allow= list in plugstack.conf");
  EXPECT_FALSE(may_use("team", {{"team", 1001}}, 1000, {}));
}

TEST(SlurmPlan, SocketPatternTakesTheNodeName) {
  EXPECT_EQ(expand_node("/run/usched/%n.sock", "n1"), "/run/usched/n1.sock");
  EXPECT_EQ(expand_node("/run/%n/%n", "a"), "/run/a/a");
  EXPECT_EQ(expand_node("/run/usched/usched.sock", "n1"), "/run/usched/usched.sock");
  EXPECT_EQ(expand_node("/x%", "n1"), "/x%");
}

}  // namespace
}  // namespace usched::slurm
