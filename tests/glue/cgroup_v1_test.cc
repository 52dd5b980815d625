// The real cgroup v1 back end against a fake cgroupfs in a temp dir.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>

#include "fake_fs.h"
#include "usched/glue/glue.h"

namespace usched::glue {
namespace {

using testing::get;
using testing::put;

class V1Test : public ::testing::Test {
 protected:
  testing::TempDir t;
  Options o;
  std::string cs, cpu;  // hierarchy roots
  std::unique_ptr<Glue> g;

  void SetUp() override {
    o.kind = Kind::kCgroupV1;
    o.cgroup_root = t / "cg";
    cs = o.cgroup_root + "/cpuset";
    cpu = o.cgroup_root + "/cpu";
    put(cs + "/cpuset.cpus", "0-7\n");
    put(cs + "/cpuset.mems", "0\n");
    put(cs + "/tasks", "");
    put(cs + "/cgroup.procs", "");
    put(cpu + "/cpu.shares", "1024\n");
    put(cpu + "/tasks", "");
    put(cpu + "/cgroup.procs", "");
    group("", "0-7", "0");  // as setup() leaves it
    auto r = make_glue(o);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    g = std::move(r.value());
    ASSERT_EQ(g->kind(), Kind::kCgroupV1);
  }
  // A fresh group as the kernel makes it: empty cpus and mems.
  void group(const std::string& e, const std::string& cpus = "", const std::string& mems = "") {
    std::string d = e.empty() ? "/usched" : "/usched/" + e;
    put(cs + d + "/cpuset.cpus", cpus + "\n");
    put(cs + d + "/cpuset.mems", mems + "\n");
    put(cs + d + "/tasks", "");
    put(cs + d + "/cgroup.procs", "");
    put(cpu + d + "/cpu.shares", "1024\n");
    put(cpu + d + "/cpu.idle", "0\n");
    put(cpu + d + "/tasks", "");
    put(cpu + d + "/cgroup.procs", "");
  }
  static GroupSettings gs(const char* cpus, int shares = 1024, SchedClass c = SchedClass::kNormal) {
    GroupSettings s;
    s.cpus = CpuSet::parse(cpus).value();
    s.cls.cls = c;
    s.cls.cpu_shares = shares;
    return s;
  }
};

TEST_F(V1Test, SetupCopiesMemsThenCpusFromTheParent) {
  group("");  // freshly made by the kernel: empty cpus and mems
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->setup().is_ok());
  EXPECT_EQ(rec.lines, (std::vector<std::string>{"mkdir cpuset/usched", "write cpuset/usched/cpuset.mems=0",
                                                 "write cpuset/usched/cpuset.cpus=0-7", "mkdir cpu/usched"}));
  rec.lines.clear();
  ASSERT_TRUE(g->setup().is_ok());  // adopting: nothing to write
  EXPECT_TRUE(rec.writes().empty());
}

TEST_F(V1Test, ApplyGroupsCreatesParentsFirstAndWritesEveryKnob) {
  ASSERT_TRUE(g->setup().is_ok());
  group("batch");
  group("batch/a");
  group("web");
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->apply_groups({{"batch", gs("0-3", 1024)},
                               {"batch/a", gs("0-1", 256, SchedClass::kIdle)},
                               {"web", gs("4-7", 4096)}})
                  .is_ok());
  EXPECT_EQ(get(cs + "/usched/batch/cpuset.cpus"), "0-3");
  EXPECT_EQ(get(cs + "/usched/batch/cpuset.mems"), "0");
  EXPECT_EQ(get(cs + "/usched/batch/a/cpuset.cpus"), "0-1");
  EXPECT_EQ(get(cs + "/usched/batch/a/cpuset.mems"), "0");
  // An idle group refuses shares writes on the kernel: not written.
  EXPECT_EQ(get(cpu + "/usched/batch/a/cpu.shares"), "1024\n");
  EXPECT_EQ(get(cpu + "/usched/batch/a/cpu.idle"), "1");
  EXPECT_EQ(get(cpu + "/usched/web/cpu.shares"), "4096");
  EXPECT_EQ(get(cpu + "/usched/batch/cpu.shares"), "1024\n");  // unchanged: not written
  EXPECT_EQ(get(cpu + "/usched/batch/cpu.idle"), "0\n");
  EXPECT_LT(rec.index_of("mkdir cpuset/usched/batch"), rec.index_of("mkdir cpuset/usched/batch/a"));
  // mems before cpus in every group; cpus parent before child.
  EXPECT_LT(rec.index_of("write cpuset/usched/batch/a/cpuset.mems=0"),
            rec.index_of("write cpuset/usched/batch/cpuset.cpus=0-3"));
  EXPECT_LT(rec.index_of("write cpuset/usched/batch/cpuset.cpus=0-3"),
            rec.index_of("write cpuset/usched/batch/a/cpuset.cpus=0-1"));
  rec.lines.clear();
  // Idempotent: the same desired state writes nothing.
  ASSERT_TRUE(g->apply_groups({{"batch", gs("0-3", 1024)},
                               {"batch/a", gs("0-1", 256, SchedClass::kIdle)},
                               {"web", gs("4-7", 4096)}})
                  .is_ok());
  EXPECT_TRUE(rec.writes().empty());
}

