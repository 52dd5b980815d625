// Tier 2: the C API of libusched (usched/usched.h) against a real uschedd
// on the fake glue: each error comes back with the gRPC status code that
// lets a program tell the cases apart, and the gang and other-pid calls
// change what the daemon reports.
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/harness.h"
#include "usched/client.h"
#include "usched/usched.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;

class CApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<Daemon>(std::vector<std::string>{"--glue", "fake", "--fake-cpus", "0-3"});
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
    ASSERT_EQ(usched_set_socket(daemon_->socket().c_str()), 0);
  }
  void TearDown() override {
    (void)usched_set_socket(nullptr);
    if (HasFailure()) std::cerr << "uschedd log:\n" << daemon_->log();
  }
  v1::Gang gang(const std::string& sched, const std::string& name) {
    auto c = Client::connect(daemon_->socket(), 5s);
    EXPECT_TRUE(c.is_ok());
    auto l = (*c)->list_gangs(sched);
    EXPECT_TRUE(l.is_ok()) << l.status().message();
    for (const auto& g : l->gangs()) {
      if (g.spec().name() == name) return g;
    }
    return {};
  }
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(CApiTest, ErrorsCarryTheGrpcCodeThatNamesTheCase) {
  EXPECT_EQ(usched_bind_self("no-such-scheduler", -1), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_NOT_FOUND);
  EXPECT_STREQ(usched_code_name(usched_last_error_code()), "NOT_FOUND");
  EXPECT_THAT(usched_last_error(), HasSubstr("no-such-scheduler"));

  EXPECT_EQ(usched_bind_pid("NORM", 0, 0, -1), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_INVALID_ARGUMENT);
  EXPECT_THAT(usched_last_error(), HasSubstr("pid 0"));
  EXPECT_EQ(usched_gang_create("no-slash", 0, 0), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_INVALID_ARGUMENT);
  EXPECT_EQ(usched_join_gang(nullptr), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_INVALID_ARGUMENT);

  // A success clears the thread's last error.
  EXPECT_EQ(usched_bind_thread("NORM", -1), 0) << usched_last_error();
  EXPECT_EQ(usched_last_error_code(), USCHED_OK);
  EXPECT_STREQ(usched_last_error(), "");

  TempDir empty;
  ASSERT_EQ(usched_set_socket((empty / "nobody-here.sock").c_str()), 0);
  EXPECT_EQ(usched_bind_self("NORM", -1), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_UNAVAILABLE);
  EXPECT_THAT(usched_last_error(), HasSubstr("nobody-here.sock"));
  EXPECT_STREQ(usched_code_name(12345), "UNKNOWN");
}

TEST_F(CApiTest, AChildOfRforkCanCallTheLibraryAgain) {
  for (int round = 0; round < 3; ++round) {
    const pid_t pid = usched_rfork("NORM", -1);
    if (pid == 0) ::_exit(usched_bind_thread("IDLE", -1) == 0 ? 0 : 10 + usched_last_error_code());
    ASSERT_GT(pid, 0) << usched_last_error();
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 0) << "round " << round << ": the child's call failed with code "
                                  << WEXITSTATUS(st) - 10;
  }
}

TEST_F(CApiTest, SetSocketOverridesTheEnvironmentUntilReset) {
  EXPECT_EQ(std::string(usched_socket()), daemon_->socket());
  ::setenv("USCHED_SOCKET", "/nonexistent/env.sock", 1);
  EXPECT_EQ(std::string(usched_socket()), daemon_->socket());
  ASSERT_EQ(usched_set_socket(""), 0);
  EXPECT_EQ(std::string(usched_socket()), "/nonexistent/env.sock");
  ::unsetenv("USCHED_SOCKET");
  EXPECT_EQ(std::string(usched_socket()), "/run/usched/usched.sock");
}

