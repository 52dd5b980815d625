// The VM tier: exclusive and isolated schedulers as cgroup v2 cpuset
// partitions on the guest's real kernel (run inside the guests by
// scripts/vm-test.sh, never on the host, whose cpusets are cgroup v1).
// Checked in the kernel's view: cpuset.cpus.partition of each cgroup, the
// root cgroup's cpuset.cpus.effective (what every process outside usched
// may use), Cpus_allowed_list of members and of a process outside, and the
// scheduler domains in /proc/schedstat (an isolated CPU has none). Needs a
// guest with at least 4 CPUs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "guest_daemon.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// True when /proc/schedstat lists at least one scheduler domain for the
// CPU: a CPU in an isolated partition is in none (no load balancing).
bool has_sched_domain(int cpu) {
  std::istringstream in(read_file("/proc/schedstat"));
  bool mine = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("cpu", 0) == 0) mine = line.rfind("cpu" + std::to_string(cpu) + " ", 0) == 0;
    else if (mine && line.rfind("domain", 0) == 0) return true;
  }
  return false;
}

class Partitions : public GuestDaemonTest {
 protected:
  // defaults: IDLE, NORM and REAL on cpu* as on a first start, which
  // leave no CPU to the processes outside usched.
  void start(bool defaults) {
    ASSERT_TRUE(std::filesystem::exists(kCgroupRoot + "/cpuset.cpus.effective"));
    need(4, defaults ? std::vector<std::string>{} : std::vector<std::string>{"--no-defaults"});
  }
  void TearDown() override {
    const bool started = daemon_ != nullptr;
    GuestDaemonTest::TearDown();
    // Whatever happened, the system gets its CPUs back. The kernel takes a
    // removed partition offline after rmdir returns (a worker does), so the
    // root's CPUs come back shortly after the daemon's cleanup, not at once.
    if (started) {
      const std::string all = "0-" + std::to_string(online_cpu_count() - 1);
      std::string now;
      EXPECT_TRUE(eventually(
          [&] {
            now = trimmed(read_file(kCgroupRoot + "/cpuset.cpus.effective"));
            return now == all;
          },
          2s))
          << "the root cgroup's cpuset.cpus.effective is " << now << ", not " << all;
    }
  }
  std::string knob(const std::string& entity, const char* name) {
    const std::string dir = kCgroupRoot + "/" + top_ + (entity.empty() ? "" : "/" + entity);
    return trimmed(read_file(dir + "/" + name));
  }
  std::string api_partition(const std::string& entity) {
    auto s = client_->get(entity);
    EXPECT_TRUE(s.is_ok()) << entity << ": " << s.status().message();
    return s.is_ok() ? s->partition() : "";
  }
  pid_t sleeper() {
    kids_.push_back(std::make_unique<Child>());
    return kids_.back()->pid();
  }
};

TEST_F(Partitions, AnIsolatedSchedulerTakesItsCpuFromTheWholeSystemAndFromLoadBalancing) {
  start(false);
  const int last = online_cpu_count() - 1;
  const std::string all = "0-" + std::to_string(last), mine = "1-" + std::to_string(last);
  const pid_t outside = sleeper();  // in the root cgroup, as every process outside usched
  ASSERT_TRUE(has_sched_domain(last));
  create("work on cpu1-" + std::to_string(last - 1));
  create("rt on cpu" + std::to_string(last) + " exclusive isolated");
  // Our top is a partition root with our schedulers' CPUs; rt an isolated
  // partition of its own CPU. CPU 0 is left to everything else.
  EXPECT_EQ(knob("", "cpuset.cpus.partition"), "root");
  EXPECT_EQ(knob("", "cpuset.cpus"), mine);
  EXPECT_EQ(knob("rt", "cpuset.cpus.partition"), "isolated");
  EXPECT_EQ(knob("rt", "cpuset.cpus.effective"), std::to_string(last));
  EXPECT_EQ(knob("work", "cpuset.cpus.partition"), "member");
  EXPECT_EQ(trimmed(read_file(kCgroupRoot + "/cpuset.cpus.effective")), "0");
  EXPECT_EQ(cpus_allowed(outside), "0");
  EXPECT_FALSE(has_sched_domain(last)) << read_file("/proc/schedstat");
  // Members get exactly the isolated CPU.
  const pid_t m = sleeper();
  create("bind rt --pid " + std::to_string(m));
  EXPECT_EQ(cpus_allowed(m), std::to_string(last));
  // What a person sees.
  EXPECT_EQ(api_partition("rt"), "isolated");
  EXPECT_EQ(api_partition("work"), "member");
  auto show = usched("show rt");
  EXPECT_THAT(show.out, HasSubstr("mode:           unlocked,exclusive,isolated\n"));
  EXPECT_THAT(show.out, HasSubstr("partition:      isolated\n"));
  EXPECT_THAT(usched("tree").out, HasSubstr("partition isolated"));
  EXPECT_THAT(usched("--json show rt").out, HasSubstr("\"partition\": \"isolated\""));

  // Isolated -> exclusive: a load-balanced partition root.
  create("update rt exclusive");
  EXPECT_EQ(knob("rt", "cpuset.cpus.partition"), "root");
  // Gone: the top is a member again and the system has every CPU back.
  create("destroy rt --force");
  EXPECT_EQ(knob("", "cpuset.cpus.partition"), "member");
  EXPECT_EQ(knob("", "cpuset.cpus"), "");
  EXPECT_EQ(trimmed(read_file(kCgroupRoot + "/cpuset.cpus.effective")), all);
  EXPECT_EQ(cpus_allowed(outside), all);
}

