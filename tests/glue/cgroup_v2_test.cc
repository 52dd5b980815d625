// The real cgroup v2 back end against a fake cgroupfs in a temp dir.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>

#include "fake_fs.h"
#include "usched/glue/glue.h"

namespace usched::glue {
namespace {

using testing::get;
using testing::put;

class V2Test : public ::testing::Test {
 protected:
  testing::TempDir t;
  Options o;
  std::string root, top;
  std::unique_ptr<Glue> g;

  void SetUp() override {
    o.kind = Kind::kCgroupV2;
    o.cgroup_root = root = t / "cg";
    top = root + "/usched";
    put(root + "/cgroup.controllers", "cpuset cpu io memory pids\n");
    put(root + "/cgroup.subtree_control", "\n");
    put(root + "/cgroup.procs", "");
    put(top + "/cgroup.controllers", "cpuset cpu\n");
    put(top + "/cgroup.subtree_control", "\n");
    put(top + "/cgroup.procs", "");
    put(top + "/cgroup.freeze", "0\n");
    auto r = make_glue(o);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    g = std::move(r.value());
    ASSERT_EQ(g->kind(), Kind::kCgroupV2);
  }
  void group(const std::string& e, const std::string& cpus = "") {
    std::string d = top + "/" + e;
    put(d + "/cgroup.controllers", "cpuset cpu\n");
    put(d + "/cgroup.subtree_control", "\n");
    put(d + "/cpuset.cpus", cpus + "\n");
    put(d + "/cpu.weight", "100\n");
    put(d + "/cpu.idle", "0\n");
    put(d + "/cgroup.procs", "");
    put(d + "/@members/cgroup.procs", "");
  }
  static GroupSettings gs(const char* cpus, int weight = 100, SchedClass c = SchedClass::kNormal) {
    GroupSettings s;
    s.cpus = CpuSet::parse(cpus).value();
    s.cls.cls = c;
    s.cls.cpu_weight = weight;
    return s;
  }
};

TEST_F(V2Test, SetupEnablesOnlyAvailableControllersAndThaws) {
  put(root + "/cgroup.controllers", "cpu io memory\n");  // no cpuset here
  put(top + "/cgroup.freeze", "1\n");
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->setup().is_ok());
  EXPECT_EQ(rec.lines, (std::vector<std::string>{"write cgroup.subtree_control=+cpu", "mkdir usched",
                                                 "write usched/cgroup.subtree_control=+cpuset +cpu",
                                                 "write usched/cgroup.freeze=0"}));
  put(root + "/cgroup.subtree_control", "cpu io\n");
  put(top + "/cgroup.subtree_control", "cpuset cpu\n");
  rec.lines.clear();
  ASSERT_TRUE(g->setup().is_ok());
  EXPECT_TRUE(rec.writes().empty());
}

TEST_F(V2Test, ApplyGroupsWritesKnobsAndMakesAMembersLeaf) {
  group("batch");
  group("batch/a");
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->apply_groups({{"batch", gs("0-3", 400)}, {"batch/a", gs("0-1", 25, SchedClass::kIdle)}}).is_ok());
  EXPECT_EQ(get(top + "/batch/cpuset.cpus"), "0-3");
  EXPECT_EQ(get(top + "/batch/cpu.weight"), "400");
  EXPECT_EQ(get(top + "/batch/cpu.idle"), "0\n");
  EXPECT_EQ(get(top + "/batch/cgroup.subtree_control"), "+cpuset +cpu");
  EXPECT_EQ(get(top + "/batch/a/cpuset.cpus"), "0-1");
  // An idle group refuses weight writes on the kernel: not written.
  EXPECT_EQ(get(top + "/batch/a/cpu.weight"), "100\n");
  EXPECT_EQ(get(top + "/batch/a/cpu.idle"), "1");
  // The parent's controllers are on before the child is created (its
  // cpuset.* files appear only then), and @members after that.
  EXPECT_LT(rec.index_of("write usched/batch/cgroup.subtree_control=+cpuset +cpu"), rec.index_of("mkdir usched/batch/a"));
  EXPECT_LT(rec.index_of("write usched/batch/cgroup.subtree_control=+cpuset +cpu"),
            rec.index_of("mkdir usched/batch/@members"));
  EXPECT_NE(rec.index_of("mkdir usched/batch/a/@members"), rec.lines.size());
}