TEST_F(CApiTest, BindsAnotherPidAndUnbindsIt) {
  Child sleeper;
  ASSERT_EQ(usched_bind_pid("IDLE", sleeper.pid(), 0, -1), 0) << usched_last_error();
  auto c = Client::connect(daemon_->socket(), 5s);
  ASSERT_TRUE(c.is_ok());
  auto s = (*c)->get("IDLE");
  ASSERT_TRUE(s.is_ok());
  ASSERT_EQ(s->members_size(), 1);
  EXPECT_EQ(s->members(0).pid(), sleeper.pid());
  ASSERT_EQ(usched_unbind(sleeper.pid(), 0), 0) << usched_last_error();
  EXPECT_EQ((*c)->get("IDLE")->members_size(), 0);
  EXPECT_EQ(usched_unbind(sleeper.pid(), 0), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_NOT_FOUND) << usched_last_error();
}

TEST_F(CApiTest, GangCallsCreateFillAndDestroyAGang) {
  ASSERT_EQ(usched_gang_create("NORM/vm", 30, 2), 0) << usched_last_error();
  EXPECT_EQ(gang("NORM", "vm").spec().quantum_ms(), 30);
  EXPECT_EQ(gang("NORM", "vm").spec().width(), 2);
  EXPECT_EQ(usched_gang_create("NORM/vm", 0, 0), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_ALREADY_EXISTS) << usched_last_error();

  Child sleeper;
  ASSERT_EQ(usched_gang_add("NORM/vm", sleeper.pid(), 0), 0) << usched_last_error();
  ASSERT_EQ(usched_join_gang("NORM/vm"), 0) << usched_last_error();
  std::vector<int> pids;
  const v1::Gang g = gang("NORM", "vm");
  for (const auto& m : g.members()) pids.push_back(m.tid() ? m.tid() : m.pid());
  EXPECT_THAT(pids, ::testing::UnorderedElementsAre(sleeper.pid(), static_cast<int>(::gettid())));

  EXPECT_EQ(usched_gang_add("NORM/nope", sleeper.pid(), 0), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_NOT_FOUND) << usched_last_error();
  ASSERT_EQ(usched_gang_destroy("NORM/vm"), 0) << usched_last_error();
  EXPECT_EQ(gang("NORM", "vm").spec().name(), "");
}

TEST_F(CApiTest, SchedCreateMakesAChildOnThePoolAndGetReportsIt) {
  ASSERT_EQ(usched_sched_create("NORM/step", "cpu1 cpu2", 4, 1), 0) << usched_last_error();
  usched_sched_info info{};
  ASSERT_EQ(usched_sched_get("NORM/step", &info), 0) << usched_last_error();
  auto c = Client::connect(daemon_->socket(), 5s);
  ASSERT_TRUE(c.is_ok());
  auto s = (*c)->get("NORM/step");
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  EXPECT_EQ(s->spec().lwktpri(), 4);
  EXPECT_TRUE(s->spec().locked());
  EXPECT_EQ(info.lwktpri, 4);
  EXPECT_EQ(info.locked, 1);
  EXPECT_EQ(info.nvcpus, 2);
  EXPECT_EQ(info.owner_uid, s->owner_uid());
  EXPECT_STREQ(info.cpus, s->cpus().c_str());
  ASSERT_EQ(s->vcpu_size(), 2);
  const std::string vcpus = "0:" + s->vcpu(0).cpus() + " 1:" + s->vcpu(1).cpus();
  EXPECT_STREQ(info.vcpus, vcpus.c_str());

  // Without lwktpri the child gets the default level.
  ASSERT_EQ(usched_sched_create("NORM/plain", "cpu0", -1, 0), 0) << usched_last_error();
  ASSERT_EQ(usched_sched_get("NORM/plain", &info), 0) << usched_last_error();
  EXPECT_EQ(info.lwktpri, 6);
  EXPECT_EQ(info.locked, 0);

  EXPECT_EQ(usched_sched_create("NORM/step", "cpu0", -1, 0), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_ALREADY_EXISTS) << usched_last_error();
  EXPECT_EQ(usched_sched_create("NORM/bad", "cpu99", -1, 0), -1);
  EXPECT_NE(usched_last_error_code(), USCHED_OK);
  EXPECT_THAT(usched_last_error(), HasSubstr("cpu99"));
  EXPECT_FALSE((*c)->get("NORM/bad").is_ok()) << "a refused create left a scheduler behind";
  EXPECT_EQ(usched_sched_create("NORM/x", nullptr, -1, 0), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_INVALID_ARGUMENT);
  EXPECT_THAT(usched_last_error(), HasSubstr("pool"));
  EXPECT_EQ(usched_sched_get("NORM/nope", &info), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_NOT_FOUND);
  EXPECT_THAT(usched_last_error(), HasSubstr("NORM/nope"));
  EXPECT_EQ(usched_sched_get("NORM", nullptr), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_INVALID_ARGUMENT);
}

