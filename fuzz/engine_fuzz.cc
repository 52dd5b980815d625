//! libFuzzer target: the daemon's engine itself (daemon/engine.h) on the
//! fake glue, driven by random sequences of API requests as gRPC hands them
//! over: create, update, destroy, bind, unbind, chown, apply, gangs (create,
//! add, remove, destroy), from root and from an ordinary user, with the
//! fake glue failing now and then. The members are real sleeping processes
//! (the engine reads /proc for their start times). After every request the
//! tree's invariants are checked through what ListSchedulers answers:
//!   - every entity's physical CPUs lie inside its parent's;
//!   - every member of a locked entity sits on one of its vcpus, and its CPUs are that
//!     vcpu's (locked) or the entity's (unlocked);
//!   - the members counted per vcpu add up to the members listed (locked),
//!     or to none (unlocked: its members are on vcpu -1);
//!   - a locked member bound without asking for a vcpu got one of the
//!     vcpus with the fewest members (placement: no vcpu holds more);
//!   - every gang's members are members of its scheduler.
//! The state directory is on /dev/shm (fsync is cheap there) and loaded
//! by a second engine at the end of each input: what was answered is what
//! comes back (schedulers, their specs and members).
#include <fuzzer/FuzzedDataProvider.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "engine.h"
#include "usched/glue/glue.h"

namespace {

using namespace usched;
using usched::daemon::Caller;
using usched::daemon::Engine;

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "engine_fuzz: invariant broken: %s\n", why.c_str());
  __builtin_trap();
}

std::vector<pid_t> g_children;
std::string g_dir;

void cleanup() {
  for (pid_t p : g_children) {
    ::kill(p, SIGKILL);
    ::waitpid(p, nullptr, 0);
  }
  std::error_code ec;
  if (!g_dir.empty()) std::filesystem::remove_all(g_dir, ec);
}

void init_once() {
  if (!g_children.empty()) return;
  spdlog::set_level(spdlog::level::off);
  for (int i = 0; i < 6; ++i) {
    pid_t p = ::fork();
    if (p == 0) {
      // Gone with the fuzzer, even when it dies of a crash it found.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() == 1) ::_exit(0);
      for (;;) ::pause();
    }
    g_children.push_back(p);
  }
  char tmpl[] = "/dev/shm/usched-engine-fuzz-XXXXXX";
  g_dir = ::mkdtemp(tmpl) ? tmpl : "";
  std::atexit(cleanup);
}

std::string pick_name(FuzzedDataProvider& in) {
  static const char* names[] = {"A", "B", "A/x", "A/y", "B/x", "A/x/deep", "NORM", "IDLE", "REAL",
                                "NORM/sub", "..", "A/..", "", "bad name"};
  if (in.ConsumeIntegralInRange<int>(0, 15) == 0) return in.ConsumeRandomLengthString(20);
  return names[in.ConsumeIntegralInRange<size_t>(0, std::size(names) - 1)];
}

std::string pick_pool(FuzzedDataProvider& in) {
  static const char* pools[] = {"cpu0", "cpu1", "cpu0-1", "cpu*", "cpu2 cpu3", "cpu0-3", "cpu1-2", "cpu7", "cpu0-63"};
  if (in.ConsumeIntegralInRange<int>(0, 15) == 0) return in.ConsumeRandomLengthString(16);
  return pools[in.ConsumeIntegralInRange<size_t>(0, std::size(pools) - 1)];
}

int pick_pid(FuzzedDataProvider& in) {
  const int i = in.ConsumeIntegralInRange<int>(0, static_cast<int>(g_children.size()));
  if (i == static_cast<int>(g_children.size())) return in.ConsumeIntegralInRange<int>(-2, 5);
  return g_children[i];
}

std::vector<std::string> gang_names(FuzzedDataProvider& in) {
  return {pick_name(in), in.ConsumeBool() ? "g" : "h"};
}

