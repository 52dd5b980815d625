#include "usched/wallclock.h"

#include <cassert>

namespace usched {

int64_t quantum_index(int64_t t_ns, int64_t quantum_ns) {
  assert(quantum_ns > 0 && "quantum_index: quantum must be positive");
  // Floor, also before the epoch (a clock stepped back in a test).
  int64_t q = t_ns / quantum_ns;
  if (t_ns % quantum_ns < 0) --q;
  return q;
}

int64_t next_boundary(int64_t t_ns, int64_t quantum_ns) { return (quantum_index(t_ns, quantum_ns) + 1) * quantum_ns; }

int row_at(int64_t t_ns, int64_t quantum_ns, int rows) {
  assert(rows > 0 && "row_at: a matrix has at least one row");
  int64_t r = quantum_index(t_ns, quantum_ns) % rows;
  if (r < 0) r += rows;
  return static_cast<int>(r);
}

int job_row(uint64_t job_id, int rows) {
  assert(rows > 0 && "job_row: a matrix has at least one row");
  return static_cast<int>(job_id % static_cast<uint64_t>(rows));
}

double corun_share(int64_t quantum_ns, int64_t skew_ns) {
  assert(quantum_ns > 0 && "corun_share: quantum must be positive");
  const int64_t s = skew_ns < 0 ? -skew_ns : skew_ns;
  if (s >= quantum_ns) return 0.0;
  return static_cast<double>(quantum_ns - s) / static_cast<double>(quantum_ns);
}

}  // namespace usched