TEST_F(V1Test, CpusMoveInTwoPassesSoAChildStaysInsideItsParent) {
  group("batch", "0-3", "0");
  group("batch/a", "0-1", "0");
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->apply_groups({{"batch", gs("2-5")}, {"batch/a", gs("4-5")}}).is_ok());
  EXPECT_EQ(rec.writes(), (std::vector<std::string>{
                              "write cpuset/usched/batch/cpuset.cpus=0-5",      // top-down old|new
                              "write cpuset/usched/batch/a/cpuset.cpus=0-1,4-5",
                              "write cpuset/usched/batch/a/cpuset.cpus=4-5",    // bottom-up new
                              "write cpuset/usched/batch/cpuset.cpus=2-5",
                          }));
}

TEST_F(V1Test, ShrinkingWritesChildrenBeforeParents) {
  group("batch", "0-5", "0");
  group("batch/a", "2-5", "0");
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->apply_groups({{"batch", gs("0-3")}, {"batch/a", gs("2-3")}}).is_ok());
  EXPECT_EQ(rec.writes(), (std::vector<std::string>{"write cpuset/usched/batch/a/cpuset.cpus=2-3",
                                                    "write cpuset/usched/batch/cpuset.cpus=0-3"}));
}

TEST_F(V1Test, MissingKnobFailsNamingPathAndErrnoBeforeAnyWrite) {
  group("batch", "0-3", "0");
  group("batch/a", "0-1", "0");
  std::filesystem::remove(cpu + "/usched/batch/a/cpu.shares");
  testing::TraceRecorder rec(o.cgroup_root);
  Status st = g->apply_groups({{"batch", gs("4-7", 2048)}, {"batch/a", gs("4-5")}});
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.message(), "read " + cpu + "/usched/batch/a/cpu.shares: No such file or directory (ENOENT)");
  EXPECT_TRUE(rec.writes().empty());
  EXPECT_EQ(get(cs + "/usched/batch/cpuset.cpus"), "0-3\n");
}

TEST_F(V1Test, CpuIdleIsWrittenOnlyWhereTheKernelHasIt) {
  group("batch", "0-3", "0");
  std::filesystem::remove(cpu + "/usched/batch/cpu.idle");
  ASSERT_TRUE(g->apply_group("batch", gs("0-3", 1024, SchedClass::kIdle)).is_ok());
  EXPECT_FALSE(testing::exists(cpu + "/usched/batch/cpu.idle"));
}

TEST_F(V1Test, EntityNamesCannotEscapeTheTopDirectory) {
  EXPECT_EQ(g->apply_group("../x", gs("0")).code(), Code::kInvalidArgument);
  EXPECT_EQ(g->apply_group("a//b", gs("0")).code(), Code::kInvalidArgument);
  EXPECT_EQ(g->join_group(1, 0, "/abs", TaskSettings{}).code(), Code::kInvalidArgument);
}

TEST_F(V1Test, JoinMovesProcessOrThreadAndKeepsRealtimeInTheCpuRoot) {
  group("batch", "0-3", "0");
  TaskSettings ts{CpuSet::parse(testing::own_cpus()).value(), ClassParams{}};
  const std::string pid = std::to_string(getpid());
  ASSERT_TRUE(g->join_group(getpid(), 0, "batch", ts).is_ok());
  EXPECT_EQ(get(cs + "/usched/batch/cgroup.procs"), pid);
  EXPECT_EQ(get(cpu + "/usched/batch/cgroup.procs"), pid);
  EXPECT_EQ(get(cpu + "/cgroup.procs"), "");

  ts.cls.cls = SchedClass::kRealtime;
  ts.cls.rt_priority = 1;
  ASSERT_TRUE(g->join_group(getpid(), gettid(), "batch", ts).is_ok());
  EXPECT_EQ(get(cs + "/usched/batch/tasks"), std::to_string(gettid()));
  EXPECT_EQ(get(cpu + "/tasks"), std::to_string(gettid()));   // RT group runtime lives at the root
  EXPECT_EQ(get(cpu + "/usched/batch/tasks"), "");
}

