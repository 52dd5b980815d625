// Item 1 of the performance issue, "Gangs": barrier crossings per second of
// 2 gangs x 2 workers spinning on a shared sense-reversing barrier, on this
// machine's 2 CPUs, gang scheduled by usched versus the same programs under
// plain Linux, in one run (rounds alternate plain, solo, gangs...; medians
// of the rounds). Sections (all by default; --section NAME, repeatable):
//
//   threads    2 workers = 2 threads of one process (the VM-like case);
//              cgroup v1 freezer; plain Linux, one gang alone (the limit:
//              half of it is what a gang that has the machine half the time
//              can make) and 2 gangs at quanta 1, 2, 5, 10, 20, 50, 100 ms.
//              Gives: gangs vs plain (goal >= 1000x), vs limit (>= 0.9 at
//              20 ms, >= 0.85 at 5 ms), a/b (within 10%), and the switch
//              cost as gang/solo = (a + b) / solo.
//   processes  one worker per process; plain Linux, the cgroup v1 freezer
//              and SIGSTOP/SIGCONT (a second uschedd with --glue affinity,
//              which is how SIGSTOP is selected: it stops whole processes),
//              each with its solo limit; the switch cost gang/solo at 1, 2,
//              5, 20, 100 ms (and 10, 50 ms for the v1 freezer).
//   yield      1 us of work per crossing: plain Linux with workers that call
//              sched_yield() while they spin vs usched gangs (no yield) at
//              the default 20 ms quantum (goal >= 1.5x).
//   omp        2 OpenMP jobs (bench_omp_job: Debian gcc's libgomp,
//              OMP_WAIT_POLICY=ACTIVE, 2 threads each, 2 barriers per
//              iteration): plain Linux, each job pinned to a CPU of its own,
//              one job alone (the limit) and 2 gangs at 5, 20, 50 ms. Goals:
//              vs limit >= 0.9 at 20 ms and >= 0.8 at 5 ms, >= 2x plain,
//              >= 20x pinned.
//
// cgroup v2 cgroup.freeze is not measured: on this machine the v2 hierarchy
// has no controllers (the daemon's auto glue picks v1).
//
// Also reports, for plain Linux, how often both workers of a gang sat on the
// same CPU (sampled from /proc/PID/task/TID/stat every 10 ms): the layout
// the "plain Linux collapses" expectation assumes.
//
//   sudo bench_gang [--quick] [--seconds S] [--rounds N] [--section NAME] [--sched NAME]
//                   [--work-us US] [--start spin|sleep]
//
// --start: how workers wait between their start and the measurement
// (spin, the default, like a program that computes from its start; sleep,
// forced under --sched REAL). It changes where the kernel puts them.
//
// Bounded: every worker has an alarm; the daemons run with
// --cleanup-on-exit in a private cgroup top (usched-bench-<random>) and are
// stopped with SIGTERM (which thaws every gang) on every exit path.
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/barrier.h"
#include "support/bench_util.h"
#include "usched/client.h"

