// Tier 3, a real VM monitor as the gang workload: two QEMU guests (TCG,
// 2 vCPUs each, Debian's kernel with scripts/vm/loop-guest.sh's initramfs)
// as two gangs on this machine's CPUs, their vCPU threads picked by name
// with --threads 'CPU */*' (QEMU's -name debug-threads=on). Checked from
// outside: the guests' serial consoles, /proc/PID/task/TID/schedstat and
// the v1 freezer. Every QEMU is killed by pid when the test ends, whatever
// happened, and our cgroups are thawed and removed.
#include <fcntl.h>
#include <sys/wait.h>

#include <filesystem>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/harness.h"
#include "support/kernel.h"
#include "support/vm.h"
#include "usched/client.h"
#include "usched/glue/proc.h"

namespace usched::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kFreezer = "/sys/fs/cgroup/freezer";

// The freezer cgroup of a thread, as /proc shows it ("/" at the root).
std::string freezer_of(int pid, int tid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/cgroup"));
  std::string line;
  while (std::getline(in, line)) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a != std::string::npos && b != std::string::npos && line.substr(a + 1, b - a - 1) == "freezer")
      return line.substr(b + 1);
  }
  return "";
}

std::set<int> tasks_of(const std::string& dir) {
  std::set<int> out;
  std::istringstream in(read_file(dir + "/tasks"));
  int t;
  while (in >> t) out.insert(t);
  return out;
}

class VmGang : public ::testing::Test {
 protected:
  void SetUp() override {
    im_ = images();
    USCHED_SKIP_OR_FAIL_IF(im_.why);
    top_ = "usched-test-" + random_suffix();
    daemon_ = std::make_unique<Daemon>(
        std::vector<std::string>{"--cgroup-top", top_, "--no-config", "--log-level", "debug"}, state_.path());
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }
  void TearDown() override {
    if (HasFailure()) {
      if (daemon_) std::cerr << "uschedd log (tail):\n" << tail(daemon_->log());
      for (Guest* g : {g1_.get(), g2_.get()})
        if (g) std::cerr << "serial (tail):\n" << tail(g->serial()) << "\n";
    }
    if (daemon_) daemon_->stop(SIGTERM);  // thaws every gang before the guests die
    g1_.reset();
    g2_.reset();
    remove_cgroup_top(top_);
  }
  static std::string tail(const std::string& s) { return s.size() > 3000 ? s.substr(s.size() - 3000) : s; }
  CmdResult cli(std::vector<std::string> args) { return daemon_->cli(args, {.timeout = 10s}); }
  std::string gang_dir(const std::string& g) const { return kFreezer + "/" + top_ + "/vms/gang:" + g; }

  Images im_;
  TempDir state_, out_;
  std::string top_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<Guest> g1_, g2_;
};

