// Barrier crossings per second of 2 gangs x 2 workers spinning on a shared
// barrier, on this machine's CPUs: gang scheduled by usched (cgroup freezer,
// quanta 5/10/20/50 ms) versus the same programs under plain Linux, in one
// run, plus one gang alone (the limit: a gang that has the machine half the
// time should make half of it). Workers are threads of one process (the
// VM-like case) or, with --processes, one process each (plain Linux does
// better there: the kernel spreads processes, but packs a new process's
// threads next to each other).
//
//   sudo ./build/bench/gang_barrier [--seconds S] [--rounds N] [--processes] [--sched NAME]
//
// Needs root and the cgroup v1 freezer; runs its own uschedd under a
// private cgroup top (usched-bench-<random>) and removes it afterwards.
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support/harness.h"
#include "usched/client.h"

namespace {

using namespace std::chrono_literals;
using usched::test::CmdResult;
using usched::test::Daemon;
using usched::test::run;

constexpr int kWorkers = 2;

// One gang's barrier, in shared memory so that process workers share it.
struct alignas(64) Shared {
  std::atomic<int> go{0};     // 1: run, 2: stop
  std::atomic<int> ready{0};  // workers started
  alignas(64) std::atomic<int> arrived{0};
  alignas(64) std::atomic<unsigned> sense{0};
  alignas(64) std::atomic<unsigned long long> crossings{0};
};

// Sense-reversing spin barrier: the last to arrive flips the sense.
void worker(Shared* s) {
  s->ready.fetch_add(1);
  while (s->go.load(std::memory_order_acquire) == 0) {}
  unsigned local = 0;
  unsigned long long n = 0;
  while (s->go.load(std::memory_order_relaxed) == 1) {
    local ^= 1u;
    if (s->arrived.fetch_add(1, std::memory_order_acq_rel) == kWorkers - 1) {
      s->arrived.store(0, std::memory_order_relaxed);
      s->sense.store(local, std::memory_order_release);
    } else {
      while (s->sense.load(std::memory_order_acquire) != local) {
        if (s->go.load(std::memory_order_relaxed) != 1) break;
      }
    }
    ++n;
  }
  s->crossings.fetch_add(n);
}

struct Gang {
  Shared* shm = nullptr;
  std::vector<pid_t> pids;  // one process with kWorkers threads, or kWorkers processes
};

// rr: the workers run at SCHED_RR 1, as members of REAL (lwktpri 8) do,
// so that plain Linux is measured in the same class as the gangs.
bool g_rr = false;

Gang spawn(bool processes) {
  Gang g;
  void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  g.shm = new (p) Shared();
  const int procs = processes ? kWorkers : 1;
  for (int i = 0; i < procs; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::alarm(120);  // bounded whatever happens to the driver
      if (g_rr) {
        sched_param sp{};
        sp.sched_priority = 1;
        ::sched_setscheduler(0, SCHED_RR, &sp);
      }
      if (processes) {
        worker(g.shm);
      } else {
        std::vector<std::thread> ts;
        for (int t = 0; t < kWorkers; ++t) ts.emplace_back(worker, g.shm);
        for (auto& t : ts) t.join();
      }
      ::_exit(0);
    }
    g.pids.push_back(pid);
  }
  while (g.shm->ready.load() < kWorkers) std::this_thread::sleep_for(1ms);
  return g;
}