TEST_F(V2Test, CpusMoveInTwoPasses) {
  group("batch", "0-3");
  group("batch/a", "0-1");
  put(top + "/batch/cgroup.subtree_control", "cpuset cpu\n");
  put(top + "/batch/a/cgroup.subtree_control", "cpuset cpu\n");
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->apply_groups({{"batch", gs("2-5")}, {"batch/a", gs("4-5")}}).is_ok());
  EXPECT_EQ(rec.writes(), (std::vector<std::string>{"write usched/batch/cpuset.cpus=0-5",
                                                    "write usched/batch/a/cpuset.cpus=0-1,4-5",
                                                    "write usched/batch/a/cpuset.cpus=4-5",
                                                    "write usched/batch/cpuset.cpus=2-5"}));
}

TEST_F(V2Test, MissingKnobFailsNamingThePathAndWritesNoCpus) {
  group("batch", "0-3");
  std::filesystem::remove(top + "/batch/cpu.weight");
  testing::TraceRecorder rec(o.cgroup_root);
  Status st = g->apply_group("batch", gs("4-7"));
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.message(), "read " + top + "/batch/cpu.weight: No such file or directory (ENOENT)");
  EXPECT_TRUE(rec.writes().empty());
  EXPECT_EQ(get(top + "/batch/cpuset.cpus"), "0-3\n");
}

TEST_F(V2Test, ProcessesJoinTheMembersLeafAndThreadsAreNotMoved) {
  group("batch", "0-3");
  TaskSettings ts{CpuSet::parse(testing::own_cpus()).value(), ClassParams{}};
  ASSERT_TRUE(g->join_group(getpid(), 0, "batch", ts).is_ok());
  EXPECT_EQ(get(top + "/batch/@members/cgroup.procs"), std::to_string(getpid()));
  EXPECT_EQ(get(top + "/batch/cgroup.procs"), "");
  put(top + "/batch/@members/cgroup.procs", "");
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->join_group(getpid(), gettid(), "batch", ts).is_ok());
  EXPECT_TRUE(rec.lines.empty());
}

TEST_F(V2Test, RemoveGroupMigratesMembersToTheParentsMembersOrTheRoot) {
  group("batch", "0-3");
  group("batch/a", "0-1");
  put(top + "/batch/a/@members/cgroup.procs", "77\n");
  Status st = g->remove_group("batch/a");
  EXPECT_EQ(get(top + "/batch/@members/cgroup.procs"), "77");
  // kernfs removes knob files with the directory; the fake cannot.
  EXPECT_EQ(st.message(), "rmdir " + top + "/batch/a/@members: Directory not empty (ENOTEMPTY)");

  put(top + "/batch/@members/cgroup.procs", "78\n");
  (void)g->remove_group("batch");
  EXPECT_EQ(get(root + "/cgroup.procs"), "78");

  std::filesystem::create_directories(top + "/web/@members");
  EXPECT_TRUE(g->remove_group("web").is_ok());
  EXPECT_FALSE(testing::exists(top + "/web"));
}

TEST_F(V2Test, TeardownRemovesDeepestFirst) {
  std::filesystem::remove_all(top);
  std::filesystem::create_directories(top + "/a/@members");
  std::filesystem::create_directories(top + "/a/b/@members");
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->teardown().is_ok());
  EXPECT_LT(rec.index_of("rmdir usched/a/b/@members"), rec.index_of("rmdir usched/a/b"));
  EXPECT_LT(rec.index_of("rmdir usched/a/b"), rec.index_of("rmdir usched/a"));
  EXPECT_LT(rec.index_of("rmdir usched/a/@members"), rec.index_of("rmdir usched/a"));
  EXPECT_EQ(rec.lines.back(), "rmdir usched");
  EXPECT_FALSE(testing::exists(top));
}

// A gang group as the kernel would show it once made.
void gang_files(const std::string& dir, bool frozen) {
  put(dir + "/cgroup.procs", "");
  put(dir + "/cgroup.freeze", "0\n");
  put(dir + "/cgroup.events", std::string("populated 1\nfrozen ") + (frozen ? "1" : "0") + "\n");
}

