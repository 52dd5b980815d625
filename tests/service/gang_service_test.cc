// Tier 2, gangs: the gang commands as a user types them, against a real
// uschedd with the fake glue (which logs freezes instead of making them).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
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

TEST_F(GangService, AGangWhoseMembersAllDieAtOnceLeavesTheRotationSafely) {
  // Both members of `a` die together: the first exit's removal finds the
  // second dead too and empties the gang, which takes a row out of the
  // matrix. The rotation must start over from the new matrix, never index
  // the row that is gone (the daemon once died here), and `b` must run.
  for (int round = 0; round < 6; ++round) {
    const std::string a = "NORM/a" + std::to_string(round), b = "NORM/b" + std::to_string(round);
    ASSERT_EQ(cli({"gang", "create", a, "--quantum", "5"}).exit_code, 0);
    ASSERT_EQ(cli({"gang", "create", b, "--quantum", "5"}).exit_code, 0);
    auto a1 = std::make_unique<Child>(), a2 = std::make_unique<Child>();
    Child b1;
    for (pid_t p : {a1->pid(), a2->pid()}) ASSERT_EQ(cli({"gang", "add", a, "--pid", std::to_string(p)}).exit_code, 0);
    ASSERT_EQ(cli({"gang", "add", b, "--pid", std::to_string(b1.pid())}).exit_code, 0);
    std::this_thread::sleep_for(30ms);  // a few rotations
    ::kill(a1->pid(), SIGKILL);
    ::kill(a2->pid(), SIGKILL);
    std::this_thread::sleep_for(100ms);  // still unreaped: zombies, as the daemon sees them
    auto r = cli({"gang", "list", "--json"});
    ASSERT_EQ(r.exit_code, 0) << "round " << round << ": the daemon is gone\n" << daemon_->log();
    EXPECT_THAT(r.out, HasSubstr("\"rows\": 1")) << r.out;  // only b takes a row now
    a1.reset();
    a2.reset();
    ASSERT_EQ(cli({"gang", "destroy", a}).exit_code, 0);
    ASSERT_EQ(cli({"gang", "destroy", b}).exit_code, 0);
  }
}

// A glue whose freezes of gang b all fail (as a v2 freeze that the kernel
// does not confirm in time): b keeps running, so a must never be thawed
// beside it; a waits, frozen, and every quantum tries the switch again.
class GangServiceStuckFreeze : public GangService {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<Daemon>(std::vector<std::string>{
        "--glue", "fake", "--fake-cpus", "0-1", "--fake-log", log_, "--no-config", "--fake-fail", "freeze_gang:NORM/b=16"});
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }
};

TEST_F(GangServiceStuckFreeze, AGangThatWillNotFreezeIsNeverJoinedByAnother) {
  Child a, b;
  ASSERT_EQ(cli({"gang", "create", "NORM/a", "--quantum", "5"}).exit_code, 0);
  ASSERT_EQ(cli({"gang", "create", "NORM/b", "--quantum", "5"}).exit_code, 0);
  ASSERT_EQ(cli({"gang", "add", "NORM/a", "--pid", std::to_string(a.pid())}).exit_code, 0);
  ASSERT_EQ(cli({"gang", "add", "NORM/b", "--pid", std::to_string(b.pid())}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return count("freeze_gang NORM/b failed") >= 5; })) << read_file(log_);
  // Replay the fake's log: from b's first failed freeze on, b runs (a
  // failed freeze leaves a gang thawed), so a may not be thawed again.
  std::istringstream in(read_file(log_));
  bool b_stuck = false, a_frozen = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("freeze_gang NORM/b failed", 0) == 0) b_stuck = true;
    if (line.rfind("freeze_gang NORM/a", 0) == 0) a_frozen = true;
    if (line.rfind("thaw_gang NORM/a", 0) == 0) {
      EXPECT_FALSE(b_stuck) << "a thawed while b, which would not freeze, ran: " << line;
      a_frozen = false;
    }
  }
  EXPECT_TRUE(a_frozen) << "a runs beside b";
  auto l = client()->list_gangs("NORM");
  ASSERT_TRUE(l.is_ok());
  for (const auto& g : l->gangs()) EXPECT_EQ(g.frozen(), g.spec().name() == "a") << g.spec().name();
}

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

