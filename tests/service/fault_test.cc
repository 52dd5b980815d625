// Every kernel write failing once. For each operation of the glue that the
// fake back end can fail (--fake-fail OP[:SUBSTR]=ERRNO) and each RPC that
// reaches it, the RPC is made once with that operation failing, and what a
// user sees is checked: the RPC fails with an error that names the
// operation and the errno, `usched list --json` and state.json are exactly
// as before, and no gang is left frozen. The same RPC where the fault is
// not (another scheduler) still works; then uschedd is killed and started
// again on its state directory, and shows exactly the tree it showed: the
// members files and their journal hold nothing of the failed RPC.
//
// The glue's cgroup moves (join_group) run off the RPC's path, after the
// answer (see Engine::join_later): a failure there is logged, not returned,
// and is not in this table.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <sstream>

#include "support/harness.h"
#include "support/kernel.h"
#include "usched/client.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Gangs the fake glue froze and did not thaw since (thaw_all thaws all).
std::set<std::string> frozen_gangs(const std::string& fake_log) {
  std::set<std::string> frozen;
  std::istringstream in(read_file(fake_log));
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" failed=") != std::string::npos) continue;
    std::istringstream words(line);
    std::string op, gang;
    words >> op >> gang;
    if (op == "freeze_gang") frozen.insert(gang);
    if (op == "thaw_gang") frozen.erase(gang);
    if (op == "thaw_all") frozen.clear();
  }
  return frozen;
}

// The gangs as `usched gang list` shows them, less their running
// statistics (which move on by themselves): scheduler/gang, width, members.
std::string gang_shape(const Daemon& d) {
  auto c = Client::connect(d.socket(), 5s);
  if (!c.is_ok()) return "cannot connect: " + c.status().message();
  auto l = (*c)->list_gangs("");
  if (!l.is_ok()) return "ListGangs: " + l.status().message();
  std::string out;
  for (const auto& g : l->gangs()) {
    out += g.spec().scheduler() + "/" + g.spec().name() + " width " + std::to_string(g.spec().width()) + ":";
    for (const auto& m : g.members()) out += " " + std::to_string(m.pid()) + "." + std::to_string(m.tid());
    out += "\n";
  }
  return out;
}

// A daemon on the fake glue with `fail` injected, and a sleeping process
// to bind.
struct Rig {
  explicit Rig(const std::string& fail)
      : daemon({"--glue", "fake", "--fake-cpus", "0-3", "--fake-log", logs / "fake.log",
                "--fake-fail", fail}) {}
  CmdResult cli(std::vector<std::string> args) const { return daemon.cli(std::move(args), {.timeout = 10s}); }
  std::string pid() const { return std::to_string(sleeper.pid()); }
  std::string pid2() const { return std::to_string(sleeper2.pid()); }
  std::string write_conf(const std::string& name, const std::string& text) const {
    const std::string p = logs / name;
    std::ofstream(p) << text;
    return p;
  }
  TempDir logs;
  Daemon daemon;
  Child sleeper, sleeper2;
};

struct FaultCase {
  const char* name;  // the test's name: OP_during_RPC
  const char* fail;  // --fake-fail
  const char* op;    // the operation the error must name
  const char* err;   // and the errno's name
  std::function<void(Rig&)> setup;                // must succeed
  std::function<CmdResult(Rig&)> rpc;             // must fail, changing nothing
  std::function<CmdResult(Rig&)> rpc_elsewhere;   // the same RPC, not hitting the fault: works
};

// Test names and failures show the case's name, not its bytes.
void PrintTo(const FaultCase& c, std::ostream* os) { *os << c.name; }

void ok(const CmdResult& r, const std::string& what) {
  ASSERT_EQ(r.exit_code, 0) << what << ": " << r.err << r.out;
}