// Runs the gangs for `secs`, returns crossings/s of each.
std::vector<double> measure(std::vector<Gang>& gangs, double secs) {
  for (auto& g : gangs) g.shm->go.store(1, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(secs));
  std::vector<double> out;
  for (auto& g : gangs) {
    g.shm->go.store(2);
    for (pid_t p : g.pids) ::waitpid(p, nullptr, 0);
    out.push_back(static_cast<double>(g.shm->crossings.load()) / secs);
    ::munmap(g.shm, sizeof(Shared));
  }
  gangs.clear();
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

CmdResult cli(const Daemon& d, std::vector<std::string> a) {
  CmdResult r = d.cli(a, {.timeout = 10s});
  if (r.exit_code != 0) std::fprintf(stderr, "usched %s: %s\n", a[0].c_str(), r.err.c_str());
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  double secs = 2.0;
  int rounds = 3;
  bool processes = false;
  std::string sched = "NORM";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) secs = std::atof(argv[++i]);
    else if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else if (a == "--processes") processes = true;
    else if (a == "--sched" && i + 1 < argc) sched = argv[++i];
    else {
      std::fprintf(stderr, "usage: gang_barrier [--seconds S] [--rounds N] [--processes] [--sched NAME]\n");
      return 2;
    }
  }
  g_rr = sched == "REAL";
  if (::geteuid() != 0) {
    std::fprintf(stderr, "gang_barrier: needs root (cgroup freezer)\n");
    return 1;
  }
  const std::string top = "usched-bench-" + usched::test::random_suffix();
  usched::test::TempDir state;
  Daemon d({"--cgroup-top", top, "--no-config", "--cleanup-on-exit"}, state.path());
  if (!d.start()) {
    std::fprintf(stderr, "uschedd did not start:\n%s\n", d.log().c_str());
    return 1;
  }
  const int quanta[] = {5, 10, 20, 50};
  std::printf("gang_barrier: 2 gangs x %d %s on a spin barrier, %.1f s per run, median of %d rounds, scheduler %s\n",
              kWorkers, processes ? "processes" : "threads", secs, rounds, sched.c_str());

  auto add = [&](const std::string& gang, const Gang& g) {
    for (pid_t p : g.pids) cli(d, {"gang", "add", sched + "/" + gang, "--pid", std::to_string(p)});
  };
  std::vector<double> plain_a, plain_b, alone;
  std::map<int, std::vector<double>> ga, gb, sw_over;
  for (int r = 0; r < rounds; ++r) {
    {  // plain Linux
      std::vector<Gang> gs{spawn(processes), spawn(processes)};
      auto v = measure(gs, secs);
      plain_a.push_back(v[0]);
      plain_b.push_back(v[1]);
    }
    {  // one gang alone under usched (never frozen): the limit
      cli(d, {"gang", "create", sched + "/solo"});
      std::vector<Gang> gs{spawn(processes)};
      add("solo", gs[0]);
      alone.push_back(measure(gs, secs)[0]);
      cli(d, {"gang", "destroy", sched + "/solo"});
    }
    for (int q : quanta) {
      cli(d, {"gang", "create", sched + "/a", "--quantum", std::to_string(q)});
      cli(d, {"gang", "create", sched + "/b", "--quantum", std::to_string(q)});
      std::vector<Gang> gs{spawn(processes), spawn(processes)};
      add("a", gs[0]);
      add("b", gs[1]);
      auto v = measure(gs, secs);
      // Switch overhead: the freeze+thaw latency per quantum, from the stats.
      auto l = usched::Client::connect(d.socket());
      if (l) {
        auto lg = (*l)->list_gangs(sched);
        if (lg && lg->gangs_size() > 0) {
          double lat = 0;
          for (const auto& g : lg->gangs())
            lat = std::max(lat, g.stats().freeze_latency_us_avg() + g.stats().thaw_latency_us_avg());
          sw_over[q].push_back(lat / (q * 1000.0));
        }
      }
      ga[q].push_back(v[0]);
      gb[q].push_back(v[1]);
      cli(d, {"gang", "destroy", sched + "/a"});
      cli(d, {"gang", "destroy", sched + "/b"});
    }
  }
  const double pa = median(plain_a), pb = median(plain_b), lim = median(alone) / 2;
  std::printf("plain Linux:          gang a %12.0f /s   gang b %12.0f /s\n", pa, pb);
  std::printf("one gang alone:       %12.0f /s  (limit for half the time: %.0f /s)\n", median(alone), lim);
  std::printf("%-8s %14s %14s %12s %12s %10s %14s\n", "quantum", "gang a /s", "gang b /s", "vs plain", "vs limit",
              "a/b", "switch/quantum");
  for (int q : quanta) {
    const double a = median(ga[q]), b = median(gb[q]);
    const double plain = std::max(1.0, (pa + pb) / 2);
    std::printf("%5d ms %14.0f %14.0f %11.0fx %12.3f %10.3f %13.1f%%\n", q, a, b, (a + b) / 2 / plain,
                lim > 0 ? (a + b) / 2 / lim : 0, b > 0 ? a / b : 0, 100 * median(sw_over[q]));
  }
  d.stop(SIGTERM);
  return 0;
}