namespace {

using namespace std::chrono_literals;
using usched::bench::median;
using usched::bench::now_us;
using usched::bench::result;
using usched::test::Daemon;

using usched::bench::kWorkers;
using usched::bench::Shared;
using usched::bench::spin_work;

// Sense-reversing spin barrier: the last to arrive flips the sense.
void worker(Shared* s) {
  s->ready.fetch_add(1);
  // Spin until the start, as a real program computes from its start (the
  // kernel's load balancer places the spinners meanwhile); or sleep
  // (--start sleep, and always under SCHED_RR, where spinners would starve
  // the driver and the daemon while they set the run up).
  while (s->go.load(std::memory_order_acquire) == 0)
    if (s->sleep_start) ::usleep(200);
  unsigned local = 0;
  unsigned long long n = 0;
  const int work = s->work_iters;
  const bool yield = s->yield;
  while (s->go.load(std::memory_order_relaxed) == 1) {
    if (work) spin_work(work);
    local ^= 1u;
    if (s->arrived.fetch_add(1, std::memory_order_acq_rel) == kWorkers - 1) {
      s->arrived.store(0, std::memory_order_relaxed);
      s->sense.store(local, std::memory_order_release);
    } else {
      while (s->sense.load(std::memory_order_acquire) != local) {
        if (s->go.load(std::memory_order_relaxed) != 1) break;
        if (yield) ::sched_yield();
      }
    }
    ++n;
  }
  s->crossings.fetch_add(n);
  s->done.fetch_add(1);
  // Stay a member until the driver has destroyed the gangs: a member that
  // exits while its gang is in the matrix changes the matrix mid-rotation.
  while (s->go.load(std::memory_order_acquire) == 2) ::usleep(500);
}

struct Opts {
  double secs = 1.0;
  int rounds = 5;
  bool quick = false;
  std::string sched = "NORM";
  double work_us = 1.0;
  bool sleep_start = false;
  std::set<std::string> sections;
};
Opts g_opt;
unsigned g_alarm = 60;

// Workers alive, killed at exit (die() exits after stopping the daemons,
// which thaws every gang first); the private cgroup tops, removed at exit
// if a daemon could not (it crashed): thawed, emptied, removed.
std::set<pid_t> g_live;
std::vector<std::string> g_tops;
void thaw_and_remove(const std::string& dir, bool remove) {
  if (::access(dir.c_str(), F_OK) != 0) return;
  DIR* d = ::opendir(dir.c_str());
  if (d) {
    std::vector<std::string> subs;
    while (dirent* e = ::readdir(d))
      if (e->d_type == DT_DIR && e->d_name[0] != '.') subs.push_back(dir + "/" + e->d_name);
    ::closedir(d);
    for (const auto& sd : subs) thaw_and_remove(sd, remove);
  }
  if (std::FILE* f = std::fopen((dir + "/freezer.state").c_str(), "w")) {
    std::fputs("THAWED", f);
    std::fclose(f);
  }
  if (remove) ::rmdir(dir.c_str());
}
void kill_live() {
  for (const auto& t : g_tops) thaw_and_remove("/sys/fs/cgroup/freezer/" + t, false);
  for (pid_t p : g_live) {
    ::kill(p, SIGCONT);  // a SIGSTOP gang
    ::kill(p, SIGKILL);
  }
  for (pid_t p : g_live) {
    for (int i = 0; i < 500 && ::waitpid(p, nullptr, WNOHANG) == 0; ++i) ::usleep(10'000);
  }
  g_live.clear();
  for (const auto& t : g_tops)
    for (const char* h : {"freezer", "cpu", "cpuset", "cpuacct"}) {
      const std::string dir = std::string("/sys/fs/cgroup/") + h + "/" + t;
      if (::access(dir.c_str(), F_OK) == 0) {
        std::fprintf(stderr, "bench_gang: removing %s left by a daemon that did not clean up\n", dir.c_str());
        thaw_and_remove(dir, true);
      }
    }
}

struct Gang {
  Shared* shm = nullptr;
  std::vector<pid_t> pids;  // one process with kWorkers threads, or kWorkers processes
  std::vector<int> tids;    // the worker threads
};

std::vector<int> worker_tids(pid_t pid) {
  std::vector<int> out;
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/task").c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    const int tid = std::atoi(e->d_name);
    if (tid > 0 && tid != pid) out.push_back(tid);
  }
  ::closedir(d);
  return out;
}

// The omp section: each gang is an OpenMP job (bench_omp_job) instead.
bool g_omp = false;
std::vector<int> all_tids(pid_t pid);
Gang spawn_omp(int work_iters);

Gang spawn(bool processes, int work_iters, bool yield) {
  if (g_omp) return spawn_omp(work_iters);
  Gang g;
  void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) usched::bench::die("mmap failed");
  g.shm = new (p) Shared();
  g.shm->work_iters = work_iters;
  g.shm->yield = yield;
  g.shm->sleep_start = g_opt.sleep_start;
  const int procs = processes ? kWorkers : 1;
  for (int i = 0; i < procs; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::alarm(g_alarm);  // bounded whatever happens to the driver
      if (g_opt.sched == "REAL") {
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
    if (pid < 0) usched::bench::die("fork failed");
    g.pids.push_back(pid);
    g_live.insert(pid);
  }
  while (g.shm->ready.load() < kWorkers) std::this_thread::sleep_for(1ms);
  if (processes) {
    g.tids.assign(g.pids.begin(), g.pids.end());
  } else {
    g.tids = worker_tids(g.pids[0]);
  }
  return g;
}

std::vector<int> all_tids(pid_t pid) {
  std::vector<int> out = worker_tids(pid);
  out.push_back(pid);
  return out;
}

// An OpenMP job of kWorkers threads, driven through a memfd holding the
// same Shared block; its environment is the caller's without OMP_*, plus
// the runtime settings of the benchmark.
Gang spawn_omp(int work_iters) {
  Gang g;
  const int fd = ::memfd_create("usched-bench-omp", 0);
  if (fd < 0 || ::ftruncate(fd, sizeof(Shared)) != 0) usched::bench::die("memfd for an OpenMP job failed");
  void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) usched::bench::die("mmap failed");
  g.shm = new (p) Shared();
  g.shm->work_iters = work_iters;
  g.shm->sleep_start = g_opt.sleep_start;
  const std::string job = BENCH_OMP_JOB, fds = std::to_string(fd), alarm_s = std::to_string(g_alarm);
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "OMP_", 4) != 0) env.emplace_back(*e);
  env.push_back("OMP_NUM_THREADS=" + std::to_string(kWorkers));
  env.push_back("OMP_WAIT_POLICY=ACTIVE");
  env.push_back("OMP_PROC_BIND=false");
  std::vector<char*> envp, argv;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args{job, "--shm-fd", fds, "--alarm", alarm_s};
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (g_opt.sched == "REAL") {
      sched_param sp{};
      sp.sched_priority = 1;
      ::sched_setscheduler(0, SCHED_RR, &sp);
    }
    ::execve(job.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(fd);
  if (pid < 0) usched::bench::die("fork failed");
  g.pids.push_back(pid);
  g_live.insert(pid);
  const double until = now_us() + 10e6;
  while (g.shm->ready.load() < kWorkers) {
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      g_live.erase(pid);
      usched::bench::die(job + " exited (status " + std::to_string(st) + ") before its team was ready");
    }
    if (now_us() > until) usched::bench::die(job + ": no team within 10 s");
    std::this_thread::sleep_for(1ms);
  }
  g.tids = all_tids(pid);  // the master thread works too
  return g;
}