const std::vector<FaultCase>& cases() {
  static const std::vector<FaultCase> all = {
      {"apply_group_during_CreateScheduler", "apply_group:FAULT =28", "apply_group", "ENOSPC",
       [](Rig&) {},
       [](Rig& r) { return r.cli({"FAULT", "on", "cpu0"}); },
       [](Rig& r) { return r.cli({"FINE", "on", "cpu0"}); }},
      {"apply_group_during_UpdateScheduler", "apply_group:FAULT cpus=2 =28", "apply_group", "ENOSPC",
       [](Rig& r) { ok(r.cli({"FAULT", "on", "cpu0-1"}), "create"); },
       [](Rig& r) { return r.cli({"update", "FAULT", "on", "cpu2"}); },
       [](Rig& r) { return r.cli({"update", "FAULT", "on", "cpu3"}); }},
      {"apply_group_during_Apply", "apply_group:FAULT =5", "apply_group", "EIO",
       [](Rig&) {},
       [](Rig& r) { return r.cli({"apply", r.write_conf("a.conf", "usched FAULT on cpu0\n")}); },
       [](Rig& r) { return r.cli({"apply", r.write_conf("b.conf", "usched FINE on cpu0\n")}); }},
      {"place_during_Bind", "place:cpus=2 =1", "place", "EPERM",
       [](Rig& r) {
         ok(r.cli({"FAULT", "on", "cpu2"}), "create");
         ok(r.cli({"FINE", "on", "cpu3"}), "create");
       },
       [](Rig& r) { return r.cli({"bind", "FAULT", "--pid", r.pid()}); },
       [](Rig& r) { return r.cli({"bind", "FINE", "--pid", r.pid()}); }},
      {"place_during_UpdateScheduler", "place:cpus=2 =22", "place", "EINVAL",
       [](Rig& r) {
         ok(r.cli({"FAULT", "on", "cpu0-1"}), "create");
         ok(r.cli({"bind", "FAULT", "--pid", r.pid()}), "bind");
       },
       [](Rig& r) { return r.cli({"update", "FAULT", "on", "cpu2"}); },
       [](Rig& r) { return r.cli({"update", "FAULT", "on", "cpu3"}); }},
      {"capture_origin_during_Bind", "capture_origin=3", "capture_origin", "ESRCH",
       [](Rig& r) { ok(r.cli({"FAULT", "on", "cpu0"}), "create"); },
       [](Rig& r) { return r.cli({"bind", "FAULT", "--pid", r.pid()}); },
       nullptr},
      {"restore_during_Unbind", "restore=1", "restore", "EPERM",
       [](Rig& r) {
         ok(r.cli({"FAULT", "on", "cpu0"}), "create");
         ok(r.cli({"bind", "FAULT", "--pid", r.pid()}), "bind");
       },
       [](Rig& r) { return r.cli({"unbind", "--pid", r.pid()}); },
       nullptr},
      {"remove_group_during_DestroyScheduler", "remove_group:FAULT=16", "remove_group", "EBUSY",
       [](Rig& r) {
         ok(r.cli({"FAULT", "on", "cpu0"}), "create");
         ok(r.cli({"FINE", "on", "cpu0"}), "create");
       },
       [](Rig& r) { return r.cli({"destroy", "FAULT"}); },
       [](Rig& r) { return r.cli({"destroy", "FINE"}); }},
      {"join_gang_during_AddGangMember", "join_gang:FAULT=12", "join_gang", "ENOMEM",
       [](Rig& r) {
         ok(r.cli({"FAULT", "on", "cpu0-1"}), "create");
         ok(r.cli({"FINE", "on", "cpu0-1"}), "create");
         ok(r.cli({"gang", "create", "FAULT/g"}), "gang create");
         ok(r.cli({"gang", "create", "FINE/g"}), "gang create");
       },
       [](Rig& r) { return r.cli({"gang", "add", "FAULT/g", "--pid", r.pid()}); },
       [](Rig& r) { return r.cli({"gang", "add", "FINE/g", "--pid", r.pid()}); }},
      {"leave_gang_during_RemoveGangMember", "leave_gang=1", "leave_gang", "EPERM",
       [](Rig& r) {
         ok(r.cli({"FAULT", "on", "cpu0-1"}), "create");
         ok(r.cli({"gang", "create", "FAULT/g"}), "gang create");
         ok(r.cli({"gang", "add", "FAULT/g", "--pid", r.pid()}), "gang add");
       },
       [](Rig& r) { return r.cli({"gang", "remove", "FAULT/g", "--pid", r.pid()}); },
       nullptr},
      {"remove_gang_during_DestroyGang", "remove_gang:FAULT/g=16", "remove_gang", "EBUSY",
       [](Rig& r) {
         ok(r.cli({"FAULT", "on", "cpu0-1"}), "create");
         // One vcpu each: side by side in one row, never frozen by turns,
         // so a gang left frozen is the failure's doing.
         ok(r.cli({"gang", "create", "FAULT/g", "--width", "1"}), "gang create");
         ok(r.cli({"gang", "create", "FAULT/h", "--width", "1"}), "gang create");
         ok(r.cli({"gang", "add", "FAULT/g", "--pid", r.pid()}), "gang add");
         ok(r.cli({"gang", "add", "FAULT/h", "--pid", r.pid2()}), "gang add");
       },
       [](Rig& r) { return r.cli({"gang", "destroy", "FAULT/g"}); },
       [](Rig& r) { return r.cli({"gang", "destroy", "FAULT/h"}); }},
  };
  return all;
}