// The invariants, read through what a client would see.
void check(Engine& e) {
  const v1::ListSchedulersResponse l = e.list();
  std::map<std::string, const v1::Scheduler*> by_name;
  for (const auto& s : l.schedulers()) by_name[s.spec().name()] = &s;
  for (const auto& s : l.schedulers()) {
    const std::string& n = s.spec().name();
    auto cpus = CpuSet::parse(s.cpus());
    if (!cpus) fail(n + ": cpus '" + s.cpus() + "' do not parse");
    if (!s.parent().empty()) {
      auto it = by_name.find(s.parent());
      if (it == by_name.end()) fail(n + ": parent " + s.parent() + " is not listed");
      auto pc = CpuSet::parse(it->second->cpus());
      if (!pc || !cpus->is_subset_of(*pc)) fail(n + ": cpus " + s.cpus() + " outside parent's " + it->second->cpus());
    }
    // A locked scheduler's members are each on one of its vcpus, counted
    // there; an unlocked one's are on none (vcpu -1, every count 0).
    int counted = 0;
    std::vector<int> per_vcpu(s.vcpu_size(), 0);
    for (const auto& v : s.vcpu()) counted += v.members();
    const int expected = s.spec().locked() ? s.members_size() : 0;
    if (counted != expected) {
      std::string on;
      for (const auto& m : s.members()) on += " " + std::to_string(m.pid()) + "@" + std::to_string(m.vcpu());
      fail(n + ": vcpus count " + std::to_string(counted) + " members, " + std::to_string(expected) +
           " expected (pid@vcpu:" + on + "; locked " + std::to_string(s.spec().locked()) + ")");
    }
    if (!s.spec().locked()) {
      for (const auto& m : s.members()) {
        if (m.vcpu() != -1) fail(n + ": unlocked, but a member is on vcpu " + std::to_string(m.vcpu()));
      }
    }
    for (const auto& m : s.members()) {
      if (s.spec().locked()) {
        if (m.vcpu() < 0 || m.vcpu() >= s.vcpu_size()) fail(n + ": member on vcpu " + std::to_string(m.vcpu()));
        per_vcpu[m.vcpu()]++;
        if (m.cpus() != s.vcpu(m.vcpu()).cpus()) fail(n + ": locked member cpus " + m.cpus() + " != its vcpu's");
      }
      auto mc = CpuSet::parse(m.cpus());
      if (!mc || !mc->is_subset_of(*cpus)) fail(n + ": member cpus " + m.cpus() + " outside " + s.cpus());
    }
    if (s.spec().locked()) {
      for (int i = 0; i < s.vcpu_size(); ++i) {
        if (per_vcpu[i] != s.vcpu(i).members()) fail(n + ": vcpu " + std::to_string(i) + " count is off");
      }
    }
  }
  const v1::ListGangsResponse g = e.list_gangs("");
  for (const auto& gang : g.gangs()) {
    auto it = by_name.find(gang.spec().scheduler());
    if (it == by_name.end()) fail("gang " + gang.spec().name() + " of a scheduler that is gone: " + gang.spec().scheduler());
    for (const auto& gm : gang.members()) {
      bool found = false;
      for (const auto& m : it->second->members()) found |= m.pid() == gm.pid() && m.tid() == gm.tid();
      if (!found) fail("gang " + gang.spec().scheduler() + "/" + gang.spec().name() + " holds pid " + std::to_string(gm.pid()) +
                       " that is not a member of its scheduler");
    }
  }
}

// What a restart must bring back: every scheduler's spec and members.
std::string essence(const v1::ListSchedulersResponse& l) {
  std::string out;
  for (const auto& s : l.schedulers()) {
    out += s.spec().name() + " pool=" + s.spec().pool() + " vcpus=" + std::to_string(s.spec().vcpus()) +
           " locked=" + std::to_string(s.spec().locked()) + " lwktpri=" + std::to_string(s.spec().lwktpri()) +
           " members=";
    for (const auto& m : s.members()) out += std::to_string(m.pid()) + ",";
    out += "\n";
  }
  return out;
}