// The CPU a task last ran on: field 39 of /proc/PID/task/TID/stat.
int cpu_of(int pid, int tid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t rp = s.rfind(')');
  if (rp == std::string::npos) return -1;
  std::istringstream in(s.substr(rp + 2));
  std::string field;
  for (int i = 3; i <= 39 && in >> field; ++i)
    if (i == 39) return std::atoi(field.c_str());
  return -1;
}

struct Layout {
  long samples = 0, same_cpu = 0;  // gang-samples with both workers on one CPU
  long migrations = 0;
};

// Runs the gangs for g_opt.secs; returns crossings/s of each. `stop_hook`
// runs after the stop flag is set and before the workers are reaped (it
// destroys the gangs, which thaws them). `layout`: sample worker CPUs.
std::vector<double> measure(std::vector<Gang>& gangs, const std::function<void()>& stop_hook, Layout* layout) {
  const double t0 = now_us();
  for (auto& g : gangs) g.shm->go.store(1, std::memory_order_release);
  std::map<int, int> last_cpu;
  if (layout) {
    while (now_us() - t0 < g_opt.secs * 1e6) {
      std::this_thread::sleep_for(10ms);
      for (auto& g : gangs) {
        const pid_t owner = g.pids[0];
        std::set<int> cpus;
        for (size_t i = 0; i < g.tids.size(); ++i) {
          const int tid = g.tids[i];
          const int c = cpu_of(g.pids.size() > 1 ? g.pids[i] : owner, tid);
          cpus.insert(c);
          auto it = last_cpu.find(tid);
          if (it != last_cpu.end() && it->second != c) ++layout->migrations;
          last_cpu[tid] = c;
        }
        ++layout->samples;
        if (cpus.size() == 1) ++layout->same_cpu;
      }
    }
  } else {
    std::this_thread::sleep_for(std::chrono::duration<double>(g_opt.secs));
  }
  for (auto& g : gangs) g.shm->go.store(2);
  const double secs = (now_us() - t0) / 1e6;
  // A frozen gang publishes once the daemon thaws it (within a quantum).
  const double until = now_us() + 10e6;
  for (auto& g : gangs)
    while (g.shm->done.load() < kWorkers) {
      if (now_us() > until) usched::bench::die("workers did not stop within 10 s (a gang left frozen?)");
      std::this_thread::sleep_for(1ms);
    }
  if (stop_hook) stop_hook();
  for (auto& g : gangs) g.shm->go.store(3, std::memory_order_release);
  std::vector<double> out;
  for (auto& g : gangs) {
    for (pid_t p : g.pids) {
      ::waitpid(p, nullptr, 0);
      g_live.erase(p);
    }
    // Every worker counts each crossing it took part in.
    out.push_back(static_cast<double>(g.shm->crossings.load()) / kWorkers / secs);
    ::munmap(g.shm, sizeof(Shared));
  }
  gangs.clear();
  return out;
}

