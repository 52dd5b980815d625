// Tier 2: the operator's view with the fake glue: `usched apply` (one
// transaction, dry run, convergence), the config at start-up and on SIGHUP,
// the metrics endpoint, and `usched top` / `usched tree` on a real terminal
// (tmux), whose screen is captured and checked.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "support/harness.h"
#include "support/kernel.h"
#include "usched/client.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> fake(std::vector<std::string> more = {}) {
  std::vector<std::string> a = {"--glue", "fake", "--fake-cpus", "0-3"};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

class ApplyTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(d_.start()) << d_.log(); }
  void TearDown() override {
    if (HasFailure()) std::cerr << "uschedd log:\n" << d_.log();
  }
  std::string conf(const std::string& text) {
    const std::string p = files_ / ("c" + std::to_string(++n_) + ".conf");
    write_file(p, text);
    return p;
  }
  std::string list() { return d_.cli({"list", "--json"}).out; }
  TempDir files_;
  int n_ = 0;
  Daemon d_{fake()};
};

TEST_F(ApplyTest, OneBadLineChangesNothingAndNamesTheLine) {
  const std::string before = list();
  // Line 3 is well-formed but illegal against the tree (two exclusive
  // schedulers on cpu1): only the whole-plan check finds it.
  auto r = d_.cli({"apply", conf("usched a on cpu0-1 exclusive\n"
                                 "b on cpu2\n"
                                 "c on cpu1 exclusive\n")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("line 3: c:"));
  EXPECT_THAT(r.err, HasSubstr("exclusive"));
  EXPECT_EQ(list(), before);
  // A syntax error too.
  r = d_.cli({"apply", conf("x on cpu*\ny on cpu* lwktpri 99\n")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("line 2: lwktpri"));
  EXPECT_EQ(list(), before);
}

TEST_F(ApplyTest, DryRunPrintsThePlanAndChangesNothing) {
  const std::string before = list();
  const std::string state_before = read_file(d_.state_dir() + "/state.json");
  auto r = d_.cli({"apply", "--dry-run", conf("IDLE on cpu* lwktpri 4\nNORM on cpu0-1 lwktpri 7\nweb on cpu2\n")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("unchanged  IDLE"));
  EXPECT_THAT(r.out, HasSubstr("update     NORM"));
  EXPECT_THAT(r.out, HasSubstr("pool cpu* -> cpu0-1, lwktpri 6 -> 7"));
  EXPECT_THAT(r.out, HasSubstr("create     web"));
  EXPECT_THAT(r.out, HasSubstr("dry run: 2 changes planned, nothing applied"));
  EXPECT_EQ(list(), before);
  EXPECT_EQ(read_file(d_.state_dir() + "/state.json"), state_before);
}

TEST_F(ApplyTest, ConvergesToTheFileButKeepsBusyAndHandMadeSchedulers) {
  ASSERT_EQ(d_.cli({"create", "hand", "on", "cpu3"}).exit_code, 0);
  auto r = d_.cli({"apply", conf("a on cpu0-1\nb on cpu2\nb/c on cpu0\n")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("applied 3 changes"));
  Child sleeper;
  ASSERT_EQ(d_.cli({"bind", "a", "--pid", std::to_string(sleeper.pid())}).exit_code, 0);

  // a holds a member: kept; b and b/c are idle: destroyed; hand untouched.
  r = d_.cli({"apply", conf("x on cpu3\n")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("keep       a"));
  EXPECT_THAT(r.out, HasSubstr("holds 1 member"));
  auto l = d_.cli({"list"}).out;
  EXPECT_THAT(l, HasSubstr("\na "));
  EXPECT_THAT(l, HasSubstr("hand"));
  EXPECT_THAT(l, HasSubstr("x "));
  EXPECT_THAT(l, Not(HasSubstr("b/c")));
  EXPECT_THAT(l, Not(HasSubstr("\nb ")));

  // --force destroys it; the member goes back where it came from.
  r = d_.cli({"apply", "--force", conf("x on cpu3\n")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("destroy    a"));
  l = d_.cli({"list"}).out;
  EXPECT_THAT(l, Not(HasSubstr("\na ")));
  EXPECT_THAT(l, HasSubstr("hand"));
}

TEST_F(ApplyTest, JsonPlanFollowsTheProtoMapping) {
  auto r = d_.cli({"--json", "apply", "--dry-run", conf("web on cpu2\n")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"action\": \"CREATE\""));
  EXPECT_THAT(r.out, HasSubstr("\"applied\": false"));
}

TEST(ConfigFile, LoadedAtStartUpAndReappliedOnSighup) {
  TempDir t;
  const std::string file = t / "usched.conf";
  write_file(file, "# start\nusched web on cpu0-1 lwktpri 7\n");
  Daemon d(fake({"--config", file}));
  ASSERT_TRUE(d.start()) << d.log();
  auto l = d.cli({"list"}).out;
  EXPECT_THAT(l, HasSubstr("web"));
  EXPECT_THAT(l, Not(HasSubstr("NORM")));  // the config, not the defaults

  write_file(file, "usched web on cpu0-1 lwktpri 7\nusched db on cpu2-3 locked\n");
  ASSERT_EQ(::kill(d.pid(), SIGHUP), 0);
  EXPECT_TRUE(eventually([&] { return d.cli({"list"}).out.find("db ") != std::string::npos; }))
      << d.log();

  // A broken edit is logged and changes nothing; the daemon keeps serving.
  write_file(file, "usched web on cpu0-1\nusched oops on cpu7\n");
  ASSERT_EQ(::kill(d.pid(), SIGHUP), 0);
  EXPECT_TRUE(eventually([&] { return d.log().find("line 2: oops") != std::string::npos; })) << d.log();
  l = d.cli({"list"}).out;
  EXPECT_THAT(l, HasSubstr("db "));
  EXPECT_EQ(d.stop(SIGTERM), 0);
}

TEST(ConfigFile, ABadConfigStopsStartUpWithTheLine) {
  TempDir t;
  const std::string file = t / "usched.conf";
  write_file(file, "a on cpu*\na/b on cpu9\n");
  Daemon d(fake({"--config", file}));
  EXPECT_FALSE(d.start());
  EXPECT_EQ(d.exit_code(), 1);
  EXPECT_THAT(d.log(), HasSubstr(file + " line 2: a/b"));
}

TEST(Metrics, ServesPrometheusTextPerScheduler) {
  TempDir t;
  const std::string sock = t / "metrics.sock";
  Daemon d(fake({"--metrics", "unix:" + sock}));
  ASSERT_TRUE(d.start()) << d.log();
  Child sleeper;
  ASSERT_EQ(d.cli({"bind", "NORM", "--pid", std::to_string(sleeper.pid())}).exit_code, 0);
  const std::string body = http_get_unix(sock);
  EXPECT_THAT(body, HasSubstr("HTTP/1.0 200 OK"));
  EXPECT_THAT(body, HasSubstr("# TYPE usched_scheduler_cpu_seconds_total counter"));
  EXPECT_THAT(body, HasSubstr("usched_scheduler_cpu_seconds_total{scheduler=\"NORM\"}"));
  EXPECT_THAT(body, HasSubstr("usched_scheduler_members{scheduler=\"NORM\"} 1"));
  EXPECT_THAT(body, HasSubstr("usched_scheduler_members{scheduler=\"IDLE\"} 0"));
  EXPECT_THAT(body, HasSubstr("usched_scheduler_gang_switches_total{scheduler=\"NORM\"}"));
}

TEST(Stats, CpuTimeOfABusyMemberIsCountedToItsScheduler) {
  Daemon d(fake());
  ASSERT_TRUE(d.start()) << d.log();
  Child spinner({"sh", "-c", "while :; do :; done"});
  ASSERT_EQ(d.cli({"bind", "IDLE", "--pid", std::to_string(spinner.pid())}).exit_code, 0);
  // The first sample only notes where the member starts.
  ASSERT_EQ(d.cli({"top", "--iterations", "1"}).exit_code, 0);
  EXPECT_TRUE(eventually(
      [&] {
        auto r = d.cli({"--json", "top", "--iterations", "1"});
        auto at = r.out.find("\"name\":\"IDLE\",\"cpuUsageUs\":\"");
        return at != std::string::npos && r.out.compare(at + 29, 2, "0\"") != 0;
      },
      10s));
}

// The value of a metric line `name{scheduler="S"} V`, -1 when absent.
double metric(const std::string& body, const std::string& name, const std::string& sched) {
  const std::string key = name + "{scheduler=\"" + sched + "\"} ";
  const auto at = body.find(key);
  if (at == std::string::npos) return -1;
  return std::stod(body.substr(at + key.size()));
}

const v1::SchedulerStats* stats_of(const v1::GetStatsResponse& r, const std::string& name) {
  for (const auto& s : r.schedulers())
    if (s.name() == name) return &s;
  return nullptr;
}

// Two full-width gangs cannot run side by side: they take turns, and the
// operator sees it in GetStats, `usched top` and the metrics endpoint.
TEST(Stats, TwoGangsTakingTurnsShowSwitchesAndFrozenTime) {
  TempDir t;
  const std::string sock = t / "metrics.sock";
  Daemon d(fake({"--metrics", "unix:" + sock}));
  ASSERT_TRUE(d.start()) << d.log();
  Child a, b;
  for (const char* g : {"a", "b"}) {
    auto r = d.cli({"gang", "create", std::string("NORM/") + g, "--quantum", "5"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  ASSERT_EQ(d.cli({"gang", "add", "NORM/a", "--pid", std::to_string(a.pid())}).exit_code, 0);
  ASSERT_EQ(d.cli({"gang", "add", "NORM/b", "--pid", std::to_string(b.pid())}).exit_code, 0);
  auto c = Client::connect(d.socket(), 5s);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  v1::GetStatsResponse st;
  // 5 ms quanta: a dozen switches and some frozen time come quickly.
  ASSERT_TRUE(eventually(
      [&] {
        auto r = (*c)->stats();
        if (!r.is_ok()) return false;
        st = *r;
        const auto* n = stats_of(st, "NORM");
        return n && n->gang_switches() >= 10 && n->frozen_us() >= 10000;
      },
      10s))
      << st.DebugString();
  const auto* norm = stats_of(st, "NORM");
  EXPECT_EQ(norm->gangs(), 2);
  EXPECT_EQ(norm->gang_slots(), 2);
  // Schedulers without gangs stay at zero.
  ASSERT_TRUE(stats_of(st, "IDLE"));
  EXPECT_EQ(stats_of(st, "IDLE")->gangs(), 0);
  EXPECT_EQ(stats_of(st, "IDLE")->gang_switches(), 0u);
  EXPECT_EQ(stats_of(st, "IDLE")->frozen_us(), 0u);

  // `usched top`: 2 gangs in 2 slots on NORM's line.
  auto top = d.cli({"top", "--iterations", "1"});
  ASSERT_EQ(top.exit_code, 0) << top.err;
  std::istringstream lines(top.out);
  std::string line, norm_line;
  while (std::getline(lines, line))
    if (line.rfind("NORM ", 0) == 0) norm_line = line;
  EXPECT_THAT(norm_line, HasSubstr(" 2/2 ")) << top.out;

  // Metrics: both counters above zero and growing.
  const std::string body = http_get_unix(sock);
  const double switches = metric(body, "usched_scheduler_gang_switches_total", "NORM");
  const double frozen = metric(body, "usched_scheduler_gang_frozen_seconds_total", "NORM");
  EXPECT_GE(switches, static_cast<double>(norm->gang_switches())) << body;
  EXPECT_GT(frozen, 0.0) << body;
  EXPECT_EQ(metric(body, "usched_scheduler_gang_switches_total", "IDLE"), 0.0) << body;
  EXPECT_TRUE(eventually([&] {
    const std::string later = http_get_unix(sock);
    return metric(later, "usched_scheduler_gang_switches_total", "NORM") > switches &&
           metric(later, "usched_scheduler_gang_frozen_seconds_total", "NORM") > frozen;
  }));

  // Destroying a gang does not make the counters go back.
  const uint64_t before = stats_of(*(*c)->stats(), "NORM")->gang_switches();
  ASSERT_EQ(d.cli({"gang", "destroy", "NORM/b"}).exit_code, 0);
  ASSERT_EQ(d.cli({"gang", "destroy", "NORM/a"}).exit_code, 0);
  auto after = (*c)->stats();
  ASSERT_TRUE(after.is_ok());
  EXPECT_EQ(stats_of(*after, "NORM")->gangs(), 0);
  EXPECT_GE(stats_of(*after, "NORM")->gang_switches(), before);
  EXPECT_GE(stats_of(*after, "NORM")->frozen_us(), norm->frozen_us());
}

// ---- a real terminal -------------------------------------------------------

bool have_tmux() { return run({"tmux", "-V"}).exit_code == 0; }

class Tmux {
 public:
  explicit Tmux(const std::string& cmd) : name_("usched-test-" + random_suffix()) {
    ok_ = run({"tmux", "-S", sock_, "new-session", "-d", "-s", name_, "-x", "150", "-y", "30", cmd})
              .exit_code == 0;
  }
  ~Tmux() { run({"tmux", "-S", sock_, "kill-server"}); }
  bool ok() const { return ok_; }
  std::string screen() const {
    return run({"tmux", "-S", sock_, "capture-pane", "-p", "-e", "-t", name_}).out;
  }
  void keys(const std::string& k) const { run({"tmux", "-S", sock_, "send-keys", "-t", name_, k}); }
  bool alive() const { return run({"tmux", "-S", sock_, "has-session", "-t", name_}).exit_code == 0; }

 private:
  TempDir dir_;
  std::string sock_ = dir_ / "tmux.sock";
  std::string name_;
  bool ok_ = false;
};

TEST(Terminal, TopRefreshesAndQuitsWithQ) {
  USCHED_SKIP_OR_FAIL_IF(have_tmux() ? "" : "tmux is not installed (scripts/deps.sh installs it)");
  Daemon d(fake());
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.cli({"create", "web", "on", "cpu2-3", "lwktpri", "8"}).exit_code, 0);
  Tmux t(std::string(USCHED_CLI_PATH) + " --socket " + d.socket() +
         " top --interval 0.2; echo TOP-EXITED; sleep 30");
  ASSERT_TRUE(t.ok());
  std::string s;
  ASSERT_TRUE(eventually([&] { return (s = t.screen()).find("web") != std::string::npos; }, 10s)) << s;
  EXPECT_THAT(s, HasSubstr("usched top - 4 schedulers"));
  EXPECT_THAT(s, HasSubstr("%CPU"));
  EXPECT_THAT(s, HasSubstr("\033[7m"));  // header in reverse video: colour on a TTY
  EXPECT_THAT(s, HasSubstr("realtime"));
  // It refreshes: a scheduler made now appears without restarting top.
  ASSERT_EQ(d.cli({"create", "late", "on", "cpu0"}).exit_code, 0);
  EXPECT_TRUE(eventually([&] { return (s = t.screen()).find("late") != std::string::npos; }, 10s)) << s;
  t.keys("q");
  EXPECT_TRUE(eventually([&] { return (s = t.screen()).find("TOP-EXITED") != std::string::npos; }, 10s))
      << s;
}

TEST(Terminal, TreeDrawsCpuMapsInColourOnlyOnATty) {
  USCHED_SKIP_OR_FAIL_IF(have_tmux() ? "" : "tmux is not installed (scripts/deps.sh installs it)");
  Daemon d(fake());
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.cli({"create", "rt", "on", "cpu3", "lwktpri", "9", "locked", "exclusive"}).exit_code, 0);
  ASSERT_EQ(d.cli({"create", "rt/a", "on", "cpu0"}).exit_code, 0);
  Tmux t(std::string(USCHED_CLI_PATH) + " --socket " + d.socket() + " tree; echo TREE-DONE; sleep 30");
  ASSERT_TRUE(t.ok());
  std::string s;
  ASSERT_TRUE(eventually([&] { return (s = t.screen()).find("TREE-DONE") != std::string::npos; }, 10s))
      << s;
  EXPECT_THAT(s, HasSubstr("machine: cpus 0-3"));
  EXPECT_THAT(s, HasSubstr("rt  [...\033[31m#\033[39m]"));  // exclusive CPU 3 in red
  EXPECT_THAT(s, HasSubstr("locked,exclusive"));
  EXPECT_THAT(s, HasSubstr("NORM"));
  // Through a pipe: the same map, no escape sequences.
  auto plain = d.cli({"tree"});
  EXPECT_THAT(plain.out, HasSubstr("rt  [...#]"));
  EXPECT_THAT(plain.out, HasSubstr("IDLE  [###.]"));
  EXPECT_THAT(plain.out, Not(HasSubstr("\033[")));
}

}  // namespace
}  // namespace usched::test