TEST_F(V1Test, JoinIntoAMissingGroupNamesTheKnob) {
  TaskSettings ts{CpuSet::parse(testing::own_cpus()).value(), ClassParams{}};
  Status st = g->join_group(getpid(), 0, "nope", ts);
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_NE(st.message().find(cs + "/usched/nope/cgroup.procs"), std::string::npos) << st.message();
}

TEST_F(V1Test, RemoveGroupMovesTasksToTheParentThenRemovesTheDirectory) {
  group("batch", "0-3", "0");
  group("batch/a", "0-1", "0");
  put(cs + "/usched/batch/a/tasks", "4242\n");
  Status st = g->remove_group("batch/a");
  EXPECT_EQ(get(cs + "/usched/batch/tasks"), "4242");
  // kernfs removes a cgroup with its knob files; the fake's regular files
  // make rmdir fail, which shows the error form.
  EXPECT_EQ(st.message(), "rmdir " + cs + "/usched/batch/a: Directory not empty (ENOTEMPTY)");

  std::filesystem::create_directories(cs + "/usched/web");
  std::filesystem::create_directories(cpu + "/usched/web");
  EXPECT_TRUE(g->remove_group("web").is_ok());
  EXPECT_FALSE(testing::exists(cs + "/usched/web"));
  EXPECT_FALSE(testing::exists(cpu + "/usched/web"));
  EXPECT_TRUE(g->remove_group("never-was").is_ok());
}

TEST_F(V1Test, TeardownRemovesDeepestFirstThenTheTop) {
  std::filesystem::remove_all(cs + "/usched");
  std::filesystem::remove_all(cpu + "/usched");
  std::filesystem::create_directories(cs + "/usched/a/b");
  std::filesystem::create_directories(cpu + "/usched/a");
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->teardown().is_ok());
  EXPECT_EQ(rec.lines, (std::vector<std::string>{"rmdir cpuset/usched/a/b", "rmdir cpuset/usched/a",
                                                 "rmdir cpuset/usched", "rmdir cpu/usched/a", "rmdir cpu/usched"}));
  EXPECT_TRUE(g->teardown().is_ok());  // nothing left: still fine
}

TEST_F(V1Test, RestoreFallsBackToTheHierarchyRootWhenTheOldGroupIsGone) {
  TaskOrigin o;
  o.cpus = CpuSet::parse(testing::own_cpus()).value();
  o.nice = getpriority(PRIO_PROCESS, 0);
  o.cgroups["cpuset"] = "/gone";
  o.cgroups["cpu"] = "/usched";
  ASSERT_TRUE(g->restore(getpid(), 0, o).is_ok());
  EXPECT_EQ(get(cs + "/cgroup.procs"), std::to_string(getpid()));
  EXPECT_EQ(get(cpu + "/usched/cgroup.procs"), std::to_string(getpid()));
}

TEST_F(V1Test, CaptureOriginRecordsOwnAffinityAndManagedHierarchies) {
  auto r = g->capture_origin(getpid(), 0);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->cpus.to_string(), CpuSet::parse(testing::own_cpus()).value().to_string());
  for (const auto& [h, p] : r->cgroups) EXPECT_TRUE(h == "cpuset" || h == "cpu") << h;
  auto back = TaskOrigin::parse(r->to_string());
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->cgroups, r->cgroups);
}

// cgroup v1 has no cpuset partitions: "isolated" is refused by name and
// nothing is written; exclusion stays the tree's.
TEST_F(V1Test, IsolatedIsRefusedNamingTheKeywordAndNothingIsWritten) {
  ASSERT_TRUE(g->setup().is_ok());
  group("rt");
  GroupSettings s = gs("3");
  s.partition = Partition::kIsolated;
  testing::TraceRecorder rec(o.cgroup_root);
  Status st = g->apply_groups({{"rt", s}});
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("'isolated' (rt)"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("cgroup v1"), std::string::npos) << st.message();
  EXPECT_TRUE(rec.lines.empty());
  s.partition = Partition::kRoot;  // exclusive: as before
  EXPECT_TRUE(g->apply_groups({{"rt", s}}).is_ok());
  EXPECT_EQ(g->partition_state("rt"), "");
}

}  // namespace
}  // namespace usched::glue