TEST_F(Partitions, AnIsolatedSchedulerTheKernelRefusesChangesNothing) {
  start(true);  // IDLE, NORM and REAL on cpu*: no CPU left outside
  const int last = online_cpu_count() - 1;
  const std::string all = "0-" + std::to_string(last);
  auto r = usched("update REAL on cpu" + std::to_string(last) + " exclusive isolated");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("'isolated' REAL"));
  EXPECT_THAT(r.err, HasSubstr("leave at least one CPU"));
  auto real = client_->get("REAL");
  ASSERT_TRUE(real.is_ok());
  EXPECT_FALSE(real->spec().exclusive());
  EXPECT_FALSE(real->spec().isolated());
  EXPECT_EQ(real->cpus(), all);
  EXPECT_EQ(knob("REAL", "cpuset.cpus"), all);
  EXPECT_EQ(knob("REAL", "cpuset.cpus.partition"), "member");
  EXPECT_EQ(knob("", "cpuset.cpus.partition"), "member");
  EXPECT_EQ(knob("", "cpuset.cpus"), "");

  r = usched("X on cpu" + std::to_string(last) + " isolated");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("'isolated' X"));
  EXPECT_FALSE(client_->get("X").is_ok());
  EXPECT_FALSE(std::filesystem::exists(kCgroupRoot + "/" + top_ + "/X"));
  EXPECT_EQ(knob("", "cpuset.cpus.partition"), "member");
  EXPECT_EQ(trimmed(read_file(kCgroupRoot + "/cpuset.cpus.effective")), all);
}

TEST_F(Partitions, AnExclusiveSchedulerTheKernelCannotPartitionStaysExclusiveAndSaysWhy) {
  start(false);
  // a (CPUs 2-3) is no partition, so its exclusive child x (CPU 3) cannot
  // be one. w keeps CPU 1 in the top: the kernel refuses a partition that
  // would take the last CPUs of a parent with tasks below it.
  create("w on cpu1");
  create("a on cpu2-3");
  create("a/x on cpu1 exclusive");
  EXPECT_EQ(knob("", "cpuset.cpus.partition"), "root");
  EXPECT_EQ(knob("a/x", "cpuset.cpus.partition"), "member");  // no half-made partition
  EXPECT_THAT(api_partition("a/x"), StartsWith("member (not a partition: the kernel said root invalid ("));
  EXPECT_THAT(api_partition("a/x"), HasSubstr("Parent is not a partition root"));
  EXPECT_EQ(api_partition("w"), "member");
  auto show = usched("show a/x");
  EXPECT_THAT(show.out, HasSubstr("partition:      member (not a partition:"));
  EXPECT_THAT(show.out, HasSubstr("make its parent scheduler exclusive too"));
  // Still exclusive among our schedulers: its CPU is a's cpu1 alone.
  const pid_t m = sleeper();
  create("bind a/x --pid " + std::to_string(m));
  EXPECT_EQ(cpus_allowed(m), "3");
  // Making a exclusive too lets the kernel make both partitions.
  create("update a exclusive");
  EXPECT_EQ(knob("a", "cpuset.cpus.partition"), "root") << api_partition("a") << "\n" << usched("tree").out;
  EXPECT_EQ(knob("a/x", "cpuset.cpus.partition"), "root");
  EXPECT_EQ(api_partition("a/x"), "root");
  EXPECT_EQ(cpus_allowed(m), "3");
}

}  // namespace
}  // namespace usched::test
