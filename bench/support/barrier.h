//! The shared-memory block through which bench_gang drives one gang of
//! barrier workers (its own threads or processes, or an OpenMP job,
//! bench_omp_job, which maps the same block from a memfd), and the busy
//! work per crossing.
#pragma once

#include <atomic>

namespace usched::bench {

constexpr int kWorkers = 2;  // workers (threads) per gang

struct alignas(64) Shared {
  std::atomic<int> go{0};     // 1: run, 2: stop and publish, 3: exit
  std::atomic<int> done{0};   // workers that published their count
  std::atomic<int> ready{0};  // workers started
  int work_iters = 0;         // busy loop per crossing (calibrated to --work-us)
  bool yield = false;         // sched_yield() while waiting at the barrier
  bool sleep_start = false;   // wait for the start sleeping, not spinning
  alignas(64) std::atomic<int> arrived{0};
  alignas(64) std::atomic<unsigned> sense{0};
  // Every worker counts each crossing it took part in.
  alignas(64) std::atomic<unsigned long long> crossings{0};
};

// Busy work the compiler cannot drop.
inline unsigned long spin_work(int iters) {
  unsigned long x = 0x9e3779b9;
  for (int i = 0; i < iters; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    asm volatile("" : "+r"(x));
  }
  return x;
}

}  // namespace usched::bench
