// Tier 2, gangs of threads picked by name (`--threads GLOB`), as a VM host
// operator uses them on a VM monitor that never calls our library: a real
// uschedd with the fake glue, which logs each thread that joins a freezer
// group. The "VM monitor" is this test binary re-run in a mode that starts
// named threads (below, before main).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/harness.h"
#include "usched/client.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kModeEnv = "USCHED_TEST_NAMED_THREADS";

// ---- the child: threads named as QEMU names them ----------------------------
// USCHED_TEST_NAMED_THREADS="CPU 0/TCG,CPU 1/TCG,iothread": one sleeping
// thread per name; each SIGUSR1 adds "CPU N/TCG" (a hot-plugged vCPU).
// Bounded: it exits by itself after 60 s.
std::atomic<int> g_plug{0};

void* sleeper(void* name) {
  pthread_setname_np(pthread_self(), static_cast<const char*>(name));
  for (;;) ::pause();
  return nullptr;
}

void start_named(const std::string& name) {
  pthread_t t;
  pthread_create(&t, nullptr, sleeper, ::strdup(name.c_str()));
}

[[noreturn]] void named_threads_main(const char* spec) {
  ::alarm(60);
  std::stringstream in(spec);
  std::string name;
  int vcpus = 0;
  while (std::getline(in, name, ',')) {
    if (name.rfind("CPU ", 0) == 0) ++vcpus;
    start_named(name);
  }
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_plug.fetch_add(1); };
  ::sigaction(SIGUSR1, &sa, nullptr);
  for (;;) {
    ::pause();
    while (g_plug.load() > 0) {
      g_plug.fetch_sub(1);
      start_named("CPU " + std::to_string(vcpus++) + "/TCG");
    }
  }
}

// Runs before gtest's main: the re-run binary never reaches the tests.
const bool g_child_mode = [] {
  if (const char* spec = std::getenv(kModeEnv)) named_threads_main(spec);
  return false;
}();

// ---- helpers --------------------------------------------------------------------

std::string self_exe() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

std::unique_ptr<Child> vm_monitor(const std::string& names) {
  return std::make_unique<Child>(std::vector<std::string>{"env", std::string(kModeEnv) + "=" + names, self_exe()});
}

// tid of the thread named `name` in pid, 0 when none.
int tid_named(pid_t pid, const std::string& name) {
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  for (auto& e : std::filesystem::directory_iterator(task)) {
    std::string comm = read_file(e.path().string() + "/comm");
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    if (comm == name) return std::stoi(e.path().filename());
  }
  return 0;
}

