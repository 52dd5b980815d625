//! Two QEMU guests (TCG, 2 vCPUs each, Debian's kernel and the loop-guest
//! initramfs, tests/support/vm.h) on this machine's CPUs, three ways:
//! bound to one scheduler with no gangs, and as two gangs with their vCPU
//! threads picked by name (--threads 'CPU */*') at 100 ms and 20 ms quanta.
//! Per way: boot time to three ticks each, ticks per second per guest,
//! and, sampled every 5 ms from schedstat for --seconds, the share of
//! intervals where both guests' vCPUs ran (what gangs exist to prevent)
//! and where a guest ran with both its vCPUs together; for gangs also the
//! daemon's co-run, skew and freeze latency. Needs root and the cgroup v1
//! freezer (exit 77 otherwise). `--quick` is not offered: a guest boot
//! takes 15-60 s here.
#include <cstring>
#include <thread>

#include "support/bench_util.h"
#include "support/kernel.h"
#include "support/vm.h"
#include "usched/client.h"

using namespace usched;
using namespace std::chrono_literals;

namespace {

// The guests alive, killed by pid before a failure exits (exit() runs no
// destructors).
std::vector<test::Guest*>& live_guests() {
  static std::vector<test::Guest*> v;
  return v;
}

[[noreturn]] void die(const std::string& what) {
  for (test::Guest* g : live_guests()) g->kill();
  bench::die(what);
  std::abort();
}

struct Way {
  std::string name;
  int quantum_ms;  // 0: no gangs
};

struct Sample {
  int intervals = 0, both = 0, ran[2] = {0, 0}, together[2] = {0, 0};
};

Sample sample(const std::vector<test::Guest*>& gs, std::chrono::seconds total) {
  struct V {
    int pid, tid, side;
    uint64_t last;
  };
  std::vector<V> vs;
  for (int i = 0; i < 2; ++i)
    for (int t : gs[i]->vcpus()) vs.push_back({gs[i]->pid(), t, i, test::run_ns(gs[i]->pid(), t)});
  Sample s;
  const auto end = std::chrono::steady_clock::now() + total;
  while (std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(5ms);
    int ran[2] = {0, 0};
    for (V& v : vs) {
      const uint64_t now = test::run_ns(v.pid, v.tid);
      if (now > v.last + 200'000) ran[v.side]++;
      v.last = now;
    }
    ++s.intervals;
    if (ran[0] && ran[1]) ++s.both;
    for (int i = 0; i < 2; ++i) {
      s.ran[i] += ran[i] > 0;
      s.together[i] += ran[i] >= 2;
    }
  }
  return s;
}

void one_way(const Way& w, const test::Images& im, int seconds) {
  test::Daemon d(bench::daemon_flags());
  bench::Owned own(d);
  if (!d.start()) die("uschedd did not start: " + d.log());
  auto cli = [&](std::vector<std::string> a) {
    auto r = d.cli(a, {.timeout = 10s});
    if (r.exit_code != 0) die("usched " + a[0] + ": " + r.err);
  };
  cli({"vms", "on", "cpu*", "lwktpri", "6"});
  test::TempDir out;
  std::vector<std::unique_ptr<test::Guest>> guests;
  for (int i = 0; i < 2; ++i) {
    std::vector<std::string> prefix = {USCHED_CLI_PATH, "--socket", d.socket(), "run", "vms"};
    if (w.quantum_ms > 0) {
      const std::string g = "g" + std::to_string(i + 1);
      cli({"gang", "create", "vms/" + g, "--quantum", std::to_string(w.quantum_ms)});
      for (const char* a : {"--gang", g.c_str(), "--threads", "CPU */*"}) prefix.push_back(a);
    }
    prefix.push_back("--");
    guests.push_back(std::make_unique<test::Guest>("vm" + std::to_string(i + 1), im, out.path(), prefix));
    live_guests().push_back(guests.back().get());
  }
  std::vector<test::Guest*> gs = {guests[0].get(), guests[1].get()};
  const double t0 = bench::now_us();
  if (std::string why = test::Guest::boot_both(*gs[0], *gs[1]); !why.empty()) die(w.name + ": " + why);
  const double boot_s = (bench::now_us() - t0) / 1e6;
  const int tk0[2] = {gs[0]->ticks(), gs[1]->ticks()};
  const double s0 = bench::now_us();
  Sample s = sample(gs, std::chrono::seconds(seconds));
  const double span = (bench::now_us() - s0) / 1e6;
  bench::result("vm " + w.name + " boot (both guests)", boot_s, "s");
  for (int i = 0; i < 2; ++i) {
    bench::result("vm " + w.name + " guest" + std::to_string(i + 1) + " ticks/s",
                  (gs[i]->ticks() - tk0[i]) / span, "1/s");
    bench::result("vm " + w.name + " guest" + std::to_string(i + 1) + " both vCPUs together",
                  s.ran[i] ? 100.0 * s.together[i] / s.ran[i] : 0, "%", "of the 5 ms intervals it ran in");
  }
  bench::result("vm " + w.name + " both guests ran", 100.0 * s.both / std::max(1, s.intervals), "%",
                "of " + std::to_string(s.intervals) + " 5 ms intervals");
  if (w.quantum_ms > 0) {
    auto c = Client::connect(d.socket(), 5s);
    if (!c) die(c.status().message());
    auto l = (*c)->list_gangs("vms");
    if (!l) die(l.status().message());
    for (const auto& g : l->gangs()) {
      const auto& st = g.stats();
      bench::result("vm " + w.name + " " + g.spec().name() + " co-run (daemon)", st.co_run_ratio(), "ratio");
      bench::result("vm " + w.name + " " + g.spec().name() + " skew", st.skew_us() / 1000.0, "ms");
      bench::result("vm " + w.name + " " + g.spec().name() + " freeze", st.freeze_latency_us_avg(), "us", "avg");
    }
  }
  std::fflush(stdout);
  bench::stopped(d);  // thaws every gang before the guests go
  live_guests().clear();
  guests.clear();  // killed by pid
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 10;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = std::atoi(argv[++i]);
  }
  const test::Images im = test::images();
  if (!im.why.empty()) {
    std::printf("SKIP vm: %s\n", im.why.c_str());
    return 77;
  }
  std::printf("# two QEMU guests (TCG, 2 vCPUs, %s), sampled every 5 ms for %d s per way\n",
              im.kernel.c_str(), seconds);
  for (const Way& w : {Way{"no-gangs", 0}, Way{"gangs-100ms", 100}, Way{"gangs-20ms", 20}}) one_way(w, im, seconds);
  return 0;
}