// A locked member bound without asking for a vcpu lands on one of the
// least loaded vcpus, counted before the bind.
void check_placement(const v1::Scheduler& before, const v1::BindResponse& r, bool was_member) {
  if (!before.spec().locked() || was_member || before.vcpu_size() == 0) return;
  int least = before.vcpu(0).members();
  for (const auto& v : before.vcpu()) least = std::min(least, v.members());
  const int got = r.member().vcpu();
  if (got < 0 || got >= before.vcpu_size()) fail("bound to vcpu " + std::to_string(got));
  if (before.vcpu(got).members() != least) {
    fail(before.spec().name() + ": bound to vcpu " + std::to_string(got) + " holding " +
         std::to_string(before.vcpu(got).members()) + " members while one held " + std::to_string(least));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  init_once();
  if (g_dir.empty()) return 0;
  FuzzedDataProvider in(data, size);
  const std::string state = g_dir + "/state";
  std::error_code ec;
  std::filesystem::remove_all(state, ec);
  std::filesystem::create_directories(state);
  ::chmod(state.c_str(), 0755);

  glue::Options go;
  go.kind = glue::Kind::kFake;
  go.fake_cpus = "0-3";
  // Now and then one kernel operation fails (for the whole input).
  static const char* faults[] = {"", "", "", "place=1", "apply_group:A =28", "remove_group=16", "capture_origin=3",
                                 "restore=1", "join_gang=12", "leave_gang=1", "remove_gang=16", "join_group=22"};
  go.fake_fail = faults[in.ConsumeIntegralInRange<size_t>(0, std::size(faults) - 1)];
  auto glue = glue::make_glue(go);
  if (!glue) fail("fake glue: " + glue.status().message());
  asio::io_context io;
  daemon::EngineOptions eo;
  eo.state_dir = state;
  eo.max_entities_per_owner = 8;
  eo.max_members_per_entity = 4;
  std::string answered;
  {
    Engine e(io, std::move(*glue), eo);
    if (Status s = e.start(); !s) fail("start: " + s.message());
    const Caller root{1, 0, 0};
    const Caller user{1, 65534, 65534};
    for (int step = 0; step < 48 && in.remaining_bytes() > 0; ++step) {
      const Caller& c = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? user : root;
      switch (in.ConsumeIntegralInRange<int>(0, 11)) {
        case 0:
        case 1: {
          v1::SchedulerSpec s;
          s.set_name(pick_name(in));
          s.set_pool(pick_pool(in));
          s.set_vcpus(in.ConsumeIntegralInRange<int>(-1, 9));
          if (in.ConsumeBool()) s.set_lwktpri(in.ConsumeIntegralInRange<int>(-1, 33));
          s.set_locked(in.ConsumeBool());
          s.set_exclusive(in.ConsumeIntegralInRange<int>(0, 4) == 0);
          (void)e.create(c, s);
          break;
        }
        case 2: {
          v1::SchedulerSpec s;
          s.set_name(pick_name(in));
          std::vector<std::string> mask;
          if (in.ConsumeBool()) {
            s.set_pool(pick_pool(in));
            mask.push_back("pool");
          }
          if (in.ConsumeBool()) {
            s.set_vcpus(in.ConsumeIntegralInRange<int>(-1, 9));
            mask.push_back("vcpus");
          }
          if (in.ConsumeBool()) {
            s.set_locked(in.ConsumeBool());
            mask.push_back("locked");
          }
          if (in.ConsumeBool()) {
            s.set_lwktpri(in.ConsumeIntegralInRange<int>(0, 31));
            mask.push_back("lwktpri");
          }
          if (in.ConsumeIntegralInRange<int>(0, 9) == 0) mask.push_back(in.ConsumeRandomLengthString(8));
          (void)e.update(c, s, mask);
          break;
        }
        case 3:
          (void)e.destroy(c, pick_name(in), in.ConsumeBool());
          break;
        case 4:
        case 5: {
          v1::BindRequest b;
          b.set_name(pick_name(in));
          b.set_pid(pick_pid(in));
          if (in.ConsumeIntegralInRange<int>(0, 4) == 0) b.set_vcpu(in.ConsumeIntegralInRange<int>(-1, 9));
          auto before = e.get(b.name());
          bool was_member = false;
          if (before) {
            for (const auto& m : before->members()) was_member |= m.pid() == b.pid() && m.tid() == 0;
          }
          auto r = e.bind(c, b);
          if (r && before && !b.has_vcpu()) check_placement(*before, *r, was_member);
          break;
        }
        case 6:
          (void)e.unbind(c, pick_pid(in), 0);
          break;
        case 7:
          (void)e.chown(c, pick_name(in), in.ConsumeBool() ? 65534 : 0, std::nullopt);
          break;
        case 8: {
          v1::ApplyRequest a;
          std::string text;
          const int lines = in.ConsumeIntegralInRange<int>(0, 4);
          for (int i = 0; i < lines; ++i) {
            text += "usched " + pick_name(in) + " on " + pick_pool(in) +
                    (in.ConsumeBool() ? " locked" : "") + "\n";
          }
          a.set_config(text);
          a.set_source("fuzz.conf");
          a.set_dry_run(in.ConsumeIntegralInRange<int>(0, 3) == 0);
          a.set_force(in.ConsumeBool());
          (void)e.apply(c, a);
          break;
        }
        case 9: {
          v1::GangSpec g;
          const auto gn = gang_names(in);
          g.set_scheduler(gn[0]);
          g.set_name(gn[1]);
          g.set_width(in.ConsumeIntegralInRange<int>(0, 5));
          (void)e.create_gang(c, g);
          break;
        }
        case 10: {
          const auto gn = gang_names(in);
          if (in.ConsumeBool()) {
            v1::AddGangMemberRequest r;
            r.set_scheduler(gn[0]);
            r.set_name(gn[1]);
            r.set_pid(pick_pid(in));
            (void)e.add_gang_member(c, r);
          } else {
            v1::RemoveGangMemberRequest r;
            r.set_scheduler(gn[0]);
            r.set_name(gn[1]);
            r.set_pid(pick_pid(in));
            (void)e.remove_gang_member(c, r);
          }
          break;
        }
        case 11: {
          const auto gn = gang_names(in);
          (void)e.destroy_gang(c, gn[0], gn[1]);
          break;
        }
      }
      io.poll();  // what the requests posted (cgroup moves, gang turns)
      check(e);
    }
    answered = essence(e.list());
    e.stop(false);
  }
  // A restart on the same state brings back exactly what was answered.
  go.fake_fail = "";
  auto glue2 = glue::make_glue(go);
  if (!glue2) fail("fake glue: " + glue2.status().message());
  asio::io_context io2;
  Engine again(io2, std::move(*glue2), eo);
  if (Status s = again.start(); !s) fail("restart: " + s.message());
  if (essence(again.list()) != answered) {
    fail("after a restart:\n" + essence(again.list()) + "instead of\n" + answered);
  }
  again.stop(false);
  return 0;
}
