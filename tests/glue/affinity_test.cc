// The affinity back end on this test process itself: only values the
// process already has, so it runs unprivileged and changes nothing.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "fake_fs.h"
#include "usched/glue/glue.h"

namespace usched::glue {
namespace {

std::unique_ptr<Glue> affinity() {
  Options o;
  o.kind = Kind::kAffinity;
  o.cgroup_root = "/nonexistent-cgroup-root";  // never touched
  return std::move(make_glue(o).value());
}

TEST(Affinity, PlacesEveryThreadOfOwnProcess) {
  auto g = affinity();
  std::atomic<bool> stop{false};
  std::thread th([&] {
    while (!stop) usleep(1000);
  });
  TaskSettings ts{CpuSet::parse(testing::own_cpus()).value(), ClassParams{}};
  Status st = g->place(getpid(), 0, ts);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_TRUE(g->place(getpid(), gettid(), ts).is_ok());
  stop = true;
  th.join();
}

TEST(Affinity, GoneProcessIsNotFound) {
  auto g = affinity();
  pid_t p = fork();
  if (p == 0) _exit(0);
  waitpid(p, nullptr, 0);
  TaskSettings ts{CpuSet::parse(testing::own_cpus()).value(), ClassParams{}};
  EXPECT_EQ(g->place(p, 0, ts).code(), Code::kNotFound);
  EXPECT_EQ(g->place(getpid(), p, ts).code(), Code::kNotFound);
  TaskOrigin o;
  o.cpus = ts.cpus;
  EXPECT_TRUE(g->restore(p, 0, o).is_ok());  // an exited task is not an error
}

TEST(Affinity, CaptureThenRestoreIsANoOpOnSelf) {
  auto g = affinity();
  auto o = g->capture_origin(getpid(), 0);
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_EQ(o->cpus, CpuSet::parse(testing::own_cpus()).value());
  EXPECT_EQ(o->nice, getpriority(PRIO_PROCESS, 0));
  EXPECT_TRUE(o->cgroups.empty());
  EXPECT_TRUE(g->restore(getpid(), 0, *o).is_ok());
  EXPECT_TRUE(g->setup().is_ok());
  EXPECT_TRUE(g->join_group(getpid(), 0, "batch", TaskSettings{}).is_ok());
  EXPECT_TRUE(g->teardown().is_ok());
}

TEST(Affinity, EmptyCpuSetIsRejectedBeforeAnySyscall) {
  auto g = affinity();
  EXPECT_EQ(g->place(getpid(), 0, TaskSettings{}).code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace usched::glue
