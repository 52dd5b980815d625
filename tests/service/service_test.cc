// Tier 2: a real uschedd with the fake glue on a temporary socket, driven
// through the usched CLI as a user would type it, and through the client
// library. The fake glue never touches the kernel; it logs what it was
// asked to do, and can be told to fail.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "support/harness.h"
#include "support/kernel.h"
#include "usched/client.h"
#include "usched/usched.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> fake_args(std::vector<std::string> more = {}) {
  std::vector<std::string> a = {"--glue", "fake", "--fake-cpus", "0-3"};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<Daemon>(fake_args({"--fake-log", fake_log_}));
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "uschedd log:\n" << daemon_->log();
  }
  CmdResult cli(std::vector<std::string> args, RunOptions o = {}) { return daemon_->cli(args, o); }
  std::unique_ptr<Client> client() {
    auto c = Client::connect(daemon_->socket(), 5s);
    EXPECT_TRUE(c.is_ok()) << c.status().message();
    return c ? std::move(*c) : nullptr;
  }

  TempDir logdir_;
  std::string fake_log_ = logdir_ / "fake.log";
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(ServiceTest, StartsWithIdleNormRealOnEveryCpu) {
  auto r = cli({"list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* n : {"IDLE", "NORM", "REAL"}) EXPECT_THAT(r.out, HasSubstr(n));
  auto c = client();
  auto l = c->list();
  ASSERT_TRUE(l.is_ok());
  ASSERT_EQ(l->schedulers_size(), 3);
  EXPECT_EQ(l->glue(), "fake");
  for (const auto& s : l->schedulers()) {
    EXPECT_EQ(s.effective_cpus(), "0-3") << s.spec().name();
  }
  EXPECT_EQ(l->schedulers(0).spec().name(), "IDLE");
  EXPECT_EQ(l->schedulers(0).effective_class(), v1::SCHED_CLASS_IDLE);
  EXPECT_EQ(l->schedulers(1).effective_class(), v1::SCHED_CLASS_NORMAL);
  EXPECT_EQ(l->schedulers(2).effective_class(), v1::SCHED_CLASS_REALTIME);
  EXPECT_EQ(l->schedulers(2).rt_priority(), 1);
}

TEST_F(ServiceTest, LineSyntaxCreatesALockedIdleScheduler) {
  auto r = cli({"MYCUSTOM", "on", "cpu1", "cpu2", "lwktpri", "4", "locked"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto s = client()->get("MYCUSTOM");
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s->effective_cpus(), "1-2");
  EXPECT_TRUE(s->spec().locked());
  EXPECT_EQ(s->effective_class(), v1::SCHED_CLASS_IDLE);
  // The fake glue was asked for the group with those CPUs.
  EXPECT_TRUE(eventually([&] { return read_file(fake_log_).find("MYCUSTOM") != std::string::npos; }));
}

TEST_F(ServiceTest, NestedPoolIsInTheParentsVcpuNumbers) {
  ASSERT_EQ(cli({"batch", "on", "cpu0-3", "vcpus", "2"}).exit_code, 0);
  // batch vcpu 0 = cpus 0-1, vcpu 1 = cpus 2-3.
  auto r = cli({"create", "batch/jobA", "on", "cpu1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto s = client()->get("batch/jobA");
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s->effective_cpus(), "2-3");
  EXPECT_EQ(s->parent(), "batch");
  EXPECT_EQ(s->depth(), 2);
  auto tree = cli({"tree"});
  ASSERT_EQ(tree.exit_code, 0) << tree.err;
  EXPECT_THAT(tree.out, HasSubstr("jobA"));
}

TEST_F(ServiceTest, EightVcpusOnFourCpusWrapAround) {
  ASSERT_EQ(cli({"wide", "on", "cpu*", "vcpus", "8"}).exit_code, 0);
  auto s = client()->get("wide");
  ASSERT_TRUE(s.is_ok());
  ASSERT_EQ(s->vcpu_size(), 8);
  EXPECT_EQ(s->vcpu(5).cpus(), "1");
  ASSERT_EQ(cli({"wide/top", "on", "cpu4-7"}).exit_code, 0);
  EXPECT_EQ(client()->get("wide/top")->effective_cpus(), "0-3");
}

TEST_F(ServiceTest, ShowAndListSpeakJson) {
  auto r = cli({"list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"NORM\""));
  EXPECT_THAT(r.out, HasSubstr("\"schedulers\""));
  r = cli({"show", "NORM", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"effectiveCpus\""));
}

// ---- every error path of the CLI -------------------------------------------------

TEST_F(ServiceTest, DuplicateNameIsAnErrorThatChangesNothing) {
  auto r = cli({"NORM", "on", "cpu0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("NORM"));
  EXPECT_THAT(r.err, HasSubstr("exists"));
  EXPECT_EQ(client()->get("NORM")->effective_cpus(), "0-3");
}

TEST_F(ServiceTest, PoolOutsideTheParentIsRefusedNamingTheCpu) {
  auto r = cli({"far", "on", "cpu9"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("cpu9"));
  EXPECT_FALSE(client()->get("far").is_ok());
}

TEST_F(ServiceTest, PathTraversalInANameIsRefusedBeforeAnythingIsMade) {
  auto c = client();
  v1::SchedulerSpec spec;
  spec.set_name("NORM/../../etc");
  spec.set_pool("cpu*");
  auto r = c->create(spec);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(".."));
  auto cl = cli({"create", "a/../b", "on", "cpu*"});
  EXPECT_NE(cl.exit_code, 0);
  EXPECT_THAT(cl.err, HasSubstr(".."));
  EXPECT_THAT(read_file(fake_log_), Not(HasSubstr("etc")));
}

TEST_F(ServiceTest, UnknownSchedulerIsNotFound) {
  auto r = cli({"show", "NOPE"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("NOPE"));
  r = cli({"destroy", "NOPE"});
  EXPECT_EQ(r.exit_code, 1);
  r = cli({"bind", "NOPE", "--pid", std::to_string(getpid())});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("NOPE"));
}

TEST_F(ServiceTest, DestroyWithChildrenNeedsForceAndForceMovesMembers) {
  ASSERT_EQ(cli({"batch", "on", "cpu0-1"}).exit_code, 0);
  ASSERT_EQ(cli({"batch/jobA", "on", "cpu0"}).exit_code, 0);
  Child sleeper;
  ASSERT_EQ(cli({"bind", "batch/jobA", "--pid", std::to_string(sleeper.pid())}).exit_code, 0);
  auto r = cli({"destroy", "batch"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("force"));
  EXPECT_TRUE(client()->get("batch/jobA").is_ok());

  r = cli({"destroy", "batch/jobA", "--force"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto batch = client()->get("batch");
  ASSERT_TRUE(batch.is_ok());
  ASSERT_EQ(batch->members_size(), 1);
  EXPECT_EQ(batch->members(0).pid(), sleeper.pid());
  r = cli({"destroy", "batch", "--force"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(client()->get("batch").is_ok());
}

TEST_F(ServiceTest, BindRefusesMissingProcessesInitAndTheDaemon) {
  auto r = cli({"bind", "NORM", "--pid", "999999999"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("999999999"));
  r = cli({"bind", "NORM", "--pid", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("init"));
  r = cli({"bind", "NORM", "--pid", std::to_string(daemon_->pid())});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("uschedd"));
  r = cli({"bind", "NORM", "--pid", "-5"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(client()->get("NORM")->members_size(), 0);
}

TEST_F(ServiceTest, UnbindOfAnUnboundPidIsNotFound) {
  Child sleeper;
  auto r = cli({"unbind", "--pid", std::to_string(sleeper.pid())});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("not bound"));
}

TEST_F(ServiceTest, UsageErrorsExitTwoWithoutTouchingTheDaemon) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"bind", "NORM"},                       // no --pid
           {"frobnicate"},                         // neither a command nor a line
           {"run", "NORM"},                        // no command to run
           {"x", "on", "cpu1", "lwktpri", "40"},   // priority out of range
           {"x", "on", "cpu1", "lokced"}}) {       // typo
    auto r = cli(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("usched:")) << args[0];
  }
  EXPECT_EQ(client()->list()->schedulers_size(), 3);
}

TEST(ServiceNoDaemon, UnreachableDaemonIsExitOneWithTheSocketNamed) {
  TempDir d;
  auto r = run({USCHED_CLI_PATH, "--socket", d / "none.sock", "list"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("none.sock"));
  // $USCHED_SOCKET is the fallback when --socket is absent.
  r = run({USCHED_CLI_PATH, "list"}, {.env = {{"USCHED_SOCKET", d / "env.sock"}}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("env.sock"));
}

TEST_F(ServiceTest, NonRootMayReadButNotChange) {
  USCHED_SKIP_OR_FAIL_IF(getuid() == 0 ? "" : "needs root to run a command as another user");
  const int nobody = 65534;
  ::chmod(daemon_->dir().path().c_str(), 0755);
  auto r = cli({"list"}, {.as_uid = nobody});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = cli({"mine", "on", "cpu0"}, {.as_uid = nobody});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("root"));
  EXPECT_FALSE(client()->get("mine").is_ok());
}

// Root rebinding a member it bound before reads nothing in /proc (the
// pidfd pins the task, root needs no uid): the member's uid is read again
// shortly after the answer (within Engine::kRefreshDelay, 20 ms). A member
// that changed its uid in between shows the new one, and is judged by it:
// its new owner may unbind it.
TEST_F(ServiceTest, AMemberThatChangedItsUidIsRecordedWithTheNewOneAfterRootRebindsIt) {
  USCHED_SKIP_OR_FAIL_IF(getuid() == 0 ? "" : "needs root to change a process's uid");
  const int nobody = 65534;
  ::chmod(daemon_->dir().path().c_str(), 0755);
  int go[2];
  ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
  Child member({}, {.fn = [&] {
                  ::close(go[1]);
                  char b;
                  if (::read(go[0], &b, 1) != 1 || ::setresuid(nobody, nobody, nobody) != 0) ::_exit(1);
                }});
  ::close(go[0]);
  const std::string pid = std::to_string(member.pid());
  ASSERT_EQ(cli({"S", "on", "cpu1"}).exit_code, 0);
  ASSERT_EQ(cli({"chown", "S", "nobody"}).exit_code, 0);
  ASSERT_EQ(cli({"bind", "NORM", "--pid", pid}).exit_code, 0);
  auto member_uid = [&] {
    auto l = client()->list();
    for (const auto& sc : l->schedulers())
      for (const auto& m : sc.members())
        if (m.pid() == member.pid()) return static_cast<int64_t>(m.uid());
    return int64_t{-1};
  };
  EXPECT_EQ(member_uid(), 0);
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  ::close(go[1]);
  ASSERT_TRUE(eventually([&] { return read_file("/proc/" + pid + "/status").find("Uid:\t65534") != std::string::npos; }));

  auto r = cli({"bind", "S", "--pid", pid});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(eventually([&] { return member_uid() == nobody; })) << "uid " << member_uid();
  r = cli({"unbind", "--pid", pid}, {.as_uid = nobody});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(member_uid(), -1);
}

// ---- the glue failing ---------------------------------------------------------------

TEST(ServiceGlueFailure, AFailedGroupWriteLeavesNoSchedulerBehind) {
  TempDir d;
  Daemon daemon(fake_args({"--fake-fail", "apply_group:FAILME=28", "--fake-log", d / "fake.log"}));
  ASSERT_TRUE(daemon.start()) << daemon.log();
  auto r = daemon.cli({"FAILME", "on", "cpu0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("FAILME"));
  auto l = daemon.cli({"list"});
  EXPECT_THAT(l.out, Not(HasSubstr("FAILME")));
  EXPECT_EQ(daemon.cli({"OTHER", "on", "cpu0"}).exit_code, 0);
}

TEST(ServiceGlueFailure, AFailedPlacementLeavesTheTaskUnbound) {
  TempDir d;
  Daemon daemon(fake_args({"--fake-fail", "place=1"}));
  ASSERT_TRUE(daemon.start()) << daemon.log();
  Child sleeper;
  auto r = daemon.cli({"bind", "NORM", "--pid", std::to_string(sleeper.pid())});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("Operation not permitted"));
  auto s = daemon.cli({"show", "NORM", "--json"});
  EXPECT_THAT(s.out, Not(HasSubstr(std::to_string(sleeper.pid()))));
}

// ---- exclusive and isolated (cpuset partitions) ---------------------------------------

TEST_F(ServiceTest, IsolatedIsAnExclusiveSchedulerAskingForAnIsolatedPartition) {
  auto r = cli({"REAL2", "on", "cpu3", "exclusive", "isolated"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("exclusive, isolated, partition isolated"));
  auto s = client()->get("REAL2");
  ASSERT_TRUE(s.is_ok());
  EXPECT_TRUE(s->spec().exclusive());
  EXPECT_TRUE(s->spec().isolated());
  EXPECT_EQ(s->partition(), "isolated");  // the fake glue agrees with every request
  EXPECT_THAT(read_file(fake_log_), HasSubstr("apply_group REAL2 cpus=3 weight=100 idle=0 partition=isolated"));
  auto show = cli({"show", "REAL2"});
  EXPECT_THAT(show.out, HasSubstr("mode:           unlocked,exclusive,isolated\n"));
  EXPECT_THAT(show.out, HasSubstr("partition:      isolated\n"));
  EXPECT_THAT(cli({"tree"}).out, HasSubstr("unlocked,exclusive,isolated  members 0  partition isolated"));
  EXPECT_THAT(cli({"show", "REAL2", "--json"}).out, HasSubstr("\"isolated\": true"));
  // A scheduler that asked for nothing shows no partition line.
  EXPECT_THAT(cli({"show", "NORM"}).out, Not(HasSubstr("partition:")));

  // "exclusive" alone ends the isolation (a partition the kernel balances),
  // "shared" the partition.
  ASSERT_EQ(cli({"update", "REAL2", "exclusive"}).exit_code, 0);
  s = client()->get("REAL2");
  EXPECT_FALSE(s->spec().isolated());
  EXPECT_EQ(s->partition(), "root");
  ASSERT_EQ(cli({"update", "REAL2", "isolated"}).exit_code, 0);
  EXPECT_TRUE(client()->get("REAL2")->spec().exclusive());
  ASSERT_EQ(cli({"update", "REAL2", "shared"}).exit_code, 0);
  s = client()->get("REAL2");
  EXPECT_FALSE(s->spec().exclusive());
  EXPECT_FALSE(s->spec().isolated());
  EXPECT_EQ(s->partition(), "member");

  r = cli({"X", "on", "cpu2", "shared", "isolated"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("'isolated'"));
}

TEST_F(ServiceTest, IsolatedSurvivesARestart) {
  ASSERT_EQ(cli({"RT", "on", "cpu3", "isolated"}).exit_code, 0);
  EXPECT_EQ(daemon_->stop(SIGKILL), -SIGKILL);
  ASSERT_TRUE(daemon_->start()) << daemon_->log();
  auto s = client()->get("RT");
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  EXPECT_TRUE(s->spec().exclusive());
  EXPECT_TRUE(s->spec().isolated());
  EXPECT_EQ(s->partition(), "isolated");
}

TEST(ServiceGlueFailure, AnIsolatedPartitionTheGlueRefusesLeavesNothingBehind) {
  TempDir d;
  Daemon daemon(fake_args({"--fake-fail", "apply_group:partition=isolated=22", "--fake-log", d / "fake.log"}));
  ASSERT_TRUE(daemon.start()) << daemon.log();
  auto r = daemon.cli({"RT", "on", "cpu3", "exclusive", "isolated"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("RT"));
  EXPECT_THAT(daemon.cli({"list"}).out, Not(HasSubstr("RT ")));
  // An update is undone as well.
  ASSERT_EQ(daemon.cli({"update", "REAL", "on", "cpu3", "exclusive"}).exit_code, 0);
  r = daemon.cli({"update", "REAL", "isolated"});
  EXPECT_EQ(r.exit_code, 1);
  auto show = daemon.cli({"show", "REAL"});
  EXPECT_THAT(show.out, HasSubstr("mode:           unlocked,exclusive\n"));
  EXPECT_THAT(show.out, HasSubstr("partition:      root\n"));
}

// ---- members -------------------------------------------------------------------------

TEST_F(ServiceTest, BoundProcessIsListedAndLeavesWhenItExits) {
  Child sleeper;
  auto r = cli({"bind", "NORM", "--pid", std::to_string(sleeper.pid())});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto c = client();
  auto s = c->get("NORM");
  ASSERT_EQ(s->members_size(), 1);
  EXPECT_EQ(s->members(0).pid(), sleeper.pid());
  EXPECT_THAT(cli({"show", "NORM"}).out, HasSubstr(std::to_string(sleeper.pid())));
  sleeper.kill();
  EXPECT_TRUE(eventually([&] { return c->get("NORM")->members_size() == 0; }, 1s));
}

TEST_F(ServiceTest, LockedSchedulerSpreadsMembersOverItsVcpus) {
  ASSERT_EQ(cli({"L", "on", "cpu0-1", "locked"}).exit_code, 0);
  Child a, b, c3;
  auto c = client();
  auto ra = c->bind("L", a.pid());
  auto rb = c->bind("L", b.pid());
  ASSERT_TRUE(ra.is_ok() && rb.is_ok());
  EXPECT_EQ(ra->member().vcpu(), 0);
  EXPECT_EQ(ra->member().cpus(), "0");
  EXPECT_EQ(rb->member().vcpu(), 1);
  EXPECT_EQ(rb->member().cpus(), "1");
  auto rc = c->bind("L", c3.pid(), 0, 1);  // asks for vcpu 1
  ASSERT_TRUE(rc.is_ok());
  EXPECT_EQ(rc->member().vcpu(), 1);
  auto bad = c->bind("L", c3.pid(), 0, 7);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

TEST_F(ServiceTest, RunBindsItselfThenExecs) {
  auto r = cli({"run", "NORM", "--", "sh", "-c", "echo placed"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "placed\n");
  EXPECT_THAT(read_file(fake_log_), HasSubstr("place pid="));
  r = cli({"run", "NORM", "--", "/nonexistent/program"});
  EXPECT_EQ(r.exit_code, 127);
  r = cli({"run", "NOPE", "--", "true"});
  EXPECT_EQ(r.exit_code, 1);
}

TEST_F(ServiceTest, RforkChildIsAMemberBeforeItRuns) {
  auto c = client();
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  auto pid = rfork(*c, "NORM");
  ASSERT_TRUE(pid.is_ok()) << pid.status().message();
  if (*pid == 0) {
    ::close(go[1]);
    char b;
    (void)!::read(go[0], &b, 1);
    ::_exit(0);
  }
  ::close(go[0]);
  auto s = c->get("NORM");
  ASSERT_EQ(s->members_size(), 1);
  EXPECT_EQ(s->members(0).pid(), *pid);
  ::close(go[1]);
  ::waitpid(*pid, nullptr, 0);

  auto bad = rfork(*c, "NOPE");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), Code::kNotFound);
  EXPECT_NE(bad.status().message().find("'NOPE'"), std::string::npos) << bad.status().message();
  // Longer than any valid name (the request no longer fits rfork's stack
  // buffer): refused by uschedd, naming the rule.
  auto long_name = rfork(*c, std::string(300, 'x'));
  ASSERT_FALSE(long_name.is_ok());
  EXPECT_EQ(long_name.status().code(), Code::kInvalidArgument);
  EXPECT_NE(long_name.status().message().find("63"), std::string::npos) << long_name.status().message();
  // A socket path no AF_UNIX address can hold: a clear error.
  auto long_path = rfork(std::string(120, 's'), "NORM", {}, std::chrono::seconds(1));
  ASSERT_FALSE(long_path.is_ok());
  EXPECT_EQ(long_path.status().code(), Code::kUnavailable);
  EXPECT_NE(long_path.status().message().find("File name too long"), std::string::npos)
      << long_path.status().message();
  EXPECT_EQ(c->get("NORM")->members_size(), 0);
}

TEST_F(ServiceTest, UpdateResizesAndReportsNewCpus) {
  ASSERT_EQ(cli({"R", "on", "cpu0"}).exit_code, 0);
  auto r = cli({"update", "R", "on", "cpu2-3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(client()->get("R")->effective_cpus(), "2-3");
  r = cli({"update", "R", "lwktpri", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(client()->get("R")->effective_class(), v1::SCHED_CLASS_REALTIME);
  ASSERT_EQ(cli({"R/c", "on", "cpu1"}).exit_code, 0);
  r = cli({"update", "R", "vcpus", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("R/c"));
  EXPECT_EQ(client()->get("R")->vcpu_size(), 2);
}

TEST_F(ServiceTest, WatchPrintsEventsAsTheyHappen) {
  auto c = client();
  std::mutex mu;
  std::vector<v1::Event> seen;
  std::atomic<size_t> count{0};
  std::thread watcher([&] {
    auto w = Client::connect(daemon_->socket(), 5s);
    ASSERT_TRUE(w.is_ok());
    (void)(*w)->watch([&](const v1::Event& e) {
      std::lock_guard<std::mutex> l(mu);
      seen.push_back(e);
      return ++count < 2;
    });
  });
  // The stream is open once the daemon has a subscriber; creating until the
  // watcher has seen both events avoids sleeping as synchronisation.
  ASSERT_TRUE(eventually([&] {
    v1::SchedulerSpec s;
    s.set_name("W" + random_suffix());
    s.set_pool("cpu0");
    (void)c->create(s);
    return count >= 2;
  }));
  watcher.join();
  EXPECT_EQ(seen[0].kind(), v1::Event::SCHEDULER_CREATED);

  auto r = run({"sh", "-c", std::string(USCHED_CLI_PATH) + " --socket " + daemon_->socket() +
                                " watch --count 1 & sleep 0.5; " + USCHED_CLI_PATH + " --socket " +
                                daemon_->socket() + " X1 on cpu0; wait"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("X1"));
}


TEST_F(ServiceTest, CApiBindsAndRforksThroughUschedSocket) {
  ::setenv("USCHED_SOCKET", daemon_->socket().c_str(), 1);
  pid_t pid = usched_rfork("NORM", -1);
  if (pid == 0) ::_exit(0);
  ASSERT_GT(pid, 0) << usched_last_error();
  ::waitpid(pid, nullptr, 0);
  EXPECT_EQ(usched_rfork("NOPE", -1), -1);
  EXPECT_THAT(usched_last_error(), HasSubstr("NOPE"));
  // bind_thread binds this test thread; the fake glue touches nothing.
  EXPECT_EQ(usched_bind_thread("NORM", -1), 0) << usched_last_error();
  auto s = client()->get("NORM");
  bool found = false;
  for (const auto& m : s->members()) found |= m.pid() == getpid() && m.tid() == gettid();
  EXPECT_TRUE(found);
  ::unsetenv("USCHED_SOCKET");
}

// ---- stopping and starting -----------------------------------------------------------

TEST(ServiceRestart, MembersAndSchedulersSurviveARestart) {
  TempDir state;
  Child sleeper;
  {
    Daemon d(fake_args(), state.path());
    ASSERT_TRUE(d.start()) << d.log();
    ASSERT_EQ(d.cli({"keep", "on", "cpu1"}).exit_code, 0);
    ASSERT_EQ(d.cli({"bind", "keep", "--pid", std::to_string(sleeper.pid())}).exit_code, 0);
    EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
  }
  Daemon d(fake_args(), state.path());
  ASSERT_TRUE(d.start()) << d.log();
  auto r = d.cli({"show", "keep", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(std::to_string(sleeper.pid())));
}

TEST(ServiceRestart, CorruptStateIsRefusedAndKeptAside) {
  TempDir state;
  {
    std::ofstream(state / "state.json") << "{ this is not json";
  }
  Daemon d(fake_args(), state.path());
  EXPECT_FALSE(d.start());
  EXPECT_THAT(d.log(), HasSubstr("state.json"));
  bool kept = false;
  for (auto& e : std::filesystem::directory_iterator(state.path())) {
    if (e.path().filename().string().rfind("state.json.corrupt", 0) == 0) kept = true;
  }
  EXPECT_TRUE(kept);
}

// Members are kept in members.json plus members.log (appended per Bind
// and Unbind; an exited member is dropped at start-up), neither fsynced: tasks die with the machine. After a
// SIGKILL the log is replayed; after a reboot the members are ignored, torn
// or not; within the same boot a torn file is refused like a torn
// state.json, except a last log line cut short (its RPC never answered).
class ServiceMembersFile : public ::testing::Test {
 protected:
  void SetUp() override {
    Daemon d(fake_args(), state_.path());
    ASSERT_TRUE(d.start()) << d.log();
    ASSERT_EQ(d.cli({"keep", "on", "cpu1"}).exit_code, 0);
    ASSERT_EQ(d.cli({"bind", "keep", "--pid", std::to_string(kept_.pid())}).exit_code, 0);
    ASSERT_EQ(d.cli({"bind", "keep", "--pid", std::to_string(left_.pid())}).exit_code, 0);
    ASSERT_EQ(d.cli({"unbind", "--pid", std::to_string(left_.pid())}).exit_code, 0);
    ASSERT_EQ(d.stop(SIGKILL), -SIGKILL) << d.log();
    members_ = read_file(state_ / "members.json");
    boot_ = read_file("/proc/sys/kernel/random/boot_id");
    boot_.erase(boot_.find_last_not_of("\n") + 1);
    ASSERT_THAT(members_, HasSubstr(boot_));
    ASSERT_THAT(read_file(state_ / "members.log"), HasSubstr(std::to_string(kept_.pid())));
  }
  // Rewrites a file, replacing the running boot's id by another.
  void from_another_boot(const std::string& file) {
    std::string text = read_file(state_ / file);
    text.replace(text.find(boot_), boot_.size(), "00000000-0000-0000-0000-000000000000");
    std::ofstream(state_ / file) << text;
  }
  bool kept_aside(const std::string& file) {
    for (auto& e : std::filesystem::directory_iterator(state_.path())) {
      if (e.path().filename().string().rfind(file + ".corrupt", 0) == 0) return true;
    }
    return false;
  }
  // The pids `keep` holds after a restart, as `usched show --json` says.
  std::string shown(Daemon& d) {
    auto r = d.cli({"show", "keep", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  TempDir state_;
  Child kept_, left_;
  std::string members_, boot_;
};

TEST_F(ServiceMembersFile, TheLogIsReplayedAfterASigkill) {
  Daemon d(fake_args(), state_.path());
  ASSERT_TRUE(d.start()) << d.log();
  const std::string out = shown(d);
  EXPECT_THAT(out, HasSubstr(std::to_string(kept_.pid())));
  EXPECT_THAT(out, ::testing::Not(HasSubstr(std::to_string(left_.pid()))));
}

// An exit writes no line: the start-up after a SIGKILL finds the member's
// pid gone and drops it, saying so.
TEST_F(ServiceMembersFile, AMemberThatExitedIsDroppedAfterASigkill) {
  Child brief;
  const std::string pid = std::to_string(brief.pid());
  {
    Daemon d(fake_args(), state_.path());
    ASSERT_TRUE(d.start()) << d.log();
    ASSERT_EQ(d.cli({"bind", "keep", "--pid", pid}).exit_code, 0);
    ASSERT_THAT(shown(d), HasSubstr(pid));
    brief.kill();
    ASSERT_TRUE(eventually([&] { return shown(d).find(pid) == std::string::npos; })) << d.log();
    ASSERT_EQ(d.stop(SIGKILL), -SIGKILL) << d.log();
  }
  Daemon d(fake_args(), state_.path());
  ASSERT_TRUE(d.start()) << d.log();
  const std::string out = shown(d);
  EXPECT_THAT(out, HasSubstr(std::to_string(kept_.pid())));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("\"pid\": " + pid)));
  EXPECT_THAT(d.log(), HasSubstr("pid " + pid + " of keep is gone"));
}

// uschedd hears of exits in batches (a pause after each): every exit of a
// burst still reaches the tree, killed members not yet reaped (zombies)
// included, and so does a lone exit after the burst.
// A daemon on the fake glue with a scheduler "burst" and a client of it.
class ServiceExits : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(d.start()) << d.log();
    ASSERT_EQ(d.cli({"burst", "on", "cpu1"}).exit_code, 0);
    auto r = Client::connect(d.socket());
    ASSERT_TRUE(r) << r.status().message();
    c = std::move(*r);
  }
  Daemon d{fake_args()};
  std::unique_ptr<Client> c;
};

TEST_F(ServiceExits, EveryExitOfABurstAfterAnotherAndALoneOneRemoveTheirMembers) {
  auto shown = [&] {
    auto r = d.cli({"show", "burst", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  auto in = [](const std::string& out, pid_t pid) {
    return out.find("\"pid\": " + std::to_string(pid)) != std::string::npos;
  };
  auto listed = [&](pid_t pid) { return in(shown(), pid); };
  std::vector<std::unique_ptr<Child>> kids;
  for (int i = 0; i < 40; ++i) {
    kids.push_back(std::make_unique<Child>());
    auto b = c->bind("burst", kids.back()->pid());
    ASSERT_TRUE(b) << b.status().message();
  }
  ASSERT_TRUE(listed(kids.front()->pid()));
  ASSERT_TRUE(listed(kids.back()->pid()));
  // One exit, seen; the rest at once after it, inside the exit watch's
  // pause: reported when the pause ends, not at some later exit.
  auto member = [&](pid_t pid) {
    auto s = c->get("burst");
    if (!s) return true;
    for (const auto& m : s->members())
      if (m.pid() == pid) return true;
    return false;
  };
  ::kill(kids.front()->pid(), SIGKILL);  // not reaped yet
  ASSERT_TRUE(eventually([&] { return !member(kids.front()->pid()); }));
  for (auto& k : kids) ::kill(k->pid(), SIGKILL);
  EXPECT_TRUE(eventually([&] {
    const std::string out = shown();
    for (auto& k : kids)
      if (in(out, k->pid())) return false;
    return true;
  })) << shown();
  kids.clear();

  Child lone;
  ASSERT_TRUE(c->bind("burst", lone.pid()));
  const pid_t lone_pid = lone.pid();  // kill() reaps it and forgets the pid
  ASSERT_TRUE(listed(lone_pid));
  lone.kill();
  EXPECT_TRUE(eventually([&] { return !listed(lone_pid); }));
  const std::string log = d.log();
  size_t removed = 0;
  for (size_t at = log.find("exited; removed from burst"); at != std::string::npos;
       at = log.find("exited; removed from burst", at + 1))
    ++removed;
  EXPECT_EQ(removed, 41u) << log;
}

// How often a thread has gone to sleep (it sleeps again after each wake).
static long sleeps_of(pid_t pid, pid_t tid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("voluntary_ctxt_switches:", 0) == 0) return std::atol(line.c_str() + 24);
  return -1;
}

// A stream of exits, each 2 ms after the last, wakes uschedd's event loop
// about once per 20 ms pause, not once per exit (each such wake competes
// for a CPU with whoever waits for that exit: rfork's caller).
TEST_F(ServiceExits, AStreamOfExitsWakesTheEventLoopOncePerPauseNotPerExit) {
  constexpr int kExits = 40;
  std::vector<std::unique_ptr<Child>> kids;
  for (int i = 0; i < kExits; ++i) {
    kids.push_back(std::make_unique<Child>());
    ASSERT_TRUE(c->bind("burst", kids.back()->pid()));
  }
  auto members = [&] {
    auto s = c->get("burst");
    return s ? s->members_size() : -1;
  };
  ASSERT_EQ(members(), kExits);
  ::usleep(100 * 1000);  // the binds' own work done, any pause over

  // uschedd's event loop is its main thread.
  const long before = sleeps_of(d.pid(), d.pid());
  ASSERT_GE(before, 0);
  const auto start = std::chrono::steady_clock::now();
  for (auto& k : kids) {
    ::kill(k->pid(), SIGKILL);
    ::usleep(2000);
  }
  ::usleep(60 * 1000);  // the last pause ends and reports
  const long wakes = sleeps_of(d.pid(), d.pid()) - before;
  const long ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(eventually([&] { return members() == 0; })) << members() << " members left";
  // Per pause at most two wakes (its timer, and exits that came during
  // it), plus the first exit's and the second-by-second sweep's. Before
  // the pause took the set out of the event loop it was one per exit.
  const long most = 2 * (ms / 20 + 1) + 4;
  RecordProperty("wakes", std::to_string(wakes) + " over " + std::to_string(ms) + " ms");
  EXPECT_LE(wakes, most) << kExits << " exits over " << ms << " ms";
}

TEST_F(ServiceMembersFile, ALastLineCutShortIsDropped) {
  std::ofstream(state_ / "members.log", std::ios::app) << R"({"bind":{"scheduler":"keep","pid":)"
                                                       << left_.pid();
  Daemon d(fake_args(), state_.path());
  ASSERT_TRUE(d.start()) << d.log();
  const std::string out = shown(d);
  EXPECT_THAT(out, HasSubstr(std::to_string(kept_.pid())));
  EXPECT_THAT(out, ::testing::Not(HasSubstr(std::to_string(left_.pid()))));
}

TEST_F(ServiceMembersFile, ABadLineInTheLogIsRefusedAndKeptAside) {
  std::string log = read_file(state_ / "members.log");
  std::ofstream(state_ / "members.log") << "{ not a member\n" << log;
  Daemon d(fake_args(), state_.path());
  EXPECT_FALSE(d.start());
  EXPECT_THAT(d.log(), HasSubstr("members.log line 1 is not a member record"));
  EXPECT_TRUE(kept_aside("members.log"));
}

TEST_F(ServiceMembersFile, MembersOfAnEarlierBootAreNotAdopted) {
  from_another_boot("members.json");
  Daemon d(fake_args(), state_.path());
  ASSERT_TRUE(d.start()) << d.log();
  EXPECT_THAT(shown(d), ::testing::Not(HasSubstr(std::to_string(kept_.pid()))));
}

TEST_F(ServiceMembersFile, ATornFileFromAnEarlierBootIsIgnored) {
  from_another_boot("state.json");  // the tree was last written before a reboot
  std::ofstream(state_ / "members.json") << members_.substr(0, members_.size() / 2);
  Daemon d(fake_args(), state_.path());
  ASSERT_TRUE(d.start()) << d.log();
  EXPECT_THAT(shown(d), ::testing::Not(HasSubstr(std::to_string(kept_.pid()))));  // the tree is intact
}

TEST_F(ServiceMembersFile, ATornFileOfThisBootIsRefusedAndKeptAside) {
  std::ofstream(state_ / "members.json") << members_.substr(0, members_.size() / 2);
  Daemon d(fake_args(), state_.path());
  EXPECT_FALSE(d.start());
  EXPECT_THAT(d.log(), HasSubstr("members.json is unreadable"));
  EXPECT_TRUE(kept_aside("members.json"));
  EXPECT_TRUE(std::filesystem::exists(state_ / "state.json"));
}

TEST(ServiceRestart, CleanupOnExitReturnsMembersAndTearsDown) {
  TempDir d;
  Child sleeper;
  Daemon daemon(fake_args({"--cleanup-on-exit", "--fake-log", d / "fake.log"}));
  ASSERT_TRUE(daemon.start()) << daemon.log();
  ASSERT_EQ(daemon.cli({"bind", "NORM", "--pid", std::to_string(sleeper.pid())}).exit_code, 0);
  EXPECT_EQ(daemon.stop(SIGTERM), 0);
  const std::string log = read_file(d / "fake.log");
  EXPECT_THAT(log, HasSubstr("restore pid=" + std::to_string(sleeper.pid())));
  EXPECT_THAT(log, HasSubstr("teardown"));
}

TEST(ServiceStart, SecondDaemonOnTheSameSocketRefusesToStart) {
  Daemon first(fake_args());
  ASSERT_TRUE(first.start()) << first.log();
  auto r = run({USCHEDD_PATH, "--socket", first.socket(), "--state-dir", first.dir() / "s2", "--glue", "fake"},
               {.timeout = 10s});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("already"));
  EXPECT_EQ(first.cli({"list"}).exit_code, 0);
}

}  // namespace
}  // namespace usched::test