TEST_F(V2Test, AGangIsAGroupBesideTheMembersLeafAndTakesWholeProcesses) {
  group("vm");
  gang_files(top + "/vm/gang:g", false);
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->join_gang("vm", "g", 1234, 0).is_ok());
  EXPECT_EQ(get(top + "/vm/gang:g/cgroup.procs"), "1234");
  EXPECT_EQ(g->freezer(), "cgroup-v2 cgroup.freeze");
}

TEST_F(V2Test, AFreezeCountsOnlyOnceCgroupEventsSaysFrozen) {
  group("vm");
  const std::string dir = top + "/vm/gang:g";
  gang_files(dir, true);
  ASSERT_TRUE(g->freeze_gang("vm", "g", true).is_ok());
  EXPECT_EQ(get(dir + "/cgroup.freeze"), "1");

  // The kernel never confirms: the freeze fails with the reason, and the
  // gang is left thawed rather than half frozen.
  gang_files(dir, false);
  auto st = g->freeze_gang("vm", "g", true);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("freeze of " + dir + " did not settle"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("left thawed"), std::string::npos) << st.message();
  EXPECT_EQ(get(dir + "/cgroup.freeze"), "0");
}

// /proc/PID/{stat,status} of a task as the kernel shows it: `flags` is
// field 9 (PF_KTHREAD is 0x00200000), the parent of a kernel thread is
// kthreadd (2).
void fake_task(const std::string& proc, int pid, const std::string& comm, unsigned flags, int ppid) {
  const std::string d = proc + "/" + std::to_string(pid);
  put(d + "/stat", std::to_string(pid) + " (" + comm + ") S " + std::to_string(ppid) + " 0 0 0 -1 " +
                       std::to_string(flags) + " 0 0 0 0 0 0 0 0 20 0 1 0 4242 0 0\n");
  put(d + "/status", "Name:\t" + comm + "\nTgid:\t" + std::to_string(pid) + "\nUid:\t0\t0\t0\t0\n");
}

// KVM starts kvm-pit/PID and kvm-nx-lpage-recovery-PID in the VM process's
// cgroups, so in a whole-process gang's group; v2 never freezes a kernel
// thread but counts it, and the group would never say "frozen 1". The
// freeze moves them to the entity's members leaf first, then freezes.
TEST_F(V2Test, AFreezeMovesKernelThreadsOutOfTheGangGroupFirst) {
  o.proc_root = t / "proc";
  auto r = make_glue(o);
  ASSERT_TRUE(r.is_ok());
  g = std::move(r.value());
  fake_task(o.proc_root, 1234, "qemu-system-x86", 0x00400100, 1);
  fake_task(o.proc_root, 1250, "kvm-pit/1234", 0x00208040, 2);
  fake_task(o.proc_root, 1251, "kvm-nx-lpage-re", 0x00208040, 2);
  group("vm");
  const std::string dir = top + "/vm/gang:g";
  gang_files(dir, true);
  put(dir + "/cgroup.procs", "1234\n1250\n1251\n");
  testing::TraceRecorder rec(o.cgroup_root);
  auto st = g->freeze_gang("vm", "g", true);
  ASSERT_TRUE(st.is_ok()) << st.message();
  const auto w = rec.writes();
  ASSERT_EQ(w.size(), 3u) << ::testing::PrintToString(w);
  // Each kernel thread written on its own to the members leaf (the fake
  // file keeps the last), the VM process left in the gang, then the freeze.
  EXPECT_EQ(w[0], "write usched/vm/@members/cgroup.procs=1250");
  EXPECT_EQ(w[1], "write usched/vm/@members/cgroup.procs=1251");
  EXPECT_EQ(w[2], "write usched/vm/gang:g/cgroup.freeze=1");
  // A thaw moves nothing.
  put(dir + "/cgroup.events", "populated 1\nfrozen 0\n");
  rec.lines.clear();
  ASSERT_TRUE(g->freeze_gang("vm", "g", false).is_ok());
  EXPECT_EQ(rec.writes(), std::vector<std::string>{"write usched/vm/gang:g/cgroup.freeze=0"});
}