TEST_F(CApiTest, SchedChownHandsTheSchedulerToTheUser) {
  ASSERT_EQ(usched_sched_create("NORM/job", "cpu0", -1, 0), 0) << usched_last_error();
  ASSERT_EQ(usched_sched_chown("NORM/job", 4242, 4343), 0) << usched_last_error();
  usched_sched_info info{};
  ASSERT_EQ(usched_sched_get("NORM/job", &info), 0) << usched_last_error();
  EXPECT_EQ(info.owner_uid, 4242u);
  EXPECT_EQ(info.owner_gid, 4343u);
  // gid -1 keeps the group.
  ASSERT_EQ(usched_sched_chown("NORM/job", 4444, static_cast<gid_t>(-1)), 0) << usched_last_error();
  ASSERT_EQ(usched_sched_get("NORM/job", &info), 0) << usched_last_error();
  EXPECT_EQ(info.owner_uid, 4444u);
  EXPECT_EQ(info.owner_gid, 4343u);
  EXPECT_EQ(usched_sched_chown("NORM/nope", 1, 1), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_NOT_FOUND) << usched_last_error();
}

TEST_F(CApiTest, SchedDestroyRefusesABusySchedulerUnlessForced) {
  ASSERT_EQ(usched_sched_create("NORM/job", "cpu0 cpu1", -1, 0), 0) << usched_last_error();
  ASSERT_EQ(usched_sched_create("NORM/job/inner", "cpu0", -1, 0), 0) << usched_last_error();
  Child sleeper;
  ASSERT_EQ(usched_bind_pid("NORM/job", sleeper.pid(), 0, -1), 0) << usched_last_error();
  auto c = Client::connect(daemon_->socket(), 5s);
  ASSERT_TRUE(c.is_ok());

  EXPECT_EQ(usched_sched_destroy("NORM/job", 0), -1);
  EXPECT_NE(usched_last_error_code(), USCHED_OK);
  EXPECT_THAT(usched_last_error(), HasSubstr("NORM/job"));
  EXPECT_TRUE((*c)->get("NORM/job/inner").is_ok()) << "a refused destroy removed the child";

  ASSERT_EQ(usched_sched_destroy("NORM/job", 1), 0) << usched_last_error();
  EXPECT_FALSE((*c)->get("NORM/job").is_ok());
  EXPECT_FALSE((*c)->get("NORM/job/inner").is_ok());
  // The member moved to the parent.
  auto norm = (*c)->get("NORM");
  ASSERT_TRUE(norm.is_ok());
  std::vector<int> pids;
  for (const auto& m : norm->members()) pids.push_back(m.pid());
  EXPECT_THAT(pids, ::testing::Contains(sleeper.pid()));

  EXPECT_EQ(usched_sched_destroy("NORM/job", 1), -1);
  EXPECT_EQ(usched_last_error_code(), USCHED_NOT_FOUND) << usched_last_error();
}

}  // namespace
}  // namespace usched::test