class EveryKernelWriteFailingOnce : public ::testing::TestWithParam<FaultCase> {};

TEST_P(EveryKernelWriteFailingOnce, TheRpcNamesTheOperationAndErrnoAndChangesNothing) {
  const FaultCase& c = GetParam();
  Rig rig(c.fail);
  ASSERT_TRUE(rig.daemon.start()) << rig.daemon.log();
  c.setup(rig);
  if (HasFatalFailure()) return;
  const std::string list_before = rig.cli({"list", "--json"}).out;
  const std::string state_before = read_file(rig.daemon.state_dir() + "/state.json");

  const CmdResult r = c.rpc(rig);
  EXPECT_NE(r.exit_code, 0) << "the RPC succeeded: " << r.out;
  EXPECT_THAT(r.err, HasSubstr(c.op));
  EXPECT_THAT(r.err, HasSubstr(c.err));
  // The fault is in the fake's log with its errno: the RPC did reach it.
  EXPECT_THAT(read_file(rig.logs / "fake.log"), HasSubstr(std::string("failed=") + c.err));
  EXPECT_EQ(rig.cli({"list", "--json"}).out, list_before) << "the tree changed";
  EXPECT_EQ(read_file(rig.daemon.state_dir() + "/state.json"), state_before) << "state.json changed";
  EXPECT_THAT(frozen_gangs(rig.logs / "fake.log"), ::testing::IsEmpty());

  // The daemon can still do the same where the fault is not.
  std::string list_now = list_before;
  if (c.rpc_elsewhere) {
    const CmdResult again = c.rpc_elsewhere(rig);
    EXPECT_EQ(again.exit_code, 0) << "the same RPC elsewhere failed: " << again.err;
    list_now = rig.cli({"list", "--json"}).out;
  }
  // What the state files hold (members.json and its journal included) is
  // what a start after a crash comes back with: exactly the tree as shown.
  // (A copy, as a crash would leave them: a graceful stop rewrites them.)
  EXPECT_THAT(frozen_gangs(rig.logs / "fake.log"), ::testing::IsEmpty());
  const std::string crashed = rig.logs / "state-as-left";
  std::filesystem::copy(rig.daemon.state_dir(), crashed);
  EXPECT_EQ(rig.daemon.stop(SIGTERM), 0) << rig.daemon.log();
  EXPECT_THAT(frozen_gangs(rig.logs / "fake.log"), ::testing::IsEmpty());
  const std::string daemon_log = rig.daemon.log();
  Daemon again({"--glue", "fake", "--fake-cpus", "0-3"}, crashed);
  ASSERT_TRUE(again.start()) << again.log();
  EXPECT_EQ(again.cli({"list", "--json"}).out, list_now) << "the state files differ from the tree";
  EXPECT_EQ(again.stop(SIGTERM), 0) << again.log();
  if (HasFailure()) std::cerr << "uschedd log:\n" << daemon_log;
}

