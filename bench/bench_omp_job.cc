// One OpenMP job for bench_gang's `omp` section: a team of
// usched::bench::kWorkers threads of Debian's libgomp (bench_gang sets
// OMP_NUM_THREADS, OMP_WAIT_POLICY=ACTIVE, OMP_PROC_BIND=false) in a
// barrier-heavy loop: a little work, a barrier, the master counts, a
// barrier. It is driven through the same shared block as bench_gang's own
// workers (support/barrier.h), mapped from the memfd bench_gang passes:
// `ready` once the team exists, the loop while `go` is 1, its count
// published in `crossings` (per worker, as the others count), `done`, and
// it stays (a gang member) until `go` leaves 2.
//
//   bench_omp_job --shm-fd FD [--alarm SECONDS]
//
// Not a benchmark on its own; bounded by its alarm whatever the driver does.
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/barrier.h"

using usched::bench::kWorkers;
using usched::bench::Shared;

int main(int argc, char** argv) {
  int fd = -1;
  unsigned alarm_s = 60;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--shm-fd" && i + 1 < argc) fd = std::atoi(argv[++i]);
    else if (a == "--alarm" && i + 1 < argc) alarm_s = static_cast<unsigned>(std::atoi(argv[++i]));
    else fd = -1, i = argc;
  }
  if (fd < 0) {
    std::fprintf(stderr, "usage: bench_omp_job --shm-fd FD [--alarm SECONDS] (run by bench_gang --section omp)\n");
    return 2;
  }
  ::alarm(alarm_s);
  void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    std::perror("bench_omp_job: mmap of the driver's block");
    return 1;
  }
  ::close(fd);
  auto* s = static_cast<Shared*>(p);
  const int work = s->work_iters;

  // The team starts in the first parallel region and stays for the next
  // (libgomp keeps its threads; under ACTIVE they spin in between).
  int team = 0;
#pragma omp parallel
  {
#pragma omp single
    team = omp_get_num_threads();
  }
  if (team != kWorkers) {
    std::fprintf(stderr, "bench_omp_job: a team of %d threads, not %d (OMP_NUM_THREADS?)\n", team, kWorkers);
    return 1;
  }
  s->ready.store(kWorkers, std::memory_order_release);
  while (s->go.load(std::memory_order_acquire) == 0)
    if (s->sleep_start) ::usleep(200);

  unsigned long long n = 0;
  int stop = 0;
#pragma omp parallel shared(n, stop)
  {
    const bool master = omp_get_thread_num() == 0;
    for (;;) {
      if (work) usched::bench::spin_work(work);
#pragma omp barrier
      if (master) {
        ++n;
        if (s->go.load(std::memory_order_relaxed) != 1) stop = 1;
      }
#pragma omp barrier
      if (stop) break;
    }
  }
  s->crossings.fetch_add(n * kWorkers);
  s->done.fetch_add(kWorkers);
  while (s->go.load(std::memory_order_acquire) == 2) ::usleep(500);
  return 0;
}