// Found by the engine fuzz target: a destroyed scheduler's gangs lingered
// until the next gang poll (20 ms), so `gang list` right after the destroy
// named a gang of a scheduler that is gone, and a scheduler made again
// under the same name within that time found the old one's gang.
TEST_F(GangService, DestroyingASchedulerTakesItsGangsAtOnce) {
  // Through the library: a CLI process per call takes longer than the poll.
  auto c = client();
  ASSERT_TRUE(c);
  auto gangs_of_job = [&] {
    auto l = c->list_gangs("");
    EXPECT_TRUE(l.is_ok()) << l.status().message();
    int n = 0;
    if (l) {
      for (const auto& g : l->gangs()) n += g.spec().scheduler() == "job";
    }
    return n;
  };
  v1::SchedulerSpec job;
  job.set_name("job");
  job.set_pool("cpu0-1");
  v1::GangSpec g;
  g.set_scheduler("job");
  g.set_name("g");
  g.set_quantum_ms(5);
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(c->create(job).is_ok());
    ASSERT_TRUE(c->create_gang(g).is_ok());
    auto d = c->destroy("job", false);
    ASSERT_TRUE(d.is_ok()) << d.status().message();
    EXPECT_EQ(gangs_of_job(), 0) << "round " << round << ": a gang of a scheduler that is gone";
    ASSERT_TRUE(c->create(job).is_ok());
    EXPECT_EQ(gangs_of_job(), 0) << "round " << round << ": the new job has the old one's gang";
    auto again = c->create_gang(g);
    EXPECT_TRUE(again.is_ok()) << "round " << round << ": " << again.status().message();
    ASSERT_TRUE(c->destroy("job", false).is_ok());
  }
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

// How often the daemon's main thread (the strand) slept and woke in `d`.
long strand_wakeups(pid_t daemon, std::chrono::milliseconds d) {
  auto read = [&] {
    std::ifstream f("/proc/" + std::to_string(daemon) + "/task/" + std::to_string(daemon) + "/status");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) return std::stol(line.substr(24));
    return -1L;
  };
  const long before = read();
  std::this_thread::sleep_for(d);
  const long after = read();
  EXPECT_GE(before, 0) << "no voluntary_ctxt_switches for pid " << daemon;
  return after - before;
}