// A uschedd and a client connection to it.
struct Usched {
  std::string label;
  std::unique_ptr<Daemon> d;
  std::unique_ptr<usched::bench::Owned> owned;
  std::unique_ptr<usched::Client> c;
  std::string freezer;

  Usched(const std::string& lbl, std::vector<std::string> flags) : label(lbl) {
    flags.push_back("--no-config");
    for (size_t i = 0; i + 1 < flags.size(); ++i)
      if (flags[i] == "--cgroup-top") g_tops.push_back(flags[i + 1]);
    d = std::make_unique<Daemon>(flags);
    owned = std::make_unique<usched::bench::Owned>(*d);
    if (!d->start()) usched::bench::die("uschedd (" + label + ") did not start:\n" + d->log());
    auto cl = usched::Client::connect(d->socket());
    if (!cl) usched::bench::die("connect: " + cl.status().message());
    c = std::move(*cl);
  }
  ~Usched() {
    c.reset();
    if (d) usched::bench::stopped(*d);
  }
  void check(const usched::Status& s, const std::string& what) {
    if (!s) usched::bench::die(label + ": " + what + ": " + s.message() + "\n" + d->log());
  }
  void create(const std::string& gang, int quantum) {
    usched::v1::GangSpec spec;
    spec.set_scheduler(g_opt.sched);
    spec.set_name(gang);
    spec.set_quantum_ms(quantum);
    auto r = c->create_gang(spec);
    check(r.status(), "create gang " + gang);
  }
  void add(const std::string& gang, const Gang& g) {
    for (pid_t p : g.pids) check(c->add_gang_member(g_opt.sched, gang, p, 0).status(), "add to gang " + gang);
  }
  void destroy(const std::string& gang) { check(c->destroy_gang(g_opt.sched, gang), "destroy gang " + gang); }
  // Largest freeze + thaw latency (us, daemon stats) of the scheduler's gangs.
  double switch_latency_us() {
    auto lg = c->list_gangs(g_opt.sched);
    double lat = 0;
    if (lg) {
      for (const auto& s : lg->schedulers()) freezer = s.freezer();
      for (const auto& g : lg->gangs())
        lat = std::max(lat, g.stats().freeze_latency_us_avg() + g.stats().thaw_latency_us_avg());
    }
    return lat;
  }
};

int g_work_iters = 0;  // iterations of spin_work per --work-us

void calibrate() {
  // The fastest of a few tries: the least disturbed by other load.
  double best = 1e18;
  const int n = 2'000'000;
  for (int i = 0; i < 5; ++i) {
    const double t0 = now_us();
    volatile unsigned long sink = spin_work(n);
    (void)sink;
    best = std::min(best, now_us() - t0);
  }
  g_work_iters = std::max(1, static_cast<int>(std::lround(g_opt.work_us * n / best)));
}

struct Series {
  std::vector<double> a, b;
  std::vector<double> share;  // plain runs: per round, % of samples with a gang on one CPU
  std::vector<double> lat;
  std::vector<double> solo;  // gang runs: the solo run just before, per round
  Layout layout;
  double sum() const { return median(a) + median(b); }
};

// Pins every worker of gang i to CPU i (sched_setaffinity by tid).
void stack(std::vector<Gang>& gs) {
  for (size_t i = 0; i < gs.size(); ++i) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<int>(i) % std::max(1, static_cast<int>(std::thread::hardware_concurrency())), &set);
    for (int tid : gs[i].tids) ::sched_setaffinity(tid, sizeof set, &set);
  }
}

// One plain-Linux run of 2 gangs; stacked: each gang's workers pinned to
// one CPU of their own (the layout in which a spinning barrier collapses).
void plain_run(Series& s, bool processes, int work, bool yield, bool stacked = false) {
  std::vector<Gang> gs{spawn(processes, work, yield), spawn(processes, work, yield)};
  if (stacked) stack(gs);
  Layout l;
  auto v = measure(gs, nullptr, &l);
  s.share.push_back(l.samples ? 100.0 * l.same_cpu / l.samples : 0);
  s.layout.samples += l.samples;
  s.layout.same_cpu += l.same_cpu;
  s.layout.migrations += l.migrations;
  s.a.push_back(v[0]);
  s.b.push_back(v[1]);
}