INSTANTIATE_TEST_SUITE_P(Table, EveryKernelWriteFailingOnce, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- the state directory turning read-only mid-run -------------------------------

// A tmpfs for one test, unmounted (lazily) when it goes, even on failure.
class Tmpfs {
 public:
  explicit Tmpfs(const std::string& path) : path_(path) {
    std::filesystem::create_directories(path);
    ok_ = ::mount("usched-test", path.c_str(), "tmpfs", 0, "size=4m,mode=0755") == 0;
  }
  ~Tmpfs() {
    if (ok_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;
  bool ok() const { return ok_; }
  bool set_read_only(bool ro) {
    return ::mount("usched-test", path_.c_str(), "tmpfs", MS_REMOUNT | (ro ? MS_RDONLY : 0), nullptr) == 0;
  }

 private:
  std::string path_;
  bool ok_ = false;
};

// Every RPC that changes state, with the state directory read-only: each
// fails naming the state file and the reason, the tree and the kernel are
// untouched (the fake glue is asked nothing), and once the directory is
// writable again the same RPCs work.
TEST(StateDirReadOnly, EveryChangingRpcFailsNamingTheFileAndChangesNothing) {
  USCHED_SKIP_OR_FAIL_IF(::geteuid() == 0 ? "" : "mounting a tmpfs for the state directory needs root");
  TempDir base;
  Tmpfs fs(base / "state");
  ASSERT_TRUE(fs.ok()) << std::strerror(errno);
  TempDir logs;
  Daemon d({"--glue", "fake", "--fake-cpus", "0-3", "--fake-log", logs / "fake.log"}, base / "state");
  ASSERT_TRUE(d.start()) << d.log();
  Child a, b;
  const std::string pa = std::to_string(a.pid()), pb = std::to_string(b.pid());
  const std::string conf = logs / "apply.conf";
  std::ofstream(conf) << "usched APPLIED on cpu0\n";
  for (const auto& step : std::vector<std::vector<std::string>>{
           {"S", "on", "cpu0-1"}, {"T", "on", "cpu2"}, {"U", "on", "cpu3"}, {"bind", "S", "--pid", pa},
           {"gang", "create", "S/g"}, {"gang", "create", "S/h"}, {"gang", "add", "S/h", "--pid", pa}}) {
    const CmdResult r = d.cli(step);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  struct Rpc {
    const char* what;
    std::vector<std::string> args;
  };
  // In an order that also works one after the other once writable again.
  const std::vector<Rpc> rpcs = {
      {"CreateScheduler", {"NEW", "on", "cpu0"}},
      {"UpdateScheduler", {"update", "S", "lwktpri", "7"}},
      {"DestroyScheduler", {"destroy", "U"}},
      {"Chown", {"chown", "T", "nobody"}},
      {"Bind", {"bind", "T", "--pid", pb}},
      {"RemoveGangMember", {"gang", "remove", "S/h", "--pid", pa}},
      {"Unbind", {"unbind", "--pid", pa}},
      {"Apply", {"apply", conf}},
      {"CreateGang", {"gang", "create", "T/new"}},
      {"AddGangMember", {"gang", "add", "S/g", "--pid", pb}},
      {"DestroyGang", {"gang", "destroy", "S/g"}},
  };
  const std::string list_before = d.cli({"list", "--json"}).out;
  const std::string gangs_before = gang_shape(d);
  const std::string state_before = read_file(base / "state/state.json");
  ASSERT_TRUE(fs.set_read_only(true)) << std::strerror(errno);
  for (const Rpc& rpc : rpcs) {
    SCOPED_TRACE(rpc.what);
    const size_t kernel_before = read_file(logs / "fake.log").size();
    const CmdResult r = d.cli(rpc.args);
    EXPECT_NE(r.exit_code, 0) << "succeeded on a read-only state directory: " << r.out;
    EXPECT_THAT(r.err, HasSubstr("Read-only file system"));
    EXPECT_THAT(r.err, HasSubstr(base / "state/"));
    EXPECT_EQ(d.cli({"list", "--json"}).out, list_before);
    EXPECT_EQ(gang_shape(d), gangs_before);
    // Nothing was asked of the kernel but what undoes nothing: no group,
    // no placement, no gang change.
    const std::string asked = read_file(logs / "fake.log").substr(kernel_before);
    for (const char* op : {"apply_group", "remove_group", "place", "restore", "join_gang", "leave_gang", "remove_gang"}) {
      EXPECT_THAT(asked, Not(HasSubstr(std::string(op) + " "))) << asked;
    }
  }
  EXPECT_THAT(frozen_gangs(logs / "fake.log"), ::testing::IsEmpty());
  ASSERT_TRUE(fs.set_read_only(false)) << std::strerror(errno);
  EXPECT_EQ(read_file(base / "state/state.json"), state_before);
  for (const Rpc& rpc : rpcs) {
    const CmdResult r = d.cli(rpc.args);
    EXPECT_EQ(r.exit_code, 0) << rpc.what << " once writable again: " << r.err;
  }
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
  EXPECT_THAT(frozen_gangs(logs / "fake.log"), ::testing::IsEmpty());
  if (HasFailure()) std::cerr << "uschedd log:\n" << d.log();
}

}  // namespace
}  // namespace usched::test