TEST_F(GangService, TheGangPollRunsOnlyWhileSomeGangExists) {
  // The 20 ms gang poll (members' threads, co-run samples) is for gangs: an
  // idle daemon wakes for its 1 s sweep, not 50 times a second.
  std::this_thread::sleep_for(300ms);  // start-up settles
  EXPECT_LT(strand_wakeups(daemon_->pid(), 1s), 20) << "idle, no gang";
  ASSERT_EQ(cli({"gang", "create", "NORM/g"}).exit_code, 0);
  EXPECT_GE(strand_wakeups(daemon_->pid(), 1s), 30) << "a gang exists: polled every 20 ms";
  ASSERT_EQ(cli({"gang", "destroy", "NORM/g"}).exit_code, 0);
  std::this_thread::sleep_for(100ms);
  EXPECT_LT(strand_wakeups(daemon_->pid(), 1s), 20) << "the last gang is gone";
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

// A failed state write (the temporary file cannot be opened: a directory
// sits at its path) makes every gang RPC fail naming the path, with the
// gangs, the members and the freezer groups as they were.
TEST_F(GangService, WhenTheStateCannotBeWrittenGangRpcsFailWithNothingChanged) {
  Child a, b;
  ASSERT_EQ(cli({"gang", "create", "NORM/g"}).exit_code, 0);
  ASSERT_EQ(cli({"gang", "add", "NORM/g", "--pid", std::to_string(a.pid())}).exit_code, 0);
  const std::string blocker = daemon_->state_dir() + "/state.json.tmp";
  ASSERT_TRUE(std::filesystem::create_directory(blocker));

  auto r = cli({"gang", "create", "NORM/h"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(blocker));
  r = cli({"gang", "add", "NORM/g", "--pid", std::to_string(b.pid())});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(blocker));
  // b joined the freezer group only to leave it again, and is not left
  // bound to NORM either (it was bound for the gang).
  EXPECT_THAT(read_file(log_), HasSubstr("leave_gang NORM/g pid=" + std::to_string(b.pid())));
  r = cli({"gang", "remove", "NORM/g", "--pid", std::to_string(a.pid())});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(blocker));
  EXPECT_THAT(read_file(log_), Not(HasSubstr("leave_gang NORM/g pid=" + std::to_string(a.pid()))));
  r = cli({"gang", "destroy", "NORM/g"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(blocker));
  EXPECT_THAT(read_file(log_), Not(HasSubstr("remove_gang NORM/g")));

  auto c = client();
  auto l = c->list_gangs("NORM");
  ASSERT_TRUE(l.is_ok());
  ASSERT_EQ(l->gangs_size(), 1);
  EXPECT_EQ(l->gangs(0).spec().name(), "g");
  ASSERT_EQ(l->gangs(0).members_size(), 1);
  EXPECT_EQ(l->gangs(0).members(0).pid(), a.pid());
  EXPECT_THAT(cli({"show", "NORM"}).out, Not(HasSubstr(std::to_string(b.pid()))));

  // Room again: the same requests succeed.
  std::filesystem::remove(blocker);
  EXPECT_EQ(cli({"gang", "create", "NORM/h"}).exit_code, 0);
  EXPECT_EQ(cli({"gang", "add", "NORM/g", "--pid", std::to_string(b.pid())}).exit_code, 0);
  EXPECT_EQ(cli({"gang", "destroy", "NORM/g"}).exit_code, 0);
}

// Restarting with the same state directory, as an operator's crash would.
class GangRestart : public ::testing::Test {
 protected:
  std::unique_ptr<Daemon> start(const std::string& fake_log) {
    auto d = std::make_unique<Daemon>(
        std::vector<std::string>{"--glue", "fake", "--fake-cpus", "0-1", "--fake-log", fake_log, "--no-config"},
        state_.path());
    EXPECT_TRUE(d->start()) << d->log();
    return d;
  }
  static const v1::Gang* find(const v1::ListGangsResponse& l, const std::string& name) {
    for (const auto& g : l.gangs())
      if (g.spec().name() == name) return &g;
    return nullptr;
  }
  static std::vector<int> pids(const v1::Gang& g) {
    std::vector<int> out;
    for (const auto& m : g.members()) out.push_back(m.pid());
    std::sort(out.begin(), out.end());
    return out;
  }
  TempDir state_, logs_;
};

TEST_F(GangRestart, GangsAndTheirMembersSurviveASigkillAndTheDeadLeave) {
  Child a, b, c;
  {
    auto d = start(logs_ / "fake1.log");
    ASSERT_TRUE(d && d->pid() > 0);
    auto r = d->cli({"gang", "create", "NORM/vm", "--quantum", "7", "--width", "1", "--policy", "bsd4"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(d->cli({"gang", "create", "NORM/other", "--width", "1"}).exit_code, 0);
    ASSERT_EQ(d->cli({"gang", "create", "NORM/gone"}).exit_code, 0);
    for (pid_t p : {a.pid(), b.pid()}) {
      r = d->cli({"gang", "add", "NORM/vm", "--pid", std::to_string(p)});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    ASSERT_EQ(d->cli({"gang", "add", "NORM/other", "--pid", std::to_string(c.pid())}).exit_code, 0);
    ASSERT_EQ(d->cli({"gang", "destroy", "NORM/gone"}).exit_code, 0);
    EXPECT_EQ(d->stop(SIGKILL), -SIGKILL);
  }
  const int dead = b.pid();
  b.kill();  // dies while no daemon runs

  const std::string log2 = logs_ / "fake2.log";
  auto d = start(log2);
  ASSERT_TRUE(d && d->pid() > 0);
  auto cl = Client::connect(d->socket(), 5s);
  ASSERT_TRUE(cl.is_ok()) << cl.status().message();
  auto l = (*cl)->list_gangs("NORM");
  ASSERT_TRUE(l.is_ok()) << l.status().message();
  EXPECT_EQ(l->gangs_size(), 2) << d->cli({"gang", "list"}).out;
  EXPECT_FALSE(find(*l, "gone"));
  const v1::Gang* vm = find(*l, "vm");
  ASSERT_TRUE(vm) << d->log();
  EXPECT_EQ(vm->spec().quantum_ms(), 7);
  EXPECT_EQ(vm->spec().width(), 1);
  EXPECT_EQ(vm->spec().policy(), "bsd4");
  EXPECT_EQ(pids(*vm), std::vector<int>{a.pid()});
  const v1::Gang* other = find(*l, "other");
  ASSERT_TRUE(other);
  EXPECT_EQ(pids(*other), std::vector<int>{c.pid()});
  // Two width-1 gangs fit side by side: one row, nothing frozen.
  ASSERT_EQ(l->schedulers_size(), 1);
  EXPECT_EQ(l->schedulers(0).rows(), 1);
  EXPECT_FALSE(vm->frozen());
  // Back in their freezer groups through the glue, the dead one not.
  const std::string fake = read_file(log2);
  EXPECT_THAT(fake, HasSubstr("join_gang NORM/vm pid=" + std::to_string(a.pid())));
  EXPECT_THAT(fake, HasSubstr("join_gang NORM/other pid=" + std::to_string(c.pid())));
  EXPECT_THAT(fake, Not(HasSubstr("pid=" + std::to_string(dead) + " ")));
  EXPECT_THAT(d->log(), HasSubstr("pid " + std::to_string(dead) + " tid 0 of gang NORM/vm is gone"));
  // What a user types shows the same.
  auto r = d->cli({"gang", "list"});
  EXPECT_THAT(r.out, HasSubstr("NORM/vm"));
  EXPECT_THAT(r.out, HasSubstr("policy bsd4"));
  EXPECT_THAT(d->cli({"show", "NORM"}).out, HasSubstr("NORM/vm"));

  // Changes after the restart are durable too: a clean stop and start.
  ASSERT_EQ(d->cli({"gang", "remove", "NORM/vm", "--pid", std::to_string(a.pid())}).exit_code, 0);
  EXPECT_EQ(d->stop(SIGTERM), 0);
  d = start(logs_ / "fake3.log");
  ASSERT_TRUE(d && d->pid() > 0);
  cl = Client::connect(d->socket(), 5s);
  ASSERT_TRUE(cl.is_ok());
  l = (*cl)->list_gangs("NORM");
  ASSERT_TRUE(l.is_ok());
  ASSERT_TRUE(find(*l, "vm"));
  EXPECT_TRUE(pids(*find(*l, "vm")).empty());
  ASSERT_TRUE(find(*l, "other"));
  EXPECT_EQ(pids(*find(*l, "other")), std::vector<int>{c.pid()});
}

}  // namespace
}  // namespace usched::test