// A kernel thread that cannot be moved (the kernel refuses: here the
// members leaf is missing) fails the freeze at once, naming the thread,
// with nothing frozen: no settle wait stalls the rotation.
TEST_F(V2Test, AKernelThreadThatCannotLeaveFailsTheFreezeAtOnceAndLeavesTheGangThawed) {
  o.proc_root = t / "proc";
  auto r = make_glue(o);
  ASSERT_TRUE(r.is_ok());
  g = std::move(r.value());
  fake_task(o.proc_root, 1250, "kvm-pit/1234", 0x00208040, 2);
  const std::string dir = top + "/vm/gang:g";
  gang_files(dir, false);
  put(dir + "/cgroup.procs", "1250\n");
  const auto t0 = std::chrono::steady_clock::now();
  auto st = g->freeze_gang("vm", "g", true);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("gang g holds kernel thread 1250 (kvm-pit/1234)"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("left thawed"), std::string::npos) << st.message();
  EXPECT_EQ(get(dir + "/cgroup.freeze"), "0\n");
  EXPECT_LT(took, std::chrono::milliseconds(30));
}

TEST_F(V2Test, RemovingAGangThawsItAndReturnsItsProcessesToTheMembersLeaf) {
  group("vm");
  const std::string dir = top + "/vm/gang:g";
  gang_files(dir, false);
  put(dir + "/cgroup.procs", "1234\n");
  put(dir + "/cgroup.freeze", "1\n");
  testing::TraceRecorder rec(o.cgroup_root);
  rec.cgroupfs_rmdir = true;
  auto st = g->remove_gang("vm", "g");
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_EQ(get(top + "/vm/@members/cgroup.procs"), "1234");
  EXPECT_LT(rec.index_of("write usched/vm/gang:g/cgroup.freeze=0"),
            rec.index_of("write usched/vm/@members/cgroup.procs=1234"));
  EXPECT_FALSE(testing::exists(dir));
}

// ---- gang threads: a threaded subtree of the process's own ----

// The kernel's view of a process with threads: /proc/PID/cgroup and each
// /proc/PID/task/TID/cgroup ("0::PATH" relative to the mount). No
// task/TID/stat: the glue's affinity calls never reach a real task.
void fake_cgroup(const std::string& proc, int pid, int tid, const std::string& path) {
  const std::string d = proc + "/" + std::to_string(pid) + (tid ? "/task/" + std::to_string(tid) : "");
  put(d + "/cgroup", "0::" + path + "\n");
}

class V2ThreadsTest : public V2Test {
 protected:
  void SetUp() override {
    V2Test::SetUp();
    o.proc_root = proc = t / "proc";
    auto r = make_glue(o);
    ASSERT_TRUE(r.is_ok());
    g = std::move(r.value());
    group("vm");
    fake_cgroup(proc, 1234, 0, "/usched/vm/@members");
  }
  // The process's thread root and its gang group as the kernel makes them
  // (a new group is a domain until it is made threaded).
  void thread_files(const std::string& type = "domain") {
    const std::string r = top + "/vm/@pid:1234";
    put(r + "/cgroup.procs", "");
    put(r + "/cgroup.threads", "");
    put(r + "/cgroup.freeze", "0\n");
    put(r + "/cgroup.events", "populated 1\nfrozen 0\n");
    put(r + "/gang:g/cgroup.type", type + "\n");
    put(r + "/gang:g/cgroup.threads", "");
    put(r + "/gang:g/cgroup.freeze", "0\n");
    put(r + "/gang:g/cgroup.events", "populated 1\nfrozen 1\n");
  }
  std::string proc;
  const std::string root_dir = "usched/vm/@pid:1234";
};