// One gang alone under usched (in the matrix, never frozen): the limit.
void solo_run(Usched& u, Series& s, bool processes, int work) {
  u.create("solo", 20);
  std::vector<Gang> gs{spawn(processes, work, false)};
  u.add("solo", gs[0]);
  if (std::getenv("BENCH_GANG_DEBUG")) {
    std::this_thread::sleep_for(50ms);
    for (size_t i = 0; i < gs[0].tids.size(); ++i) {
      cpu_set_t set;
      CPU_ZERO(&set);
      ::sched_getaffinity(gs[0].tids[i], sizeof set, &set);
      std::printf("# solo tid %d allowed:", gs[0].tids[i]);
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) std::printf(" %d", c);
      std::printf("\n");
    }
  }
  auto v = measure(gs,
                   [&] {
                     if (std::getenv("BENCH_GANG_DEBUG")) {
                       auto lg = u.c->list_gangs(g_opt.sched);
                       if (lg)
                         for (const auto& g : lg->gangs())
                           std::printf("# solo stats: switches %llu frozen_us %llu running_us %llu co_run %.3f\n",
                                       (unsigned long long)g.stats().switches(),
                                       (unsigned long long)g.stats().frozen_us(),
                                       (unsigned long long)g.stats().running_us(), g.stats().co_run_ratio());
                     }
                     u.destroy("solo");
                   },
                   nullptr);
  if (std::getenv("BENCH_GANG_DEBUG")) std::printf("# solo %.0f /s\n", v[0]);
  s.a.push_back(v[0]);
}

// Two gangs taking turns at `quantum` ms, right after one gang alone (the
// limit for this round: the machine drifts, so ratios are taken per round).
void gang_run(Usched& u, Series& s, bool processes, int work, int quantum, Series& solo_all) {
  {
    Series one;
    solo_run(u, one, processes, work);
    s.solo.push_back(one.a[0]);
    solo_all.a.push_back(one.a[0]);
  }
  u.create("a", quantum);
  u.create("b", quantum);
  std::vector<Gang> gs{spawn(processes, work, false), spawn(processes, work, false)};
  u.add("a", gs[0]);
  u.add("b", gs[1]);
  auto v = measure(gs,
                   [&] {
                     s.lat.push_back(u.switch_latency_us());
                     u.destroy("a");
                     u.destroy("b");
                   },
                   nullptr);
  s.a.push_back(v[0]);
  s.b.push_back(v[1]);
}

void print_plain(const char* what, const Series& p) {
  std::printf("%-28s gang a %12.0f /s   gang b %12.0f /s   both workers on one CPU in %.0f%% of %ld samples, %ld migrations\n",
              what, median(p.a), median(p.b),
              p.layout.samples ? 100.0 * p.layout.same_cpu / p.layout.samples : 0.0, p.layout.samples,
              p.layout.migrations);
  std::printf("%-28s", "  per round (a+b)/2, one-CPU share:");
  for (size_t i = 0; i < p.a.size(); ++i) std::printf("  %.0f/s %.0f%%", (p.a[i] + p.b[i]) / 2, p.share[i]);
  std::printf("\n");
}

void ratio_line(const std::string& name, double v, const std::string& goal) {
  std::printf("RATIO  %-34s %12.3f x      %s (median of %d rounds, alternating)\n", name.c_str(), v, goal.c_str(),
              g_opt.rounds);
  std::fflush(stdout);
}

// Prints the gangs table: per quantum a, b, vs plain, vs limit, a/b,
// gang/solo, switch cost per switch (ms), freeze+thaw latency / quantum.
// Which goals the RATIO lines name: the barrier gangs' or the OpenMP jobs'.
enum class Goals { kNone, kBarrier, kOmp };

