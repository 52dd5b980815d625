// Tier 3, as root: the state survives uschedd's own crash, a corrupt state
// file is refused and kept, a full or read-only state disk makes RPCs fail
// with nothing changed, and a reused pid is not taken for an old member.
// Real cgroups under usched-test-<random>, real tmpfs mounts (always
// unmounted, even when a test fails).
#include <sys/mount.h>

#include <atomic>
#include <mutex>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/harness.h"
#include "support/kernel.h"
#include "usched/client.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

#define REQUIRE_ROOT_AND_CGROUPS() USCHED_SKIP_OR_FAIL_IF(kernel_unavailable("durability tests"))

// A tmpfs mounted for one test, unmounted when it goes.
class Tmpfs {
 public:
  Tmpfs(const std::string& path, const std::string& opts) : path_(path) {
    std::filesystem::create_directories(path);
    ok_ = ::mount("usched-test", path.c_str(), "tmpfs", 0, opts.c_str()) == 0;
  }
  ~Tmpfs() {
    if (ok_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool ok() const { return ok_; }
  bool remount_ro() {
    return ::mount("usched-test", path_.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, nullptr) == 0;
  }

 private:
  std::string path_;
  bool ok_ = false;
};

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> w;
  std::string x;
  while (in >> x) w.push_back(x);
  return w;
}

class DurabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_ROOT_AND_CGROUPS();
    top_ = "usched-test-" + random_suffix();
    all_cpus_ = cpus_allowed(::getpid());
  }
  void TearDown() override {
    remove_cgroup_top(top_);  // a safety net: whatever a failed test left
  }
  std::vector<std::string> args(bool cleanup) const {
    std::vector<std::string> a = {"--cgroup-top", top_, "--log-level", "debug"};
    if (cleanup) a.push_back("--cleanup-on-exit");
    return a;
  }
  static v1::ListSchedulersResponse list(const Daemon& d) {
    auto c = Client::connect(d.socket(), 5s);
    EXPECT_TRUE(c.is_ok()) << c.status().message();
    if (!c.is_ok()) return {};
    auto l = (*c)->list();
    EXPECT_TRUE(l.is_ok()) << l.status().message();
    return l.is_ok() ? *l : v1::ListSchedulersResponse{};
  }
  static const v1::Scheduler* find(const v1::ListSchedulersResponse& l, const std::string& name) {
    for (const auto& s : l.schedulers()) {
      if (s.spec().name() == name) return &s;
    }
    return nullptr;
  }
  static bool has_member(const v1::Scheduler* s, pid_t pid) {
    if (!s) return false;
    for (const auto& m : s->members()) {
      if (m.pid() == pid) return true;
    }
    return false;
  }

  std::string top_, all_cpus_;
};