// Matching threads sit in "@pid:PID/gang:G" (threaded), the process and its
// other threads in "@pid:PID"; the freeze writes the gang's threaded group
// only, never the thread root.
TEST_F(V2ThreadsTest, GangThreadsGetAThreadedGroupInASubtreeOfTheirProcessAndOnlyItFreezes) {
  thread_files();
  testing::TraceRecorder rec(o.cgroup_root);
  auto st = g->isolate_threads("vm", "g", 1234);
  ASSERT_TRUE(st.is_ok()) << st.message();
  fake_cgroup(proc, 1234, 0, "/usched/vm/@pid:1234");  // where the kernel has moved it
  ASSERT_TRUE(g->join_gang("vm", "g", 1234, 1240).is_ok());
  ASSERT_TRUE(g->join_gang("vm", "g", 1234, 1241).is_ok());
  EXPECT_EQ(rec.writes(), (std::vector<std::string>{
                              "write " + root_dir + "/gang:g/cgroup.type=threaded",
                              "write " + root_dir + "/cgroup.procs=1234",
                              "write " + root_dir + "/gang:g/cgroup.threads=1240",
                              "write " + root_dir + "/gang:g/cgroup.threads=1241",
                          }));
  rec.lines.clear();
  ASSERT_TRUE(g->freeze_gang("vm", "g", true).is_ok());
  EXPECT_EQ(rec.writes(), std::vector<std::string>{"write " + root_dir + "/gang:g/cgroup.freeze=1"});
  EXPECT_EQ(get(top + "/vm/@pid:1234/cgroup.freeze"), "0\n");
  EXPECT_FALSE(testing::exists(top + "/vm/gang:g"));
}

// Once the process is in its thread root, joining again moves nothing but
// the thread; a group already threaded is not written again.
TEST_F(V2ThreadsTest, IsolatingAProcessAlreadyInItsSubtreeMovesNothing) {
  thread_files("threaded");
  fake_cgroup(proc, 1234, 0, "/usched/vm/@pid:1234");
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->isolate_threads("vm", "g", 1234).is_ok());
  ASSERT_TRUE(g->join_gang("vm", "g", 1234, 1240).is_ok());
  EXPECT_EQ(rec.writes(), std::vector<std::string>{"write " + root_dir + "/gang:g/cgroup.threads=1240"});
}

// A thread that stops matching (or that a gang thread made) goes back to
// the thread root; a thread outside the subtree is left where it is; the
// process leaving the gang leaves its subtree whole, which is removed.
TEST_F(V2ThreadsTest, ThreadsLeaveForTheirThreadRootAndTheProcessLeavesItsSubtreeWhole) {
  thread_files("threaded");
  fake_cgroup(proc, 1234, 1241, "/usched/vm/@pid:1234/gang:g");
  fake_cgroup(proc, 1234, 1242, "/usched/vm/@pid:1234");
  fake_cgroup(proc, 1234, 1243, "/usched/vm/@members");
  testing::TraceRecorder rec(o.cgroup_root);
  rec.cgroupfs_rmdir = true;
  ASSERT_TRUE(g->leave_gang("vm", "g", 1234, 1241).is_ok());
  ASSERT_TRUE(g->leave_gang("vm", "g", 1234, 1242).is_ok());
  ASSERT_TRUE(g->leave_gang("vm", "g", 1234, 1243).is_ok());
  ASSERT_TRUE(g->leave_gang("vm", "g", 1234, 1299).is_ok()) << "a thread that exited is not an error";
  EXPECT_EQ(rec.writes(), std::vector<std::string>{"write " + root_dir + "/cgroup.threads=1241"});
  rec.lines.clear();
  ASSERT_TRUE(g->leave_gang("vm", "g", 1234, 0).is_ok());
  EXPECT_EQ(rec.lines, (std::vector<std::string>{
                           "write usched/vm/@members/cgroup.procs=1234",
                           "rmdir " + root_dir + "/gang:g",
                           "rmdir " + root_dir,
                       }));
  EXPECT_FALSE(testing::exists(top + "/vm/@pid:1234"));
}

