// Tier 2, gangs: the gang commands as a user types them, against a real
// uschedd with the fake glue (which logs freezes instead of making them).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "support/harness.h"
#include "usched/client.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class GangService : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<Daemon>(
        std::vector<std::string>{"--glue", "fake", "--fake-cpus", "0-1", "--fake-log", log_, "--no-config"});
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "uschedd log:\n" << daemon_->log() << "\nfake log:\n" << read_file(log_);
  }
  CmdResult cli(std::vector<std::string> args) { return daemon_->cli(args, {.timeout = 10s}); }
  std::unique_ptr<Client> client() {
    auto c = Client::connect(daemon_->socket(), 5s);
    EXPECT_TRUE(c.is_ok()) << c.status().message();
    return c ? std::move(*c) : nullptr;
  }
  size_t count(const std::string& needle) {
    const std::string text = read_file(log_);
    size_t n = 0;
    for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
    return n;
  }
  TempDir dir_;
  std::string log_ = dir_ / "fake.log";
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(GangService, WidthBeyondTheSchedulersVcpusIsAClearError) {
  auto r = cli({"gang", "create", "NORM/g", "--width", "3"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("asks for 3 vcpus but scheduler NORM has 2"));
  EXPECT_THAT(cli({"gang", "list"}).out, Not(HasSubstr("NORM/g")));
}

TEST_F(GangService, AGangNeedsSchedSlashGangAndAnExistingScheduler) {
  auto r = cli({"gang", "create", "NORM"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("SCHED/GANG"));
  r = cli({"gang", "create", "NOPE/g"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("no scheduler named 'NOPE'"));
  r = cli({"gang", "add", "NORM/missing", "--pid", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("no gang NORM/missing"));
}

TEST_F(GangService, CreateListDestroyAndDuplicates) {
  auto r = cli({"gang", "create", "NORM/vm1", "--quantum", "5", "--policy", "bsd4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("width 2"));
  EXPECT_THAT(r.out, HasSubstr("policy bsd4"));
  r = cli({"gang", "create", "NORM/vm1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("already exists"));
  r = cli({"gang", "create", "NORM/vm2", "--policy", "rr"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("policy bsd4"));
  r = cli({"gang", "list"});
  EXPECT_THAT(r.out, HasSubstr("NORM/vm1"));
  EXPECT_THAT(r.out, HasSubstr("empty"));
  ASSERT_EQ(cli({"gang", "destroy", "NORM/vm1"}).exit_code, 0);
  EXPECT_THAT(cli({"gang", "list"}).out, Not(HasSubstr("NORM/vm1")));
  EXPECT_EQ(cli({"gang", "destroy", "NORM/vm1"}).exit_code, 1);
}

TEST_F(GangService, AGangAloneIsNeverFrozenTwoFullWidthGangsRotate) {
  Child a, b;
  ASSERT_EQ(cli({"gang", "create", "NORM/a", "--quantum", "5"}).exit_code, 0);
  ASSERT_EQ(cli({"gang", "create", "NORM/b", "--quantum", "5"}).exit_code, 0);
  auto r = cli({"gang", "add", "NORM/a", "--pid", std::to_string(a.pid())});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(read_file(log_), HasSubstr("join_gang NORM/a pid=" + std::to_string(a.pid())));
  // The member is bound to NORM too, and its thread pinned to one vcpu.
  EXPECT_THAT(cli({"show", "NORM"}).out, HasSubstr(std::to_string(a.pid())));
  EXPECT_THAT(read_file(log_), HasSubstr("place pid=" + std::to_string(a.pid()) + " tid=" +
                                         std::to_string(a.pid()) + " cpus=0 "));
  // Alone: one row, never frozen, however long it runs.
  auto c = client();
  auto l = c->list_gangs("NORM");
  ASSERT_TRUE(l.is_ok());
  ASSERT_EQ(l->schedulers_size(), 1);
  EXPECT_EQ(l->schedulers(0).rows(), 1);
  EXPECT_EQ(count("freeze_gang"), 0u);

  ASSERT_EQ(cli({"gang", "add", "NORM/b", "--pid", std::to_string(b.pid())}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return count("freeze_gang NORM/a") >= 3 && count("freeze_gang NORM/b") >= 3; }));
  l = c->list_gangs("NORM");
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ(l->schedulers(0).rows(), 2);
  for (const auto& g : l->gangs()) EXPECT_GT(g.stats().slots_run(), 0u) << g.spec().name();

  // b's member exits: b is empty, takes no slot, and a runs alone again, thawed.
  b.kill();
  ASSERT_TRUE(eventually([&] {
    auto x = c->list_gangs("NORM");
    return x.is_ok() && x->schedulers(0).rows() == 1 && !x->gangs(0).frozen() && !x->gangs(1).frozen();
  })) << cli({"gang", "list"}).out;
  const size_t freezes = count("freeze_gang NORM/a");
  // A quantum is 5 ms: 20 quanta later a is still not frozen again.
  auto l2 = c->list_gangs("NORM");
  ASSERT_TRUE(eventually([&] {
    auto x = c->list_gangs("NORM");
    return x.is_ok() && x->gangs(0).stats().running_us() > l2->gangs(0).stats().running_us() + 100000;
  }));
  EXPECT_EQ(count("freeze_gang NORM/a"), freezes);
}

TEST_F(GangService, RemoveTakesTheMemberOutOfTheFreezerAndStopThawsAll) {
  Child a;
  ASSERT_EQ(cli({"gang", "create", "NORM/a"}).exit_code, 0);
  ASSERT_EQ(cli({"gang", "add", "NORM/a", "--pid", std::to_string(a.pid())}).exit_code, 0);
  auto r = cli({"gang", "remove", "NORM/a", "--pid", std::to_string(a.pid())});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(read_file(log_), HasSubstr("leave_gang NORM/a pid=" + std::to_string(a.pid())));
  EXPECT_THAT(cli({"gang", "list"}).out, HasSubstr("empty"));
  EXPECT_EQ(cli({"gang", "remove", "NORM/a", "--pid", std::to_string(a.pid())}).exit_code, 1);
  EXPECT_EQ(daemon_->stop(SIGTERM), 0);
  EXPECT_THAT(read_file(log_), HasSubstr("thaw_all"));
}

TEST_F(GangService, JoinGangBindsTheCallingThread) {
  ASSERT_EQ(cli({"gang", "create", "NORM/vm"}).exit_code, 0);
  auto c = client();
  Status st;
  int tid = 0;
  std::thread t([&] {
    tid = static_cast<int>(::gettid());
    auto g = join_gang(*c, "NORM/vm");
    st = g.status();
  });
  t.join();
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_THAT(read_file(log_), HasSubstr("join_gang NORM/vm pid=" + std::to_string(::getpid()) +
                                         " tid=" + std::to_string(tid)));
  EXPECT_EQ(join_gang(*c, "NORM").status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace usched::test