class ThreadGlob : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--glue", "fake", "--fake-cpus", "0-1", "--fake-log", log_, "--no-config"};
    args.insert(args.end(), extra.begin(), extra.end());
    daemon_ = std::make_unique<Daemon>(args, state_.path());
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "uschedd log:\n" << daemon_->log() << "\nfake log:\n" << read_file(log_);
  }
  CmdResult cli(std::vector<std::string> args) { return daemon_->cli(args, {.timeout = 10s}); }
  std::string joined(pid_t pid, int tid) {
    return "join_gang NORM/vm pid=" + std::to_string(pid) + " tid=" + std::to_string(tid);
  }
  // The gang's threads as the API lists them, sorted.
  std::vector<int> gang_threads() {
    auto c = Client::connect(daemon_->socket(), 5s);
    if (!c) return {};
    auto l = (*c)->list_gangs("NORM");
    std::vector<int> out;
    if (!l) return out;
    for (const auto& g : l->gangs())
      for (const auto& m : g.members())
        for (int t : m.threads()) out.push_back(t);
    std::sort(out.begin(), out.end());
    return out;
  }
  TempDir state_, dir_;
  std::string log_ = dir_ / "fake.log";
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(ThreadGlob, OnlyMatchingThreadsJoinNowAndWhenTheyAppearAndAfterARestart) {
  auto vm = vm_monitor("CPU 0/TCG,CPU 1/TCG,iothread");
  const pid_t pid = vm->pid();
  ASSERT_TRUE(eventually([&] { return tid_named(pid, "iothread") && tid_named(pid, "CPU 1/TCG"); }));
  const int cpu0 = tid_named(pid, "CPU 0/TCG"), cpu1 = tid_named(pid, "CPU 1/TCG"), io = tid_named(pid, "iothread");

  ASSERT_EQ(cli({"gang", "create", "NORM/vm"}).exit_code, 0);
  auto r = cli({"gang", "add", "NORM/vm", "--pid", std::to_string(pid), "--threads", "CPU */TCG"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("threads 'CPU */TCG' to gang NORM/vm (2 threads on vcpus 0,1)"));
  std::vector<int> want = {cpu0, cpu1};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(gang_threads(), want);
  std::string fake = read_file(log_);
  EXPECT_THAT(fake, HasSubstr(joined(pid, cpu0)));
  EXPECT_THAT(fake, HasSubstr(joined(pid, cpu1)));
  // Neither the process as a whole nor its other threads are in the group.
  EXPECT_THAT(fake, Not(HasSubstr(joined(pid, 0))));
  EXPECT_THAT(fake, Not(HasSubstr(joined(pid, io))));
  EXPECT_THAT(fake, Not(HasSubstr(joined(pid, pid))));
  // The process is bound to the scheduler: its other threads are placed.
  EXPECT_THAT(cli({"show", "NORM"}).out, HasSubstr(std::to_string(pid)));

  // A vCPU hot-plugged later joins by itself (the 20 ms poll).
  ::kill(pid, SIGUSR1);
  ASSERT_TRUE(eventually([&] { return tid_named(pid, "CPU 2/TCG") != 0; }));
  const int cpu2 = tid_named(pid, "CPU 2/TCG");
  ASSERT_TRUE(eventually([&] { return gang_threads().size() == 3; })) << ::testing::PrintToString(gang_threads());
  EXPECT_THAT(read_file(log_), HasSubstr(joined(pid, cpu2)));
  auto l = cli({"gang", "list"});
  EXPECT_THAT(l.out, HasSubstr("NORM/vm: pid " + std::to_string(pid) + " threads 'CPU */TCG': "));
  EXPECT_THAT(l.out, HasSubstr("SKEW(ms)"));
  auto j = cli({"gang", "list", "--json"});
  EXPECT_THAT(j.out, HasSubstr("\"threadsGlob\": \"CPU */TCG\""));
  EXPECT_THAT(j.out, HasSubstr("\"skewUs\""));
  EXPECT_THAT(j.out, HasSubstr("\"threadSkewUs\""));

  // Durable: after a SIGKILL the member comes back with its glob, and the
  // new daemon joins the matching threads again (and only them).
  EXPECT_EQ(daemon_->stop(SIGKILL), -SIGKILL);
  std::filesystem::remove(log_);
  start();
  want.push_back(cpu2);
  std::sort(want.begin(), want.end());
  ASSERT_TRUE(eventually([&] { return gang_threads() == want; })) << ::testing::PrintToString(gang_threads());
  fake = read_file(log_);
  EXPECT_THAT(fake, HasSubstr(joined(pid, cpu2)));
  EXPECT_THAT(fake, Not(HasSubstr(joined(pid, io))));
  EXPECT_THAT(fake, Not(HasSubstr(joined(pid, 0))));
  EXPECT_THAT(cli({"gang", "list", "--json"}).out, HasSubstr("\"threadsGlob\": \"CPU */TCG\""));
}

TEST_F(ThreadGlob, BadGlobsAndMissingPidsAreClearErrorsThatChangeNothing) {
  auto vm = vm_monitor("CPU 0/TCG");
  const std::string pid = std::to_string(vm->pid());
  ASSERT_EQ(cli({"gang", "create", "NORM/vm"}).exit_code, 0);
  struct Case {
    std::string glob, says;
  };
  for (const Case& c : std::vector<Case>{
           {"CPU [0-9/TCG", "'[' at offset 4 is never closed"},
           {"CPU *\\", "ends in a lone '\\'"},
           {"qemu-system-x86_64 vcpu*", "thread names hold at most 15"},
       }) {
    auto r = cli({"gang", "add", "NORM/vm", "--pid", pid, "--threads", c.glob});
    EXPECT_EQ(r.exit_code, 1) << c.glob;
    EXPECT_THAT(r.err, HasSubstr(c.says)) << c.glob;
  }
  auto r = cli({"gang", "add", "NORM/vm", "--pid", "999999", "--threads", "CPU *"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("999999"));
  // Nothing was bound, nothing joined.
  EXPECT_THAT(cli({"show", "NORM"}).out, Not(HasSubstr(pid)));
  EXPECT_THAT(read_file(log_), Not(HasSubstr("join_gang")));
  // --threads names threads of a process: not with --tid; and it belongs
  // to a gang in `usched run`.
  r = cli({"gang", "add", "NORM/vm", "--pid", pid, "--tid", pid, "--threads", "CPU *"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("--threads"));
  r = cli({"run", "NORM", "--threads", "CPU *", "--", "true"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("give --gang GANG too"));
  // The same process with another glob: remove it first.
  ASSERT_EQ(cli({"gang", "add", "NORM/vm", "--pid", pid, "--threads", "CPU *"}).exit_code, 0);
  r = cli({"gang", "add", "NORM/vm", "--pid", pid, "--threads", "vcpu*"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("already in gang NORM/vm with threads 'CPU *'; remove it first"));
}

// The freezer cannot take single threads of this process (on cgroup v2:
// the kernel refuses to make it a threaded subtree of its own): the user
// hears the glue's reason, and the process is neither in the gang nor
// left bound to the scheduler.
TEST_F(ThreadGlob, AProcessWhoseThreadsTheFreezerCannotTakeIsRefusedAndLeftAsItWas) {
  daemon_->stop(SIGTERM);
  start({"--fake-fail", "isolate_threads=95"});
  auto vm = vm_monitor("CPU 0/TCG");
  const std::string pid = std::to_string(vm->pid());
  ASSERT_EQ(cli({"gang", "create", "NORM/vm"}).exit_code, 0);
  auto r = cli({"gang", "add", "NORM/vm", "--pid", pid, "--threads", "CPU *"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("isolate_threads"));
  EXPECT_THAT(r.err, HasSubstr("EOPNOTSUPP"));
  EXPECT_THAT(cli({"show", "NORM"}).out, Not(HasSubstr(pid)));
  EXPECT_TRUE(gang_threads().empty());
  EXPECT_THAT(read_file(log_), Not(HasSubstr("join_gang")));
  EXPECT_THAT(read_file(log_), HasSubstr("restore pid=" + pid));
}

TEST_F(ThreadGlob, UschedRunWithThreadsGangsTheCommandsMatchingThreads) {
  ASSERT_EQ(cli({"gang", "create", "NORM/vm"}).exit_code, 0);
  // `usched run` execs the monitor, so the monitor is the child's pid.
  Child run({USCHED_CLI_PATH, "--socket", daemon_->socket(), "run", "NORM", "--gang", "vm", "--threads",
             "CPU */TCG", "--", "env", std::string(kModeEnv) + "=iothread,CPU 0/TCG,CPU 1/TCG", self_exe()});
  const pid_t pid = run.pid();
  ASSERT_TRUE(eventually([&] { return tid_named(pid, "CPU 1/TCG") && tid_named(pid, "CPU 0/TCG"); }));
  std::vector<int> want = {tid_named(pid, "CPU 0/TCG"), tid_named(pid, "CPU 1/TCG")};
  std::sort(want.begin(), want.end());
  ASSERT_TRUE(eventually([&] { return gang_threads() == want; })) << ::testing::PrintToString(gang_threads());
  EXPECT_THAT(read_file(log_), Not(HasSubstr(joined(pid, tid_named(pid, "iothread")))));
  EXPECT_THAT(read_file(log_), Not(HasSubstr(joined(pid, 0))));
}

TEST_F(ThreadGlob, TheMetricsCarryEachGangsSkewAndCoRun) {
  TempDir m;
  const std::string sock = m / "metrics.sock";
  daemon_->stop(SIGTERM);
  daemon_ = std::make_unique<Daemon>(std::vector<std::string>{"--glue", "fake", "--fake-cpus", "0-1", "--fake-log",
                                                              log_, "--no-config", "--metrics", "unix:" + sock},
                                     state_.path());
  ASSERT_TRUE(daemon_->start()) << daemon_->log();
  auto vm = vm_monitor("CPU 0/TCG,CPU 1/TCG");
  ASSERT_EQ(cli({"gang", "create", "NORM/vm"}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return tid_named(vm->pid(), "CPU 1/TCG") != 0; }));
  ASSERT_EQ(cli({"gang", "add", "NORM/vm", "--pid", std::to_string(vm->pid()), "--threads", "CPU *"}).exit_code, 0);
  const std::string body = http_get_unix(sock);
  EXPECT_THAT(body, HasSubstr("# TYPE usched_gang_skew_seconds gauge"));
  EXPECT_THAT(body, HasSubstr("usched_gang_skew_seconds{scheduler=\"NORM\",gang=\"vm\"} "));
  EXPECT_THAT(body, HasSubstr("usched_gang_co_run_ratio{scheduler=\"NORM\",gang=\"vm\"} "));
  EXPECT_THAT(body, HasSubstr("usched_gang_threads{scheduler=\"NORM\",gang=\"vm\"} 2"));
}

}  // namespace
}  // namespace usched::test