// The kernel refuses to make the gang's group threaded (here: no
// cgroup.type, as on a kernel without thread mode): the error names the
// step and the knob, and the groups this call made are gone again.
TEST_F(V2ThreadsTest, AProcessTheKernelWillNotThreadIsRefusedNamingWhyAndNothingChanges) {
  testing::TraceRecorder rec(o.cgroup_root);
  auto st = g->isolate_threads("vm", "g", 1234);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_NE(st.message().find("cannot give pid 1234 a threaded cgroup of its own in vm (reading its type)"),
            std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find(top + "/vm/@pid:1234/gang:g/cgroup.type"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("nothing was changed"), std::string::npos) << st.message();
  EXPECT_TRUE(rec.writes().empty());
  EXPECT_FALSE(testing::exists(top + "/vm/@pid:1234"));
  EXPECT_EQ(get(top + "/vm/@members/cgroup.procs"), "");
}

// A thread bound on its own, of a process that is not bound to the entity
// as a whole, is refused: giving it a threaded group would move the whole
// process, its other threads too.
TEST_F(V2ThreadsTest, ASingleThreadOfAProcessBoundElsewhereIsRefusedNamingWhereItIs) {
  fake_cgroup(proc, 1234, 0, "/system.slice/qemu.service");
  testing::TraceRecorder rec(o.cgroup_root);
  auto st = g->join_gang("vm", "g", 1234, 1240);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("only while the whole process is bound to vm (it is in " + root +
                              "/system.slice/qemu.service)"),
            std::string::npos)
      << st.message();
  EXPECT_TRUE(rec.lines.empty());
}

// KVM's kernel threads started from a vCPU thread land in its threaded
// group, listed in cgroup.threads (cgroup.procs cannot be read there): they
// go to the members leaf before the freeze, as from a whole-process gang.
TEST_F(V2ThreadsTest, AFreezeMovesKernelThreadsOutOfAThreadedGangGroupFirst) {
  thread_files("threaded");
  fake_task(proc, 1240, "CPU 0/KVM", 0x00400040, 1);
  fake_task(proc, 1250, "kvm-nx-lpage-re", 0x00208040, 2);
  put(top + "/vm/@pid:1234/gang:g/cgroup.threads", "1240\n1250\n");
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->freeze_gang("vm", "g", true).is_ok());
  EXPECT_EQ(rec.writes(), (std::vector<std::string>{
                              "write usched/vm/@members/cgroup.procs=1250",
                              "write " + root_dir + "/gang:g/cgroup.freeze=1",
                          }));
}

// A gang of whole processes and of threads freezes all its groups, asked
// together; one that does not settle leaves all of them thawed.
TEST_F(V2ThreadsTest, AGangInSeveralGroupsFreezesAllOrLeavesAllThawed) {
  thread_files("threaded");
  gang_files(top + "/vm/gang:g", true);
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->freeze_gang("vm", "g", true).is_ok());
  EXPECT_EQ(rec.writes(), (std::vector<std::string>{
                              "write usched/vm/gang:g/cgroup.freeze=1",
                              "write " + root_dir + "/gang:g/cgroup.freeze=1",
                          }));
  put(top + "/vm/@pid:1234/gang:g/cgroup.events", "populated 1\nfrozen 0\n");
  auto st = g->freeze_gang("vm", "g", true);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("freeze of " + top + "/vm/@pid:1234/gang:g did not settle"), std::string::npos)
      << st.message();
  EXPECT_EQ(get(top + "/vm/gang:g/cgroup.freeze"), "0");
  EXPECT_EQ(get(top + "/vm/@pid:1234/gang:g/cgroup.freeze"), "0");
}

// Removing the gang thaws its threaded group, returns the process whole to
// the members leaf and removes its subtree.
TEST_F(V2ThreadsTest, RemovingTheGangReturnsTheProcessToTheMembersLeafAndRemovesItsSubtree) {
  thread_files("threaded");
  put(top + "/vm/@pid:1234/cgroup.procs", "1234\n");
  put(top + "/vm/@pid:1234/gang:g/cgroup.freeze", "1\n");
  put(top + "/vm/@pid:1234/gang:g/cgroup.events", "populated 1\nfrozen 0\n");
  testing::TraceRecorder rec(o.cgroup_root);
  rec.cgroupfs_rmdir = true;
  auto st = g->remove_gang("vm", "g");
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_EQ(get(top + "/vm/@members/cgroup.procs"), "1234");
  EXPECT_LT(rec.index_of("write " + root_dir + "/gang:g/cgroup.freeze=0"),
            rec.index_of("write usched/vm/@members/cgroup.procs=1234"));
  EXPECT_FALSE(testing::exists(top + "/vm/@pid:1234"));
}