void print_gangs(const std::string& prefix, const std::vector<int>& quanta, std::map<int, Series>& gs,
                 const Series& plain, const Series& solo, Goals goals) {
  const double pl = std::max(1.0, (median(plain.a) + median(plain.b)) / 2);
  (void)solo;
  // Per round, against the solo run just before the pair; medians of those.
  auto per_round = [](const Series& s, const std::function<double(double, double, double)>& f) {
    std::vector<double> v;
    for (size_t i = 0; i < s.a.size() && i < s.solo.size(); ++i) v.push_back(f(s.a[i], s.b[i], s.solo[i]));
    return median(v);
  };
  auto vs_limit = [&](const Series& s) {
    return per_round(s, [](double a, double b, double so) { return so > 0 ? (a + b) / so : 0; });
  };
  auto a_over_b = [&](const Series& s) {
    return per_round(s, [](double a, double b, double) { return b > 0 ? a / b : 0; });
  };
  std::printf("%-8s %13s %13s %10s %9s %7s %10s %12s %14s\n", "quantum", "gang a /s", "gang b /s", "vs plain",
              "vs limit", "a/b", "gang/solo", "lost/switch", "freeze+thaw/q");
  for (int q : quanta) {
    const Series& s = gs[q];
    const double a = median(s.a), b = median(s.b);
    // (a + b) / 2 over solo / 2 is (a + b) / solo: "vs limit" and gang/solo
    // are the same number, read as a goal or as a switch cost.
    const double gang_solo = vs_limit(s);
    std::printf("%5d ms %13.0f %13.0f %9.1fx %9.3f %7.3f %10.3f %9.2f ms %13.1f%%\n", q, a, b, (a + b) / 2 / pl,
                gang_solo, a_over_b(s), gang_solo, (1 - gang_solo) * q,
                100 * median(s.lat) / (q * 1000.0));
  }
  std::printf("  per round gang/solo:");
  for (int q : quanta) {
    std::printf("  %d ms:", q);
    const Series& s = gs[q];
    for (size_t i = 0; i < s.a.size() && i < s.solo.size(); ++i)
      std::printf(" %.2f", s.solo[i] > 0 ? (s.a[i] + s.b[i]) / s.solo[i] : 0);
  }
  std::printf("\n");
  std::fflush(stdout);
  for (int q : quanta) {
    const Series& s = gs[q];
    const double a = median(s.a), b = median(s.b);
    const std::string n = prefix + ".q" + std::to_string(q);
    result(n + ".a", a, "/s");
    result(n + ".b", b, "/s");
    const bool main_q = q == 5 || q == 20;
    const bool omp = goals == Goals::kOmp, any = goals != Goals::kNone;
    ratio_line(n + ".vs_plain", (a + b) / 2 / pl, any && main_q ? (omp ? "goal >= 2x" : "goal >= 1000x") : "");
    ratio_line(n + ".vs_limit", vs_limit(s),
               (any && q == 20 ? "goal >= 0.9; " : any && q == 5 ? (omp ? "goal >= 0.8; " : "goal >= 0.85; ") : "") +
                   std::string("= gang/solo, switch cost = 1 - this; per round vs the solo run before it"));
    ratio_line(n + ".a_over_b", a_over_b(s), any && main_q ? "goal within 0.9-1.1" : "");
    result(n + ".freeze_thaw_latency", median(s.lat), "us", "(daemon stats)");
  }
}

std::vector<int> pick(std::vector<int> full, std::vector<int> quick) { return g_opt.quick ? quick : full; }

void section_threads() {
  std::printf("\n# threads: 2 gangs x %d threads of one process, cgroup v1 freezer, scheduler %s, %.2f s per run, %d rounds\n",
              kWorkers, g_opt.sched.c_str(), g_opt.secs, g_opt.rounds);
  Usched u("v1", usched::bench::daemon_flags());
  const auto quanta = pick({1, 2, 5, 10, 20, 50, 100}, {5, 20});
  Series plain, stacked, solo;
  std::map<int, Series> gs;
  for (int r = 0; r < g_opt.rounds; ++r) {
    plain_run(plain, false, 0, false);
    plain_run(stacked, false, 0, false, true);
    for (int q : quanta) gang_run(u, gs[q], false, 0, q, solo);
  }
  u.switch_latency_us();
  std::printf("freezer: %s\n", u.freezer.c_str());
  print_plain("plain Linux:", plain);
  print_plain("plain Linux, gang i on cpu i:", stacked);
  std::printf("%-28s %12.0f /s  (limit for half the time: %.0f /s)\n", "one gang alone (usched):", median(solo.a),
              median(solo.a) / 2);
  {
    const double st = std::max(1.0, (median(stacked.a) + median(stacked.b)) / 2);
    result("gang.threads.plain_stacked", st, "/s", "(per gang; each gang's 2 threads pinned to one CPU)");
    for (int q : quanta)
      if (q == 5 || q == 20)
        ratio_line("gang.threads.q" + std::to_string(q) + ".vs_plain_stacked",
                   (median(gs[q].a) + median(gs[q].b)) / 2 / st, "(the collapse the 1000x goal assumes)");
  }
  result("gang.threads.plain", (median(plain.a) + median(plain.b)) / 2, "/s", "(per gang)");
  result("gang.threads.plain_same_cpu_share",
         plain.layout.samples ? 100.0 * plain.layout.same_cpu / plain.layout.samples : 0, "%",
         "(samples with both workers of a gang on one CPU)");
  result("gang.threads.solo", median(solo.a), "/s");
  print_gangs("gang.threads", quanta, gs, plain, solo, Goals::kBarrier);
}

