#include <gtest/gtest.h>
#include <unistd.h>

#include "fake_fs.h"
#include "usched/glue/glue.h"

namespace usched::glue {
namespace {

using testing::TempDir;

struct ProbeFs {
  TempDir t;
  Options o;
  ProbeFs() {
    o.cgroup_root = t / "cg";
    o.proc_root = t / "proc";
    o.sys_root = t / "sys";
    std::filesystem::create_directories(o.cgroup_root);
  }
  void mountinfo(const std::string& lines) { testing::put(o.proc_root + "/self/mountinfo", lines); }
  std::string line(int id, const std::string& point, const std::string& fstype, const std::string& opts) {
    return std::to_string(id) + " 1 0:" + std::to_string(id) + " / " + point + " rw,relatime shared:9 - " + fstype +
           " " + fstype + " " + opts + "\n";
  }
};

TEST(Probe, PicksV2WhenCgroup2AtTheRootHasCpusetAndCpu) {
  ProbeFs f;
  f.mountinfo(f.line(30, f.o.cgroup_root, "cgroup2", "rw,nsdelegate"));
  testing::put(f.o.cgroup_root + "/cgroup.controllers", "cpuset cpu io memory pids\n");
  auto [k, why] = probe(f.o);
  EXPECT_EQ(k, Kind::kCgroupV2) << why;
  EXPECT_NE(why.find("cgroup v2"), std::string::npos);
}

TEST(Probe, PicksV1WithComountedCpuCpuacctLikeThisMachine) {
  ProbeFs f;
  std::string r = f.o.cgroup_root;
  f.mountinfo(f.line(31, r, "tmpfs", "rw,mode=755") + f.line(32, r + "/cpuset", "cgroup", "rw,cpuset") +
              f.line(33, r + "/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct") +
              f.line(34, r + "/freezer", "cgroup", "rw,freezer") +
              // v2 without controllers at a sub-directory: not ours.
              f.line(35, r + "/unified", "cgroup2", "rw"));
  std::filesystem::create_directories(r + "/cpu,cpuacct");
  std::filesystem::create_directories(r + "/cpuset");
  std::filesystem::create_directory_symlink("cpu,cpuacct", r + "/cpu");
  auto [k, why] = probe(f.o);
  EXPECT_EQ(k, Kind::kCgroupV1) << why;
  EXPECT_EQ(why, "cgroup v1: cpuset at " + r + "/cpuset, cpu at " + r + "/cpu");
}

TEST(Probe, V2WithoutCpuControllersFallsBackToV1ThenAffinity) {
  ProbeFs f;
  std::string r = f.o.cgroup_root;
  f.mountinfo(f.line(30, r, "cgroup2", "rw"));
  testing::put(r + "/cgroup.controllers", "memory pids\n");
  auto [k, why] = probe(f.o);
  EXPECT_EQ(k, Kind::kAffinity);
  EXPECT_NE(why.find("lacks the cpuset or cpu controller"), std::string::npos) << why;

  // "cpuacct" alone must not count as "cpu".
  f.mountinfo(f.line(32, r + "/cpuset", "cgroup", "rw,cpuset") + f.line(33, r + "/cpuacct", "cgroup", "rw,cpuacct"));
  auto [k2, why2] = probe(f.o);
  EXPECT_EQ(k2, Kind::kAffinity);
  EXPECT_NE(why2.find("no cgroup v1 cpu"), std::string::npos) << why2;
}

TEST(Probe, UnreadableMountinfoMeansAffinity) {
  ProbeFs f;
  auto [k, why] = probe(f.o);
  EXPECT_EQ(k, Kind::kAffinity);
  EXPECT_NE(why.find("mountinfo"), std::string::npos);
}

TEST(Probe, MakeGlueAutoBuildsWhatProbeChose) {
  ProbeFs f;
  auto g = make_glue(f.o);
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ((*g)->kind(), Kind::kAffinity);
  EXPECT_EQ((*g)->name(), "affinity");
  testing::put(f.o.sys_root + "/devices/system/cpu/present", "0-7\n");
  testing::put(f.o.sys_root + "/devices/system/cpu/online", "0-3,5\n");
  EXPECT_EQ((*g)->present_cpus().value().to_string(), "0-7");
  EXPECT_EQ((*g)->online_cpus().value().to_string(), "0-3,5");
}

// --- fake back end ---

struct FakeGlueTest : ::testing::Test {
  TempDir t;
  Options o;
  FakeGlueTest() {
    o.kind = Kind::kFake;
    o.fake_log = t / "fake.log";
    o.fake_cpus = "0-5";
  }
};

TEST_F(FakeGlueTest, LogsOneLinePerOperation) {
  auto g = make_glue(o);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  Glue& glue = **g;
  EXPECT_EQ(glue.present_cpus().value().to_string(), "0-5");
  EXPECT_EQ(glue.online_cpus().value().to_string(), "0-5");
  GroupSettings gs{CpuSet::range(0, 1), ClassParams{}};
  TaskSettings ts{CpuSet::range(0, 1), ClassParams{}};
  ASSERT_TRUE(glue.setup().is_ok());
  ASSERT_TRUE(glue.apply_groups({{"batch", gs}}).is_ok());
  ClassParams idle;
  idle.cls = SchedClass::kIdle;
  ASSERT_TRUE(glue.apply_group("batch/low", GroupSettings{CpuSet::of({1}), idle}).is_ok());
  // A pid that is surely not a real task: the fake never touches the kernel.
  ASSERT_TRUE(glue.place(123, 0, ts).is_ok());
  ASSERT_TRUE(glue.join_group(123, 0, "batch", ts).is_ok());
  auto origin = glue.capture_origin(123, 0);
  ASSERT_TRUE(origin.is_ok());
  EXPECT_EQ(origin->cpus.to_string(), "0-5");
  ASSERT_TRUE(glue.restore(123, 0, *origin).is_ok());
  ASSERT_TRUE(glue.remove_group("batch").is_ok());
  ASSERT_TRUE(glue.teardown().is_ok());
  EXPECT_EQ(testing::get(o.fake_log),
            "present_cpus\nonline_cpus\nsetup\n"
            "apply_group batch cpus=0-1 weight=100 idle=0\n"
            "apply_group batch/low cpus=1 weight=100 idle=1\n"
            "place pid=123 tid=0 cpus=0-1 class=normal prio=0\n"
            "join_group pid=123 tid=0 entity=batch\n"
            "capture_origin pid=123 tid=0\n"
            "restore pid=123 tid=0\n"
            "remove_group batch\n"
            "teardown\n");
}

TEST_F(FakeGlueTest, InjectedFailuresUseTheTypedErrorAndMatchSubstrings) {
  o.fake_fail = "place=1,apply_group:batch/b=28";
  auto g = make_glue(o);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  TaskSettings ts{CpuSet::range(0, 1), ClassParams{}};
  Status st = (*g)->place(7, 8, ts);
  EXPECT_EQ(st.code(), Code::kPermissionDenied);
  EXPECT_NE(st.message().find("pid=7 tid=8"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("(EPERM)"), std::string::npos) << st.message();
  GroupSettings gs{CpuSet::range(0, 1), ClassParams{}};
  EXPECT_TRUE((*g)->apply_group("batch/a", gs).is_ok());
  Status full = (*g)->apply_groups({{"batch", gs}, {"batch/b", gs}, {"batch/c", gs}});
  EXPECT_EQ(full.code(), Code::kResourceExhausted);
  EXPECT_NE(full.message().find("(ENOSPC)"), std::string::npos);
  EXPECT_TRUE((*g)->join_group(7, 0, "batch", ts).is_ok());
  std::string log = testing::get(o.fake_log);
  EXPECT_NE(log.find("place pid=7 tid=8 cpus=0-1 class=normal prio=0 failed=EPERM\n"), std::string::npos) << log;
  EXPECT_NE(log.find("apply_group batch/b cpus=0-1 weight=100 idle=0 failed=ENOSPC\n"), std::string::npos);
  EXPECT_EQ(log.find("apply_group batch/c"), std::string::npos);  // stops at the first failure
}

TEST_F(FakeGlueTest, BadFailSpecOrCpusIsRejected) {
  o.fake_fail = "place=x";
  EXPECT_EQ(make_glue(o).status().code(), Code::kInvalidArgument);
  o.fake_fail = "place";
  EXPECT_EQ(make_glue(o).status().code(), Code::kInvalidArgument);
  o.fake_fail = "";
  o.fake_cpus = "3-1";
  EXPECT_EQ(make_glue(o).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace usched::glue