// thaw_all (every stop path, and the guardian's walk) reaches the threaded
// groups; start-up removes a subtree whose process is gone and keeps one
// still populated, to be adopted.
TEST_F(V2ThreadsTest, ThawAllReachesThreadedGroupsAndSetupDropsOnlyEmptySubtrees) {
  thread_files("threaded");
  put(top + "/vm/@pid:1234/gang:g/cgroup.freeze", "1\n");
  put(top + "/vm/@pid:1234/gang:g/cgroup.events", "populated 1\nfrozen 0\n");
  ASSERT_TRUE(g->thaw_all().is_ok());
  EXPECT_EQ(get(top + "/vm/@pid:1234/gang:g/cgroup.freeze"), "0");

  put(top + "/vm/@pid:1235/cgroup.events", "populated 0\nfrozen 0\n");
  put(top + "/vm/@pid:1235/gang:g/cgroup.freeze", "0\n");
  testing::TraceRecorder rec(o.cgroup_root);
  rec.cgroupfs_rmdir = true;
  ASSERT_TRUE(g->setup().is_ok());
  EXPECT_FALSE(testing::exists(top + "/vm/@pid:1235"));
  EXPECT_TRUE(testing::exists(top + "/vm/@pid:1234/gang:g"));
}

// Pruning an entity and tearing down move the process out of its subtree
// first, whole (its threaded groups list no processes), then remove the
// threaded groups and the root.
TEST_F(V2ThreadsTest, PruneAndTeardownEmptyAThreadRootBeforeItsThreadedGroups) {
  thread_files("threaded");
  put(top + "/vm/@pid:1234/cgroup.procs", "1234\n");
  {
    testing::TraceRecorder rec(o.cgroup_root);
    rec.cgroupfs_rmdir = true;
    ASSERT_TRUE(g->teardown().is_ok());
    EXPECT_LT(rec.index_of("write cgroup.procs=1234"), rec.index_of("rmdir " + root_dir + "/gang:g"));
    EXPECT_LT(rec.index_of("rmdir " + root_dir + "/gang:g"), rec.index_of("rmdir " + root_dir));
    EXPECT_FALSE(testing::exists(top));
  }
  group("vm");
  thread_files("threaded");
  put(top + "/vm/@pid:1234/cgroup.procs", "1234\n");
  testing::TraceRecorder rec(o.cgroup_root);
  rec.cgroupfs_rmdir = true;
  ASSERT_TRUE(g->prune_groups({}).is_ok());
  EXPECT_LT(rec.index_of("write cgroup.procs=1234"), rec.index_of("rmdir " + root_dir + "/gang:g"));
  EXPECT_FALSE(testing::exists(top + "/vm/@pid:1234"));
}

// ---- cpuset partitions (cpuset.cpus.partition) ----
// The kernel takes every write to cpuset.cpus.partition and tells in the
// file whether it honours it; a plain file cannot answer "invalid" to a
// write, so the refusals below are set up as a file that already says
// so (nothing to write: the glue reads the verdict and acts on it).

class V2PartitionTest : public V2Test {
 protected:
  void SetUp() override {
    V2Test::SetUp();
    put(top + "/cpuset.cpus", "\n");
    put(top + "/cpuset.cpus.partition", "member\n");
  }
  void pgroup(const std::string& e, const std::string& cpus, const std::string& verdict = "member") {
    group(e, cpus);
    put(top + "/" + e + "/cgroup.subtree_control", "cpuset cpu\n");
    put(top + "/" + e + "/cpuset.cpus.partition", verdict + "\n");
  }
  static GroupSettings part(const char* cpus, Partition p) {
    GroupSettings s = gs(cpus);
    s.partition = p;
    return s;
  }
};

TEST_F(V2PartitionTest, PartitionsComeAfterTheCpusTheTopFirst) {
  put(top + "/cgroup.subtree_control", "cpuset cpu\n");
  pgroup("batch", "0-1");
  pgroup("rt", "3");
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->apply_groups({{"batch", gs("0-1")}, {"rt", part("3", Partition::kIsolated)}}).is_ok());
  // The top holds our entities' CPUs (the rest stay with the processes
  // outside usched) and becomes a partition root before rt can be one.
  EXPECT_EQ(rec.writes(), (std::vector<std::string>{"write usched/cpuset.cpus=0-1,3",
                                                    "write usched/cpuset.cpus.partition=root",
                                                    "write usched/rt/cpuset.cpus.partition=isolated"}));
  EXPECT_EQ(g->partition_state("rt"), "isolated");
  EXPECT_EQ(g->partition_state("batch"), "member");

  // No partition wanted any more: rt first, then the top, then the cpus
  // (the top's back to empty: all of its parent's).
  rec.lines.clear();
  ASSERT_TRUE(g->apply_groups({{"batch", gs("0-1")}, {"rt", gs("3")}}).is_ok());
  EXPECT_EQ(rec.writes(), (std::vector<std::string>{"write usched/rt/cpuset.cpus.partition=member",
                                                    "write usched/cpuset.cpus.partition=member",
                                                    "write usched/cpuset.cpus=\n"}));
  EXPECT_EQ(g->partition_state("rt"), "member");
}

