// Tier 3, as root: delegation checked with real unprivileged users made for
// the test (usched-t-a, usched-t-b; created with useradd when missing, left
// in place: they own nothing and cannot log in). Each user runs the real
// usched command, so the daemon sees them through SO_PEERCRED.
#include <grp.h>
#include <pwd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/harness.h"
#include "support/kernel.h"
#include "usched/client.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;

// The uid of a test user, made when missing; -1 when it cannot be made.
int ensure_user(const std::string& name) {
  if (const passwd* pw = ::getpwnam(name.c_str())) return static_cast<int>(pw->pw_uid);
  run({"useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name});
  const passwd* pw = ::getpwnam(name.c_str());
  return pw ? static_cast<int>(pw->pw_uid) : -1;
}

// "sleep 300" running as another user, killed by pid when it goes.
class UserChild {
 public:
  explicit UserChild(int uid) {
    pid_ = ::fork();
    if (pid_ == 0) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0) ::_exit(126);
      ::execlp("sleep", "sleep", "300", nullptr);
      ::_exit(127);
    }
    // Bound only once it is the other user's process.
    eventually([&] {
      struct stat st{};
      return ::stat(("/proc/" + std::to_string(pid_)).c_str(), &st) == 0 &&
             st.st_uid == static_cast<uid_t>(uid);
    });
  }
  ~UserChild() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

class AuthzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    USCHED_SKIP_OR_FAIL_IF(kernel_unavailable("authorization tests (they make users)"));
    a_ = ensure_user("usched-t-a");
    b_ = ensure_user("usched-t-b");
    ASSERT_GE(a_, 0);
    ASSERT_GE(b_, 0);
    top_ = "usched-test-" + random_suffix();
    d_ = std::make_unique<Daemon>(std::vector<std::string>{
        "--cgroup-top", top_, "--cleanup-on-exit", "--max-entities-per-owner", "3"});
    ASSERT_TRUE(d_->start()) << d_->log();
    // The socket lets everyone connect.
    struct stat st{};
    ASSERT_EQ(::stat(d_->socket().c_str(), &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0666u);
    ASSERT_EQ(root("create A on cpu1").exit_code, 0);
    ASSERT_EQ(root("create B on cpu0").exit_code, 0);
    ASSERT_EQ(root("chown A usched-t-a").exit_code, 0);
    ASSERT_EQ(root("chown B usched-t-b").exit_code, 0);
  }
  void TearDown() override {
    if (!d_) return;
    d_->stop(SIGTERM);
    if (HasFailure()) std::cerr << "uschedd log:\n" << d_->log();
  }
  static std::vector<std::string> words(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> w;
    std::string x;
    while (in >> x) w.push_back(x);
    return w;
  }
  CmdResult root(const std::string& line) { return d_->cli(words(line)); }
  CmdResult as(int uid, const std::string& line) { return d_->cli(words(line), {.as_uid = uid}); }
  CmdResult bind_as(int uid, const std::string& name, pid_t pid) {
    return d_->cli({"bind", name, "--pid", std::to_string(pid)}, {.as_uid = uid});
  }
  v1::Scheduler get(const std::string& name) {
    auto c = Client::connect(d_->socket(), 5s);
    EXPECT_TRUE(c.is_ok());
    if (!c.is_ok()) return {};
    auto s = (*c)->get(name);
    EXPECT_TRUE(s.is_ok()) << name << ": " << s.status().message();
    return s.is_ok() ? *s : v1::Scheduler{};
  }

  int a_ = -1, b_ = -1;
  std::string top_;
  std::unique_ptr<Daemon> d_;
};

TEST_F(AuthzTest, OwnerSubdividesWhatRootHandedOverInItsOwnVcpuNumbering) {
  EXPECT_EQ(get("A").owner_uid(), static_cast<uint32_t>(a_));
  auto r = as(a_, "create A/sub on cpu0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // A's vcpu 0 is physical CPU 1.
  const auto sub = get("A/sub");
  EXPECT_EQ(sub.cpus(), "1");
  EXPECT_EQ(sub.owner_uid(), static_cast<uint32_t>(a_));
  UserChild mine(a_);
  r = bind_as(a_, "A/sub", mine.pid());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(cpus_allowed(mine.pid()), "1");
  // A may manage what is below A, and hand it on.
  EXPECT_EQ(as(a_, "update A/sub vcpus 2").exit_code, 0);
  r = as(a_, "chown A/sub usched-t-b");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(get("A/sub").owner_uid(), static_cast<uint32_t>(b_));
  EXPECT_EQ(as(a_, "destroy A/sub --force").exit_code, 0);
}

TEST_F(AuthzTest, UserCannotTouchAnotherUsersEntitiesOrBindTheirProcesses) {
  ASSERT_EQ(as(a_, "create A/sub on cpu0").exit_code, 0);
  for (const char* line : {"create A/x on cpu0", "update A/sub vcpus 2", "destroy A/sub",
                           "chown A/sub usched-t-b", "destroy A --force"}) {
    auto r = as(b_, line);
    EXPECT_NE(r.exit_code, 0) << line;
    EXPECT_THAT(r.err, HasSubstr("may not")) << line;
  }
  UserChild bs(b_), as_child(a_);
  auto r = bind_as(a_, "A/sub", bs.pid());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("only your own processes"));
  r = bind_as(a_, "B", as_child.pid());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("may not bind to 'B'"));
  EXPECT_NE(cpus_allowed(bs.pid()), "1");
  // Nor change what was handed over, nor make top-level entities.
  EXPECT_NE(as(a_, "update A on cpu0-1").exit_code, 0);
  EXPECT_NE(as(a_, "create Z on cpu0").exit_code, 0);
  // Everyone may read.
  r = as(b_, "list");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("A/sub"));
  EXPECT_EQ(get("A/sub").owner_uid(), static_cast<uint32_t>(a_));
}

TEST_F(AuthzTest, RealtimeNeedsRootOrAnEntityRootAllowed) {
  auto r = as(a_, "create A/rt on cpu0 lwktpri 10");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("realtime"));
  EXPECT_NE(as(a_, "create A/ex on cpu0 exclusive").exit_code, 0);

  auto c = Client::connect(d_->socket(), 5s);
  ASSERT_TRUE(c.is_ok());
  v1::SchedulerSpec s;
  s.set_name("A");
  s.set_allow_realtime(true);
  ASSERT_TRUE((*c)->update(s, {"allow_realtime"}).is_ok());
  r = as(a_, "create A/rt on cpu0 lwktpri 10");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(get("A/rt").effective_class(), v1::SCHED_CLASS_REALTIME);
}

TEST_F(AuthzTest, EntitiesPerOwnerAreLimited) {
  // A owns A already; the limit is 3.
  ASSERT_EQ(as(a_, "create A/s1 on cpu0").exit_code, 0);
  ASSERT_EQ(as(a_, "create A/s2 on cpu0").exit_code, 0);
  auto r = as(a_, "create A/s3 on cpu0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("--max-entities-per-owner"));
}

}  // namespace
}  // namespace usched::test