void section_processes() {
  std::printf("\n# processes: 2 gangs x %d processes of one thread, scheduler %s, %.2f s per run, %d rounds\n",
              kWorkers, g_opt.sched.c_str(), g_opt.secs, g_opt.rounds);
  if (g_opt.sched == "REAL")
    std::printf("# warning: 4 SCHED_RR spinners on 2 CPUs starve the driver and the daemons; bounded by the workers' alarm (%u s)\n",
                g_alarm);
  Usched v1("v1", usched::bench::daemon_flags());
  Usched sig("sigstop", {"--glue", "affinity"});
  const auto q_v1 = pick({5, 10, 20, 50}, {20});
  const auto q_sig = pick({1, 2, 5, 20, 100}, {5, 20});
  Series plain, solo_v1, solo_sig;
  std::map<int, Series> g_v1, g_sig;
  for (int r = 0; r < g_opt.rounds; ++r) {
    plain_run(plain, true, 0, false);
    for (int q : q_v1) gang_run(v1, g_v1[q], true, 0, q, solo_v1);
    for (int q : q_sig) gang_run(sig, g_sig[q], true, 0, q, solo_sig);
  }
  v1.switch_latency_us();
  sig.switch_latency_us();
  print_plain("plain Linux:", plain);
  result("gang.processes.plain", (median(plain.a) + median(plain.b)) / 2, "/s", "(per gang)");
  result("gang.processes.plain_same_cpu_share",
         plain.layout.samples ? 100.0 * plain.layout.same_cpu / plain.layout.samples : 0, "%",
         "(samples with both workers of a gang on one CPU)");
  std::printf("-- %s: one gang alone %.0f /s\n", v1.freezer.c_str(), median(solo_v1.a));
  result("gang.processes.v1.solo", median(solo_v1.a), "/s");
  print_gangs("gang.processes.v1", q_v1, g_v1, plain, solo_v1, Goals::kBarrier);
  std::printf("-- %s (uschedd --glue affinity): one gang alone %.0f /s\n", sig.freezer.c_str(), median(solo_sig.a));
  result("gang.processes.sigstop.solo", median(solo_sig.a), "/s");
  print_gangs("gang.processes.sigstop", q_sig, g_sig, plain, solo_sig, Goals::kNone);
}

void section_yield() {
  std::printf("\n# yield: %.1f us of work per crossing (%d iterations); plain Linux with sched_yield() in the spin vs "
              "usched gangs (no yield, 20 ms quantum, cgroup v1 freezer), threads, scheduler %s, %.2f s per run, %d rounds\n",
              g_opt.work_us, g_work_iters, g_opt.sched.c_str(), g_opt.secs, g_opt.rounds);
  Usched u("v1", usched::bench::daemon_flags());
  Series yield, spin, solo;
  std::map<int, Series> gs;
  for (int r = 0; r < g_opt.rounds; ++r) {
    plain_run(yield, false, g_work_iters, true);
    gang_run(u, gs[20], false, g_work_iters, 20, solo);
    plain_run(spin, false, g_work_iters, false);
  }
  print_plain("plain Linux, sched_yield:", yield);
  print_plain("plain Linux, pure spin:", spin);
  const double y = (median(yield.a) + median(yield.b)) / 2, s = (median(spin.a) + median(spin.b)) / 2;
  const double g = (median(gs[20].a) + median(gs[20].b)) / 2;
  std::printf("%-28s gang a %12.0f /s   gang b %12.0f /s\n", "usched gangs, 20 ms:", median(gs[20].a),
              median(gs[20].b));
  std::printf("%-28s %12.0f /s  (limit for half the time: %.0f /s)\n", "one gang alone (usched):", median(solo.a),
              median(solo.a) / 2);
  result("gang.yield.plain_yield", y, "/s", "(per gang)");
  result("gang.yield.plain_spin", s, "/s", "(per gang)");
  result("gang.yield.gangs_q20", g, "/s", "(per gang)");
  result("gang.yield.solo", median(solo.a), "/s");
  ratio_line("gang.yield.gangs_over_plain_yield", y > 0 ? g / y : 0, "goal >= 1.5x");
  ratio_line("gang.yield.gangs_over_plain_spin", s > 0 ? g / s : 0, "");
  {
    std::vector<double> v;
    for (size_t i = 0; i < gs[20].a.size(); ++i)
      v.push_back(gs[20].solo[i] > 0 ? (gs[20].a[i] + gs[20].b[i]) / gs[20].solo[i] : 0);
    ratio_line("gang.yield.gangs_vs_limit", median(v), "(per round vs the solo run before it)");
  }
}