TEST_F(DurabilityTest, SigkillDuringABurstOfBindsLosesNoSchedulerAndNoLivingMember) {
  TempDir state;
  std::vector<std::unique_ptr<Child>> kids;
  for (int i = 0; i < 40; ++i) kids.push_back(std::make_unique<Child>());
  std::mutex mu;
  std::vector<std::pair<pid_t, std::string>> answered;  // binds that were answered OK
  {
    Daemon d1(args(false), state.path());
    ASSERT_TRUE(d1.start()) << d1.log();
    ASSERT_EQ(d1.cli(words("create X on cpu1")).exit_code, 0);
    ASSERT_EQ(d1.cli(words("create Y on cpu0-1 locked")).exit_code, 0);
    auto c = Client::connect(d1.socket(), 5s);
    ASSERT_TRUE(c.is_ok());
    (*c)->set_timeout(3s);
    std::thread burst([&] {
      for (size_t i = 0; i < kids.size(); ++i) {
        const std::string name = i % 2 ? "X" : "Y";
        if ((*c)->bind(name, kids[i]->pid()).is_ok()) {
          std::lock_guard<std::mutex> l(mu);
          answered.emplace_back(kids[i]->pid(), name);
        }
      }
    });
    // Kill it in the middle of the burst, not before and not after.
    EXPECT_TRUE(eventually([&] {
      std::lock_guard<std::mutex> l(mu);
      return answered.size() >= 10;
    }));
    EXPECT_EQ(d1.stop(SIGKILL), -SIGKILL);
    burst.join();
    if (HasFailure()) std::cerr << d1.log();
  }
  ASSERT_GE(answered.size(), 10u);
  ASSERT_LT(answered.size(), kids.size()) << "the burst ended before the kill; nothing was tested";

  // Two members die while uschedd is down: they are dropped, not adopted.
  std::set<pid_t> dead;
  for (int i = 0; i < 2; ++i) {
    const pid_t p = answered[i].first;
    for (auto& k : kids) {
      if (k->pid() == p) k->kill();
    }
    dead.insert(p);
  }

  Daemon d2(args(true), state.path());
  ASSERT_TRUE(d2.start()) << d2.log();
  const auto l = list(d2);
  const v1::Scheduler* x = find(l, "X");
  const v1::Scheduler* y = find(l, "Y");
  ASSERT_TRUE(x && y) << d2.log();
  EXPECT_EQ(x->cpus(), "1");
  for (auto& [pid, name] : answered) {
    const v1::Scheduler* s = name == "X" ? x : y;
    if (dead.count(pid)) {
      EXPECT_FALSE(has_member(s, pid)) << "dead pid " << pid << " was adopted";
      continue;
    }
    EXPECT_TRUE(has_member(s, pid)) << "pid " << pid << " lost from " << name << "\n" << d2.log();
    if (name == "X") {
      EXPECT_EQ(cpus_allowed(pid), "1") << "pid " << pid;
    } else {
      // Locked Y: each member on one CPU of Y's.
      EXPECT_THAT(std::vector<std::string>({"0", "1"}), ::testing::Contains(cpus_allowed(pid)));
    }
    EXPECT_TRUE(eventually([&] { return cpuset_cgroup(pid).find(top_ + "/" + name) != std::string::npos; }))
        << "pid " << pid << " is in " << cpuset_cgroup(pid);
  }
  EXPECT_THAT(d2.log(), HasSubstr("dropped 2"));
  EXPECT_EQ(d2.stop(SIGTERM), 0);
  EXPECT_FALSE(std::filesystem::exists(cpuset_hierarchy() + "/" + top_));
}

TEST_F(DurabilityTest, CorruptStateFileIsRefusedAndKeptAside) {
  TempDir state;
  const std::string garbage = "{\"version\": 1, \"schedulers\": [{\"name\": \"X\", \"po";
  std::ofstream(state / "state.json") << garbage;
  Daemon d(args(true), state.path());
  EXPECT_FALSE(d.start());
  EXPECT_EQ(d.exit_code(), 1);
  EXPECT_THAT(d.log(), HasSubstr("state file " + (state / "state.json") + " is unreadable"));
  EXPECT_FALSE(std::filesystem::exists(state / "state.json"));
  int kept = 0;
  for (auto& e : std::filesystem::directory_iterator(state.path())) {
    if (e.path().filename().string().rfind("state.json.corrupt-", 0) == 0) {
      ++kept;
      EXPECT_EQ(read_file(e.path()), garbage);
      EXPECT_THAT(d.log(), HasSubstr(e.path().string()));
    }
  }
  EXPECT_EQ(kept, 1);
}

