//! Item 1 of the performance issue, per freezer back end: what one gang
//! switch costs the daemon, i.e. a confirmed freeze (write, then wait for
//! the kernel to say FROZEN / "frozen 1") of the outgoing gang, then the
//! thaw of the incoming one, as the daemon orders them; two gangs of two
//! spinning processes, through the glue the daemon uses. cgroup v1 freezer
//! (a real v1 glue in a private subtree) and cgroup v2 cgroup.freeze (the v2
//! back end on the v2 hierarchy, which needs no controller to freeze) are
//! measured in alternating rounds, a quantum's pause between operations.
//! Needs root and at least one of the two (exit 77 otherwise).
#include <sched.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "support/bench_util.h"
#include "support/kernel.h"
#include "usched/glue/glue.h"

using namespace usched;
using namespace usched::bench;
using namespace std::chrono_literals;

namespace {

struct Backend {
  std::string name, top;
  std::unique_ptr<glue::Glue> glue;
  std::vector<std::unique_ptr<test::Child>> kids;
  std::vector<double> freeze, thaw;
};

const std::string kTop = "usched-bench-freezer-" + test::random_suffix();

std::unique_ptr<Backend> make_v1() {
  if (!std::filesystem::exists("/sys/fs/cgroup/freezer/tasks")) return nullptr;
  auto b = std::make_unique<Backend>();
  b->name = "v1";
  glue::Options o;
  o.kind = glue::Kind::kCgroupV1;
  o.top = kTop;
  auto g = glue::make_glue(o);
  if (!g) die("v1 glue: " + g.status().message());
  b->glue = std::move(*g);
  if (Status s = b->glue->setup(); !s) die("v1 setup: " + s.message());
  auto cpus = b->glue->online_cpus();
  if (!cpus) die(cpus.status().message());
  if (Status s = b->glue->apply_group("vm", glue::GroupSettings{*cpus, ClassParams{}}); !s) die(s.message());
  return b;
}

std::unique_ptr<Backend> make_v2() {
  const std::string root = test::cgroup2_mount();
  if (root.empty()) return nullptr;
  // The entity and its members leaf, as the back end's setup would make
  // them minus the controllers a hybrid machine's v2 hierarchy lacks.
  for (const std::string& d : {kTop, kTop + "/vm", kTop + "/vm/@members"})
    if (::mkdir((root + "/" + d).c_str(), 0755) != 0) die("mkdir " + root + "/" + d + ": " + std::strerror(errno));
  if (!std::filesystem::exists(root + "/" + kTop + "/vm/cgroup.freeze")) return nullptr;
  auto b = std::make_unique<Backend>();
  b->name = "v2";
  glue::Options o;
  o.kind = glue::Kind::kCgroupV2;
  o.cgroup_root = root;
  o.top = kTop;
  auto g = glue::make_glue(o);
  if (!g) die("v2 glue: " + g.status().message());
  b->glue = std::move(*g);
  return b;
}

void cleanup(std::vector<std::unique_ptr<Backend>>& bs) {
  for (auto& b : bs) {
    (void)b->glue->thaw_all();
    for (auto& k : b->kids) k->kill();
  }
  test::remove_cgroup_top(kTop);
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, 100);
  if (::geteuid() != 0) {
    std::puts("SKIP freezer: needs root");
    return 77;
  }
  std::vector<std::unique_ptr<Backend>> bs;
  if (auto b = make_v1()) bs.push_back(std::move(b));
  if (auto b = make_v2()) bs.push_back(std::move(b));
  if (bs.empty()) {
    test::remove_cgroup_top(kTop);
    std::puts("SKIP freezer: neither a cgroup v1 freezer nor cgroup.freeze on a v2 hierarchy");
    return 77;
  }
  std::printf("# %zu back ends, 2 gangs of 2 spinning processes, %d rounds x %d switches, 5 ms quantum\n",
              bs.size(), args.rounds, 2 * args.iters);
  for (auto& b : bs) {
    for (const char* gang : {"a", "b"}) {
      for (int i = 0; i < 2; ++i) {
        // Bounded: 60 s of CPU at most, whatever happens to the benchmark.
        // One per CPU, as the daemon spreads a gang's members over its vcpus.
        b->kids.push_back(std::make_unique<test::Child>(std::vector<std::string>{
            "taskset", "-c", std::to_string(i % 2), "sh", "-c", "ulimit -t 60; while :; do :; done"}));
        if (Status s = b->glue->join_gang("vm", gang, b->kids.back()->pid(), 0); !s) {
          cleanup(bs);
          die(b->name + " join_gang: " + s.message());
        }
      }
    }
    if (Status s = b->glue->freeze_gang("vm", "b", true); !s) {
      cleanup(bs);
      die(b->name + ": " + s.message());
    }
  }
  // The daemon's strand switches gangs at SCHED_RR above every member
  // (daemon/gang.cc, raise_priority): so does this thread, else the
  // confirmation polls would wait behind the spinners. It only ever sleeps
  // or polls, so it cannot starve the machine.
  sched_param rr{};
  rr.sched_priority = 25;
  if (::sched_setscheduler(0, SCHED_RR, &rr) != 0) std::printf("# warning: no SCHED_RR: %s\n", std::strerror(errno));
  std::this_thread::sleep_for(50ms);
  for (int r = 0; r < args.rounds; ++r) {
    for (auto& b : bs) {
      for (int i = 0; i < 2 * args.iters; ++i) {
        const char* out = i % 2 ? "b" : "a";
        const char* in = i % 2 ? "a" : "b";
        double t0 = now_us();
        Status f = b->glue->freeze_gang("vm", out, true);
        b->freeze.push_back(now_us() - t0);
        t0 = now_us();
        Status t = b->glue->freeze_gang("vm", in, false);
        b->thaw.push_back(now_us() - t0);
        if (!f || !t) {
          cleanup(bs);
          die(b->name + ": " + (!f ? f.message() : t.message()));
        }
        std::this_thread::sleep_for(5ms);  // a quantum
      }
    }
  }
  for (auto& b : bs) {
    const std::string n = "freezer." + b->name;
    const std::string what = b->name == "v1" ? "(cgroup v1 freezer.state, FROZEN confirmed)"
                                             : "(cgroup v2 cgroup.freeze, cgroup.events confirmed)";
    result(n + ".freeze.p50", percentile(b->freeze, 50), "us", what);
    result(n + ".freeze.p99", percentile(b->freeze, 99), "us");
    result(n + ".thaw.p50", percentile(b->thaw, 50), "us");
    result(n + ".thaw.p99", percentile(b->thaw, 99), "us");
  }
  cleanup(bs);
  if (std::filesystem::exists("/sys/fs/cgroup/freezer/" + kTop)) die("cgroup left behind: " + kTop);
  return 0;
}