// Two OpenMP jobs (libgomp, OMP_WAIT_POLICY=ACTIVE, kWorkers threads each,
// a barrier-heavy loop) on the machine's CPUs: plain Linux; each job pinned
// to one CPU of its own (what an admin does without usched: `taskset -c i`);
// one job alone in a gang (the limit: a job that has the machine half the
// time makes half of that); two gangs at 5, 20 and 50 ms. Rounds interleave
// them; ratios are per-round medians.
void section_omp() {
  std::printf("\n# omp: 2 OpenMP jobs x %d threads (libgomp, OMP_WAIT_POLICY=ACTIVE, 2 barriers per iteration, "
              "%.1f us of work), cgroup v1 freezer, scheduler %s, %.2f s per run, %d rounds\n",
              kWorkers, g_opt.work_us, g_opt.sched.c_str(), g_opt.secs, g_opt.rounds);
  Usched u("v1", usched::bench::daemon_flags());
  const auto quanta = pick({5, 20, 50}, {5, 20});
  Series plain, pinned, solo;
  std::map<int, Series> gs;
  g_omp = true;
  for (int r = 0; r < g_opt.rounds; ++r) {
    plain_run(plain, false, g_work_iters, false);
    plain_run(pinned, false, g_work_iters, false, true);
    for (int q : quanta) gang_run(u, gs[q], false, g_work_iters, q, solo);
  }
  g_omp = false;
  print_plain("plain Linux:", plain);
  print_plain("each job pinned to one CPU:", pinned);
  std::printf("%-28s %12.0f /s  (limit for half the time: %.0f /s)\n", "one job alone (usched):", median(solo.a),
              median(solo.a) / 2);
  const double pl = (median(plain.a) + median(plain.b)) / 2;
  const double pin = std::max(1.0, (median(pinned.a) + median(pinned.b)) / 2);
  result("gang.omp.plain", pl, "/s", "(per job)");
  result("gang.omp.pinned", pin, "/s", "(per job; each job's threads on one CPU)");
  result("gang.omp.solo", median(solo.a), "/s");
  print_gangs("gang.omp", quanta, gs, plain, solo, Goals::kOmp);
  for (int q : quanta) {
    ratio_line("gang.omp.q" + std::to_string(q) + ".vs_pinned", (median(gs[q].a) + median(gs[q].b)) / 2 / pin,
               q == 5 || q == 20 ? "goal >= 20x" : "");
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") g_opt.quick = true;
    else if (a == "--seconds" && i + 1 < argc) g_opt.secs = std::atof(argv[++i]);
    else if (a == "--rounds" && i + 1 < argc) g_opt.rounds = std::atoi(argv[++i]);
    else if (a == "--section" && i + 1 < argc) g_opt.sections.insert(argv[++i]);
    else if (a == "--sched" && i + 1 < argc) g_opt.sched = argv[++i];
    else if (a == "--work-us" && i + 1 < argc) g_opt.work_us = std::atof(argv[++i]);
    else if (a == "--start" && i + 1 < argc) g_opt.sleep_start = std::string(argv[++i]) == "sleep";
    else {
      std::fprintf(stderr,
                   "usage: bench_gang [--quick] [--seconds S] [--rounds N] [--section threads|processes|yield|omp]... "
                   "[--sched NAME] [--work-us US] [--start spin|sleep]\n");
      return 2;
    }
  }
  if (g_opt.sched == "REAL") g_opt.sleep_start = true;
  if (g_opt.quick) {
    g_opt.secs = std::min(g_opt.secs, 0.25);
    g_opt.rounds = 1;
  }
  g_alarm = static_cast<unsigned>(std::ceil(g_opt.secs)) + 30;
  if (!usched::bench::cgroups_writable()) {
    std::printf("# bench_gang skipped: needs root and writable cgroups (the freezer)\n");
    return 77;
  }
  ::signal(SIGPIPE, SIG_IGN);
  std::atexit(kill_live);
  calibrate();
  const double t0 = now_us();
  auto want = [](const char* s) { return g_opt.sections.empty() || g_opt.sections.count(s); };
  if (want("threads")) section_threads();
  if (want("yield")) section_yield();
  if (want("processes")) section_processes();
  if (want("omp")) section_omp();
  std::printf("# bench_gang: %.1f s, load: ", (now_us() - t0) / 1e6);
  std::fflush(stdout);
  std::ifstream la("/proc/loadavg");
  std::string l1, l5, l15;
  la >> l1 >> l5 >> l15;
  std::printf("%s %s %s\n", l1.c_str(), l5.c_str(), l15.c_str());
  return 0;
}
