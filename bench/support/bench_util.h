//! Small helpers shared by the bench/ programs: a monotonic clock in
//! microseconds, median and percentiles, the A,B,A,B round driver every
//! ratio uses, the "RESULT"/"RATIO" lines bench/run.sh collects, and a
//! daemon on the best glue this machine has (real cgroups as root, else the
//! fake glue) in a private cgroup subtree removed on exit.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "support/harness.h"

namespace usched::bench {

inline double now_us() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5));
  return v[i];
}
inline double median(std::vector<double> v) { return percentile(std::move(v), 50); }

// Command-line knobs every program takes: --rounds N, --iters N, --quick.
struct Args {
  int rounds = 7;
  int iters = 50;
  bool quick = false;
  Args(int argc, char** argv, int default_iters) : iters(default_iters) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--quick") quick = true;
      else if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
      else if (a == "--iters" && i + 1 < argc) iters = std::atoi(argv[++i]);
    }
    if (quick) {
      rounds = std::min(rounds, 2);
      iters = std::max(1, std::min(iters, default_iters / 10));
    }
  }
};

inline void result(const std::string& name, double value, const std::string& unit,
                   const std::string& goal = "") {
  std::printf("RESULT %-34s %12.1f %-6s %s\n", name.c_str(), value, unit.c_str(), goal.c_str());
  std::fflush(stdout);
}

// Runs `rounds` rounds of A then B (iters each), the mean per operation of
// every round; prints both medians (us) and median(A)/median(B).
inline double ratio(const std::string& name, int rounds, int iters, const std::function<void()>& a,
                    const std::function<void()>& b, const std::string& goal) {
  std::vector<double> ta, tb;
  for (int r = 0; r < rounds; ++r) {
    for (int side = 0; side < 2; ++side) {
      const auto& fn = side == 0 ? a : b;
      const double t0 = now_us();
      for (int i = 0; i < iters; ++i) fn();
      (side == 0 ? ta : tb).push_back((now_us() - t0) / iters);
    }
  }
  const double ma = median(ta), mb = median(tb);
  result(name + ".A", ma, "us");
  result(name + ".B", mb, "us");
  std::printf("RATIO  %-34s %12.2f x      %s (median of %d rounds x %d, A,B alternating)\n",
              name.c_str(), ma / mb, goal.c_str(), rounds, iters);
  std::fflush(stdout);
  return ma / mb;
}

inline bool cgroups_writable() {
  return ::geteuid() == 0 && ::access("/sys/fs/cgroup", W_OK) == 0;
}

// Daemon flags for the real glue in a private subtree (root), else fake.
inline std::vector<std::string> daemon_flags(bool want_real = true) {
  // USCHED_BENCH_GLUE=affinity|fake|v1|v2 picks the back end by hand (to
  // separate what cgroup moves cost from the rest).
  if (const char* g = std::getenv("USCHED_BENCH_GLUE"); g && *g)
    return {"--glue", g, "--cgroup-top", "usched-bench-" + test::random_suffix(), "--cleanup-on-exit"};
  if (want_real && cgroups_writable())
    return {"--cgroup-top", "usched-bench-" + test::random_suffix(), "--cleanup-on-exit"};
  return {"--glue", "fake"};
}

// The daemons a benchmark runs, stopped by die() (exit() skips destructors).
inline std::vector<test::Daemon*>& live_daemons() {
  static std::vector<test::Daemon*> v;
  return v;
}
struct Owned {
  explicit Owned(test::Daemon& d) : d_(&d) { live_daemons().push_back(d_); }
  ~Owned() { std::erase(live_daemons(), d_); }
  test::Daemon* d_;
};

// Prints what (at most its last 2000 characters: daemon logs are long),
// stops the daemons (SIGTERM: their cleanup) and exits 1.
inline void die(const std::string& what) {
  for (test::Daemon* d : live_daemons()) d->stop(SIGTERM);
  const size_t keep = 2000;
  std::fprintf(stderr, "bench: %s\n",
               what.size() > keep ? ("..." + what.substr(what.size() - keep)).c_str() : what.c_str());
  std::exit(1);
}

// Stops a daemon with SIGTERM (its cleanup); a bad exit is reported, not
// fatal: the numbers were already taken.
inline void stopped(test::Daemon& d) {
  if (int rc = d.stop(SIGTERM); rc != 0) {
    std::printf("# warning: uschedd exited %d on SIGTERM\n", rc);
    std::fflush(stdout);
  }
}

}  // namespace usched::bench
