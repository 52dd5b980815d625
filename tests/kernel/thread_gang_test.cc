// Tier 3, gangs of named threads (`gang add --threads GLOB`): a process laid
// out like a VM monitor (two spinning vCPU threads "CPU 0/KVM" and "CPU
// 1/KVM", a sleeping "IO" thread, a sleeping main thread), two of them as
// two gangs on two CPUs. Runs on the cgroup v1 freezer (the host) and on
// cgroup v2 (the VM tier's guests), where the vCPU threads sit in a threaded
// group of their process's own subtree. Checked from the kernel's side:
// each thread's freezer group (/proc/PID/task/TID/cgroup) and its state,
// run time from /proc/PID/task/TID/schedstat, Cpus_allowed_list.
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/gang.h"
#include "support/harness.h"
#include "support/kernel.h"

namespace usched::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// A process shaped like a VM monitor, alive until killed or `limit_s`
// passes (alarm). The IO thread counts its wake-ups in memory shared with
// the test: it must keep waking while the gangs rotate.
class VmLike {
 public:
  explicit VmLike(int limit_s = 60 * time_scale()) {
    void* p = ::mmap(nullptr, sizeof(std::atomic<uint64_t>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    wakes_ = new (p) std::atomic<uint64_t>(0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::alarm(static_cast<unsigned>(limit_s));
      static std::atomic<uint64_t>* wakes;
      wakes = wakes_;
      auto vcpu = +[](void* name) -> void* {
        pthread_setname_np(pthread_self(), static_cast<const char*>(name));
        for (;;) {
        }
      };
      auto io = +[](void*) -> void* {
        pthread_setname_np(pthread_self(), "IO");
        for (;;) {
          timespec ts{0, 1'000'000};
          ::nanosleep(&ts, nullptr);
          wakes->fetch_add(1, std::memory_order_relaxed);
        }
      };
      pthread_t t[3];
      pthread_create(&t[0], nullptr, vcpu, const_cast<char*>("CPU 0/KVM"));
      pthread_create(&t[1], nullptr, vcpu, const_cast<char*>("CPU 1/KVM"));
      pthread_create(&t[2], nullptr, io, nullptr);
      for (;;) ::pause();
    }
  }
  ~VmLike() {
    kill_and_reap(pid_);
    ::munmap(wakes_, sizeof(std::atomic<uint64_t>));
  }
  VmLike(const VmLike&) = delete;
  VmLike& operator=(const VmLike&) = delete;
  pid_t pid() const { return pid_; }
  uint64_t wakes() const { return wakes_->load(); }
  // tid by thread name (comm), once the threads have named themselves.
  std::map<std::string, int> threads() const {
    std::map<std::string, int> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator("/proc/" + std::to_string(pid_) + "/task", ec)) {
      std::string comm = read_file(e.path().string() + "/comm");
      while (!comm.empty() && comm.back() == '\n') comm.pop_back();
      out[comm] = std::stoi(e.path().filename());
    }
    return out;
  }
  std::vector<int> vcpus() const {
    auto t = threads();
    return {t.count("CPU 0/KVM") ? t.at("CPU 0/KVM") : 0, t.count("CPU 1/KVM") ? t.at("CPU 1/KVM") : 0};
  }
  // The IO thread and the main thread.
  std::vector<int> others() const {
    auto t = threads();
    return {t.count("IO") ? t.at("IO") : 0, pid_};
  }

 private:
  pid_t pid_ = -1;
  std::atomic<uint64_t>* wakes_ = nullptr;
};

// The thread's freezer group, as a directory: the v1 freezer line or the
// v2 "0::" line of /proc/PID/task/TID/cgroup.
std::string freezer_of(int pid, int tid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/cgroup"));
  for (std::string line; std::getline(in, line);) {
    const auto c1 = line.find(':'), c2 = line.find(':', c1 + 1);
    const std::string ctrl = line.substr(c1 + 1, c2 - c1 - 1);
    if (kV2 ? line.rfind("0::", 0) == 0 : ctrl == "freezer") {
      const std::string rel = line.substr(c2 + 1);
      return rel == "/" ? kFreezer : kFreezer + rel;
    }
  }
  return "";
}

bool frozen(int pid, int tid) {
  const std::string s = freezer_state(freezer_of(pid, tid));
  return s == "FROZEN" || s == "FREEZING";
}

class ThreadGang : public GangDaemonTest {
 protected:
  void SetUp() override {
    USCHED_SKIP_OR_FAIL_IF(gang_kernel_missing());
    start_daemon();
    // A normal-class scheduler: realtime vCPU threads spinning on both
    // CPUs would leave the test's own threads (the CLI, the checks) only
    // what RT throttling spares. Only the freezer's doing is checked here.
    auto r = cli({"G", "on", "cpu0-1"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    vm_[0] = std::make_unique<VmLike>();
    vm_[1] = std::make_unique<VmLike>();
    for (auto& v : vm_) ASSERT_TRUE(eventually([&] { return v->vcpus()[0] && v->vcpus()[1] && v->others()[0]; }));
    for (const char* g : {"a", "b"}) {
      r = cli({"gang", "create", std::string("G/") + g, "--quantum", std::to_string(50 * time_scale())});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    r = cli({"gang", "add", "G/a", "--pid", std::to_string(vm_[0]->pid()), "--threads", "CPU */KVM"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = cli({"gang", "add", "G/b", "--pid", std::to_string(vm_[1]->pid()), "--threads", "CPU */KVM"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_layout();
  }
  void TearDown() override {
    for (auto& v : vm_) v.reset();
    GangDaemonTest::TearDown();
  }

  // Where each thread is: the vCPU threads in their gang's group (v2: the
  // threaded one in the process's own subtree), one per CPU; the others
  // outside any gang group, on the scheduler's CPUs.
  void expect_layout() {
    for (int i = 0; i < 2; ++i) {
      const VmLike& v = *vm_[i];
      const std::string gang = i == 0 ? "gang:a" : "gang:b";
      const std::string own = kFreezer + "/" + top_ + "/G" + (kV2 ? "/@pid:" + std::to_string(v.pid()) : "");
      ASSERT_TRUE(eventually([&] {
        auto c = v.vcpus();
        return freezer_of(v.pid(), c[0]) == own + "/" + gang && freezer_of(v.pid(), c[1]) == own + "/" + gang &&
               cpus_allowed(v.pid(), c[0]).size() == 1 && cpus_allowed(v.pid(), c[1]).size() == 1 &&
               cpus_allowed(v.pid(), c[0]) != cpus_allowed(v.pid(), c[1]);
      }, scaled(10s))) << "vCPU threads of pid " << v.pid() << " in " << freezer_of(v.pid(), v.vcpus()[0]) << " and "
                       << freezer_of(v.pid(), v.vcpus()[1]) << " on cpus " << cpus_allowed(v.pid(), v.vcpus()[0])
                       << " and " << cpus_allowed(v.pid(), v.vcpus()[1]) << "\n"
                       << tail(daemon_->log());
      for (int t : v.others()) {
        // v1: the freezer hierarchy's root; v2: the process's thread root.
        EXPECT_EQ(freezer_of(v.pid(), t), kV2 ? own : kFreezer) << "tid " << t;
        EXPECT_EQ(cpus_allowed(v.pid(), t), "0-1") << "tid " << t;
      }
    }
  }

  struct Seen {
    int intervals = 0, both = 0;
    int vcpu_frozen[2] = {0, 0}, vcpu_thawed[2] = {0, 0};
    int others_frozen = 0;
  };
  // Every `every` for `total`, at SCHED_FIFO: which vCPU threads ran
  // (more than half the interval) and which threads' groups are frozen.
  Seen sample(std::chrono::milliseconds every, std::chrono::milliseconds total) {
    struct T {
      int pid, tid, vm;
      uint64_t last;
    };
    std::vector<T> vc;
    for (int i = 0; i < 2; ++i)
      for (int t : vm_[i]->vcpus()) vc.push_back({vm_[i]->pid(), t, i, run_ns(vm_[i]->pid(), t)});
    Fifo fifo;
    Seen s;
    auto last = std::chrono::steady_clock::now();
    const auto end = last + total;
    while (std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(every);
      const auto now = std::chrono::steady_clock::now();
      const auto span = std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count();
      last = now;
      bool ran[2] = {false, false};
      for (T& t : vc) {
        const uint64_t v = run_ns(t.pid, t.tid);
        if (static_cast<int64_t>(v - t.last) * 2 > span) ran[t.vm] = true;
        t.last = v;
        (frozen(t.pid, t.tid) ? s.vcpu_frozen : s.vcpu_thawed)[t.vm]++;
      }
      for (auto& v : vm_)
        for (int t : v->others()) s.others_frozen += frozen(v->pid(), t);
      ++s.intervals;
      if (ran[0] && ran[1]) ++s.both;
    }
    return s;
  }

  std::unique_ptr<VmLike> vm_[2];
};

TEST_F(ThreadGang, VcpuThreadsTakeTurnsTheOtherThreadsNeverFreezeAndAStopLeavesAllThawed) {
  const uint64_t wakes0 = vm_[0]->wakes() + vm_[1]->wakes();
  Seen s = sample(scaled(5ms), scaled(2s));
  ASSERT_GT(s.intervals, 100);
  std::cout << "[ figures  ] " << (kV2 ? "cgroup v2" : "cgroup v1") << ", 50 ms quanta x" << time_scale() << ": "
            << s.intervals << " samples, both processes' vCPUs ran in " << s.both << "; vCPU threads seen frozen "
            << s.vcpu_frozen[0] + s.vcpu_frozen[1] << " and thawed " << s.vcpu_thawed[0] + s.vcpu_thawed[1]
            << " times; IO/main threads in a frozen group " << s.others_frozen << " times\n";
  // Switches are confirmed before the next gang thaws: only intervals that
  // straddle a switch may see both guests' vCPUs run.
  EXPECT_LT(s.both, s.intervals / 10) << s.both << " of " << s.intervals;
  for (int i = 0; i < 2; ++i) {
    EXPECT_GT(s.vcpu_frozen[i], 0) << "vm " << i << ": its vCPU threads were never seen frozen";
    EXPECT_GT(s.vcpu_thawed[i], 0) << "vm " << i << ": its vCPU threads were never seen thawed";
  }
  EXPECT_EQ(s.others_frozen, 0) << "an IO or main thread was seen in a frozen group";
  EXPECT_GT(vm_[0]->wakes() + vm_[1]->wakes(), wakes0 + 10) << "the IO threads stopped waking";
  EXPECT_THAT(daemon_->log(), Not(HasSubstr("freeze failed")));
  // The user's view: two members, two vCPU threads each.
  auto r = cli({"--json", "gang", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("CPU */KVM"));

  EXPECT_EQ(daemon_->stop(SIGTERM), 0);
  for (auto& [d, st] : freezer_states(top_)) EXPECT_EQ(st, "THAWED") << d;
  for (auto& v : vm_) {
    for (int t : v->vcpus()) {
      EXPECT_FALSE(frozen(v->pid(), t)) << t;
      const uint64_t before = run_ns(v->pid(), t);
      EXPECT_TRUE(eventually([&] { return run_ns(v->pid(), t) > before + 20'000'000; })) << "tid " << t;
    }
  }
}

// uschedd killed mid-rotation: the guardian thaws the gang groups (v2: the
// threaded ones too); a restart adopts the layout and the gangs take turns
// again; removing a member and the process exiting leave no group behind.
TEST_F(ThreadGang, AfterASigkillNothingStaysFrozenARestartAdoptsTheThreadsAndLeavingRemovesTheirGroups) {
  ASSERT_TRUE(eventually([&] {
    for (auto& v : vm_)
      for (int t : v->vcpus())
        if (freezer_state(freezer_of(v->pid(), t)) == "FROZEN") return true;
    return false;
  }));
  EXPECT_EQ(daemon_->stop(SIGKILL), -SIGKILL);
  ASSERT_TRUE(eventually([&] {
    for (auto& [d, st] : freezer_states(top_))
      if (st != "THAWED") return false;
    return true;
  })) << "the guardian did not thaw every group";
  start_daemon();
  expect_layout();
  Seen s = sample(scaled(5ms), scaled(1s));
  EXPECT_LT(s.both, s.intervals / 5) << s.both << " of " << s.intervals;
  EXPECT_GT(s.vcpu_frozen[0] + s.vcpu_frozen[1], 0);
  EXPECT_EQ(s.others_frozen, 0);

  // The member leaves: all its threads are out of any gang group, thawed.
  auto r = cli({"gang", "remove", "G/a", "--pid", std::to_string(vm_[0]->pid())});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string own0 = kFreezer + "/" + top_ + "/G/@pid:" + std::to_string(vm_[0]->pid());
  for (int t : vm_[0]->vcpus()) {
    EXPECT_FALSE(frozen(vm_[0]->pid(), t)) << t;
    EXPECT_THAT(freezer_of(vm_[0]->pid(), t), Not(HasSubstr("gang:"))) << t;
  }
  if (kV2) {
    EXPECT_FALSE(fs::exists(own0)) << own0 << " left behind";
  }
  // The other process exits: its subtree goes too.
  const std::string own1 = kFreezer + "/" + top_ + "/G/@pid:" + std::to_string(vm_[1]->pid());
  vm_[1].reset();
  if (kV2) {
    EXPECT_TRUE(eventually([&] { return !fs::exists(own1); }, scaled(5s))) << own1 << " left behind";
  }
  EXPECT_EQ(daemon_->stop(SIGTERM), 0);
  for (auto& [d, st] : freezer_states(top_)) EXPECT_EQ(st, "THAWED") << d;
}

}  // namespace
}  // namespace usched::test