TEST_F(VmGang, TwoQemuGuestsTakeTurnsByVcpuThreadAndSurviveTheDaemon) {
  // Normal class: the guests compete with whatever else this machine runs,
  // and what is checked is how the two gangs share the CPUs between them.
  ASSERT_EQ(cli({"vms", "on", "cpu*", "lwktpri", "6"}).exit_code, 0);
  for (const char* g : {"g1", "g2"})
    ASSERT_EQ(cli({"gang", "create", std::string("vms/") + g, "--quantum", "100"}).exit_code, 0);
  // Guest 1 through `usched run`, guest 2 started alone and added by pid.
  g1_ = std::make_unique<Guest>("vm1", im_, out_.path(),
                                std::vector<std::string>{USCHED_CLI_PATH, "--socket", daemon_->socket(), "run", "vms",
                                                         "--gang", "g1", "--threads", "CPU */*", "--"});
  g2_ = std::make_unique<Guest>("vm2", im_, out_.path(), std::vector<std::string>{});
  ASSERT_TRUE(eventually([&] { return !g2_->threads().empty(); }));
  auto r = cli({"gang", "add", "vms/g2", "--pid", std::to_string(g2_->pid()), "--threads", "CPU */*"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // Both boot and print.
  const auto boot0 = std::chrono::steady_clock::now();
  const std::string why = Guest::boot_both(*g1_, *g2_);
  ASSERT_EQ(why, "");
  const double boot_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - boot0).count();

  // Each gang holds exactly its guest's two vCPU threads, in the freezer
  // group; every other thread of the guests is outside it.
  struct Side {
    Guest* g;
    std::string gang;
  };
  const std::vector<Side> sides = {{g1_.get(), "g1"}, {g2_.get(), "g2"}};
  for (const Side& s : sides) {
    const auto v = s.g->vcpus();
    ASSERT_EQ(v.size(), 2u) << ::testing::PrintToString(s.g->threads());
    ASSERT_TRUE(eventually([&] { return tasks_of(gang_dir(s.gang)) == std::set<int>(v.begin(), v.end()); }))
        << s.gang << ": " << ::testing::PrintToString(tasks_of(gang_dir(s.gang))) << " vs "
        << ::testing::PrintToString(s.g->threads());
  }

  // Sampled every 5 ms for 4 s: a guest "ran" in an interval when any of
  // its vCPU threads got CPU time. Quanta are 100 ms, so only intervals
  // that straddle a switch may see both guests.
  struct V {
    int pid, tid, side;
    uint64_t last;
  };
  std::vector<V> vs;
  std::vector<std::pair<int, int>> others;  // (pid, tid) of the guests' other threads
  for (int i = 0; i < 2; ++i) {
    for (int t : sides[i].g->vcpus()) vs.push_back({sides[i].g->pid(), t, i, run_ns(sides[i].g->pid(), t)});
    for (auto& [tid, comm] : sides[i].g->threads())
      if (comm.rfind("CPU ", 0) != 0) others.emplace_back(sides[i].g->pid(), tid);
  }
  ASSERT_FALSE(others.empty());
  const int ticks1 = g1_->ticks(), ticks2 = g2_->ticks();
  int intervals = 0, both = 0, ran[2] = {0, 0}, other_frozen = 0;
  std::string frozen_where;
  {
    Fifo fifo;  // a sampler behind the machine's other load would see few, long intervals; not across forks
    const auto end = std::chrono::steady_clock::now() + 4s;
    while (std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(5ms);
      bool any[2] = {false, false};
      for (V& v : vs) {
        const uint64_t now = run_ns(v.pid, v.tid);
        if (now > v.last + 200'000) any[v.side] = true;  // 0.2 ms: more than a wakeup's worth
        v.last = now;
      }
      ++intervals;
      if (any[0] && any[1]) ++both;
      for (int i = 0; i < 2; ++i) ran[i] += any[i];
      if (intervals % 20 == 0) {
        for (auto& [pid, tid] : others) {
          const std::string fz = freezer_of(pid, tid);
          if (!fz.empty() && fz.find("/gang:") != std::string::npos) {
            ++other_frozen;
            frozen_where = std::to_string(tid) + " in " + fz;
          }
        }
      }
    }
  }
  std::cerr << "vm gangs: boot to 3 ticks each " << boot_s << " s; " << intervals << " intervals, guest 1 ran in "
            << ran[0] << ", guest 2 in " << ran[1] << ", both in " << both << "\n";
  EXPECT_GT(intervals, 300);
  EXPECT_LT(both, intervals / 10) << "both guests' vCPUs ran in " << both << " of " << intervals << " intervals";
  EXPECT_GT(ran[0], intervals / 5);
  EXPECT_GT(ran[1], intervals / 5);
  EXPECT_EQ(other_frozen, 0) << "a non-vCPU thread sat in a gang's freezer group: " << frozen_where;
  // The guests kept printing while they took turns.
  EXPECT_GT(g1_->ticks(), ticks1);
  EXPECT_GT(g2_->ticks(), ticks2);
  EXPECT_THAT(daemon_->log(), Not(HasSubstr("freeze failed")));

  // What the operator sees: two threads per gang, their glob, a skew.
  auto c = Client::connect(daemon_->socket(), 5s);
  ASSERT_TRUE(c.is_ok());
  auto l = (*c)->list_gangs("vms");
  ASSERT_TRUE(l.is_ok()) << l.status().message();
  ASSERT_EQ(l->gangs_size(), 2);
  for (const auto& g : l->gangs()) {
    ASSERT_EQ(g.members_size(), 1);
    EXPECT_EQ(g.members(0).threads_glob(), "CPU */*");
    EXPECT_EQ(g.members(0).threads_size(), 2);
    EXPECT_GT(g.stats().switches(), 20u);
    std::cerr << "vm gangs: " << g.spec().name() << " co-run " << g.stats().co_run_ratio() << ", skew "
              << g.stats().skew_us() / 1000.0 << " ms, freeze " << g.stats().freeze_latency_us_avg()
              << " us avg, thaw " << g.stats().thaw_latency_us_avg() << " us avg\n";
  }

  // Stopping uschedd leaves both guests running and thawed.
  EXPECT_EQ(daemon_->stop(SIGTERM), 0);
  for (const char* g : {"g1", "g2"}) EXPECT_EQ(trim(read_file(gang_dir(g) + "/freezer.state")), "THAWED") << g;
  const int after1 = g1_->ticks(), after2 = g2_->ticks();
  EXPECT_TRUE(eventually([&] { return g1_->ticks() > after1 + 2 && g2_->ticks() > after2 + 2; }, 20s))
      << "after the daemon stopped: " << after1 << " -> " << g1_->ticks() << ", " << after2 << " -> " << g2_->ticks();
  for (Guest* g : {g1_.get(), g2_.get()}) {
    EXPECT_EQ(::waitpid(g->pid(), nullptr, WNOHANG), 0) << "guest " << g->pid() << " exited";
  }
}

}  // namespace
}  // namespace usched::test