TEST_F(V2PartitionTest, ARootTheKernelRefusesGoesBackToMemberAndSaysWhy) {
  put(top + "/cpuset.cpus", "0-3\n");
  put(top + "/cpuset.cpus.partition", "root\n");
  pgroup("a", "2-3");
  pgroup("ex", "3", "root invalid (Cpu list in cpuset.cpus not exclusive)");
  ASSERT_TRUE(g->apply_groups({{"a", gs("2-3")}, {"ex", part("3", Partition::kRoot)}}).is_ok());
  EXPECT_EQ(get(top + "/ex/cpuset.cpus.partition"), "member");
  EXPECT_EQ(g->partition_state("ex"),
            "member (not a partition: the kernel said root invalid (Cpu list in cpuset.cpus not exclusive))");
}

TEST_F(V2PartitionTest, AnIsolatedPartitionTheKernelRefusesFailsAndLeavesAMember) {
  put(top + "/cpuset.cpus", "0-3\n");
  put(top + "/cpuset.cpus.partition", "root\n");
  pgroup("a", "0-3");
  pgroup("a/rt", "3", "isolated invalid (Parent is not a partition root)");
  Status st = g->apply_groups({{"a", gs("0-3")}, {"a/rt", part("3", Partition::kIsolated)}});
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("'isolated' a/rt"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("Parent is not a partition root"), std::string::npos) << st.message();
  EXPECT_EQ(get(top + "/a/rt/cpuset.cpus.partition"), "member");
}

TEST_F(V2PartitionTest, ATopTheKernelRefusesLeavesEveryEntityAMemberNamingTheTop) {
  put(top + "/cpuset.cpus", "0-3\n");
  put(top + "/cpuset.cpus.partition", "root invalid (Parent unable to distribute cpu downstream)\n");
  pgroup("all", "0-2");
  pgroup("ex", "3");
  testing::TraceRecorder rec(o.cgroup_root);
  ASSERT_TRUE(g->apply_groups({{"all", gs("0-2")}, {"ex", part("3", Partition::kRoot)}}).is_ok());
  EXPECT_EQ(get(top + "/cpuset.cpus.partition"), "member");
  EXPECT_EQ(get(top + "/ex/cpuset.cpus.partition"), "member\n");  // never written
  const std::string why = g->partition_state("ex");
  EXPECT_NE(why.find("member (not a partition: the kernel refused to make " + top), std::string::npos) << why;
  EXPECT_NE(why.find("leave at least one CPU"), std::string::npos) << why;

  put(top + "/cpuset.cpus.partition", "root invalid (Parent unable to distribute cpu downstream)\n");
  Status st = g->apply_groups({{"all", gs("0-2")}, {"ex", part("3", Partition::kIsolated)}});
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("'isolated' ex"), std::string::npos) << st.message();
  EXPECT_EQ(get(top + "/cpuset.cpus.partition"), "member");
}

TEST_F(V2Test, WithoutPartitionFilesARootIsAMemberAndIsolatedIsRefused) {
  group("ex", "0-1");
  ASSERT_TRUE(g->apply_groups({{"ex", [] {
                                 GroupSettings s = gs("3");
                                 s.partition = Partition::kRoot;
                                 return s;
                               }()}})
                  .is_ok());
  EXPECT_EQ(get(top + "/ex/cpuset.cpus"), "3");
  GroupSettings iso = gs("3");
  iso.partition = Partition::kIsolated;
  Status st = g->apply_groups({{"ex", iso}});
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("cpuset.cpus.partition"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace usched::glue