TEST_F(DurabilityTest, FullOrReadOnlyStateDiskFailsRpcsWithNothingChanged) {
  TempDir base;
  const std::string dir = base / "state";
  Tmpfs fs(dir, "size=64k,mode=0755");
  ASSERT_TRUE(fs.ok()) << "mount tmpfs on " << dir << ": " << std::strerror(errno);
  Daemon d(args(true), dir);
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.cli(words("create X on cpu1")).exit_code, 0);
  Child member, outsider;
  ASSERT_EQ(d.cli({"bind", "X", "--pid", std::to_string(member.pid())}).exit_code, 0);
  const std::string saved = read_file(dir + "/state.json");

  {  // Fill the disk.
    std::ofstream filler(dir + "/filler");
    const std::string block(4096, 'x');
    while (filler.write(block.data(), block.size()) && filler.flush()) {
    }
  }
  auto r = d.cli(words("create Y on cpu0"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr(dir + "/state.json"));
  EXPECT_THAT(r.err, HasSubstr("No space left on device"));
  EXPECT_FALSE(std::filesystem::exists(cpuset_hierarchy() + "/" + top_ + "/Y"));

  // A Bind or Unbind appends one line to members.log, which may still fit
  // in a page the log already holds: each one either is recorded or fails
  // with nothing changed. Go until the disk refuses one.
  bool refused = false;
  bool outsider_bound = false;
  for (int i = 0; i < 400 && !refused; ++i) {
    const std::string pid = std::to_string(outsider.pid());
    r = outsider_bound ? d.cli({"unbind", "--pid", pid}) : d.cli({"bind", "X", "--pid", pid});
    if (r.exit_code == 0) {
      outsider_bound = !outsider_bound;
      continue;
    }
    refused = true;
    EXPECT_THAT(r.err, HasSubstr(dir + "/members.log"));
    EXPECT_THAT(r.err, HasSubstr("No space left on device"));
  }
  ASSERT_TRUE(refused) << "400 binds and unbinds all fit on a full disk";
  EXPECT_EQ(cpus_allowed(outsider.pid()), outsider_bound ? "1" : all_cpus_);
  EXPECT_EQ(cpus_allowed(member.pid()), "1");

  r = d.cli({"destroy", "X", "--force"});
  EXPECT_NE(r.exit_code, 0);

  auto l = list(d);
  EXPECT_FALSE(find(l, "Y"));
  ASSERT_TRUE(find(l, "X"));
  EXPECT_TRUE(has_member(find(l, "X"), member.pid()));
  EXPECT_EQ(has_member(find(l, "X"), outsider.pid()), outsider_bound);
  EXPECT_EQ(read_file(dir + "/state.json"), saved);

  // Room again: the same request succeeds.
  std::filesystem::remove(dir + "/filler");
  EXPECT_EQ(d.cli(words("create Y on cpu0")).exit_code, 0);

  // Whatever answered was recorded: it all survives a SIGKILL.
  d.stop(SIGKILL);
  Daemon d2(args(true), dir);
  ASSERT_TRUE(d2.start()) << d2.log();
  l = list(d2);
  ASSERT_TRUE(find(l, "X"));
  EXPECT_TRUE(find(l, "Y"));
  EXPECT_TRUE(has_member(find(l, "X"), member.pid()));
  EXPECT_EQ(has_member(find(l, "X"), outsider.pid()), outsider_bound);

  ASSERT_TRUE(fs.remount_ro()) << std::strerror(errno);
  r = d2.cli(words("create Z on cpu0"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("Read-only file system"));
  EXPECT_FALSE(find(list(d2), "Z"));
  EXPECT_EQ(d2.stop(SIGTERM), 0);
}

TEST_F(DurabilityTest, ReusedPidIsNotTakenForTheOldMember) {
  TempDir state;
  pid_t old_pid = 0;
  {
    Daemon d1(args(false), state.path());
    ASSERT_TRUE(d1.start()) << d1.log();
    ASSERT_EQ(d1.cli(words("create X on cpu1")).exit_code, 0);
    Child old;
    old_pid = old.pid();
    ASSERT_EQ(d1.cli({"bind", "X", "--pid", std::to_string(old_pid)}).exit_code, 0);
    d1.stop(SIGKILL);
  }  // the old process is gone with `old`
  // Make the kernel hand out the same pid again (as CRIU does).
  std::unique_ptr<Child> reused;
  for (int i = 0; i < 100 && !reused; ++i) {
    std::ofstream("/proc/sys/kernel/ns_last_pid") << old_pid - 1;
    auto c = std::make_unique<Child>();
    if (c->pid() == old_pid) reused = std::move(c);
  }
  ASSERT_TRUE(reused) << "could not get pid " << old_pid << " again";

  Daemon d2(args(true), state.path());
  ASSERT_TRUE(d2.start()) << d2.log();
  const auto l = list(d2);
  ASSERT_TRUE(find(l, "X"));
  EXPECT_FALSE(has_member(find(l, "X"), old_pid));
  EXPECT_EQ(cpus_allowed(old_pid), all_cpus_);
  EXPECT_THAT(d2.log(), HasSubstr("pid " + std::to_string(old_pid) + " of X is gone"));
  EXPECT_THAT(cpuset_cgroup(old_pid), Not(HasSubstr(top_)));
  EXPECT_EQ(d2.stop(SIGTERM), 0);
}

}  // namespace
}  // namespace usched::test
