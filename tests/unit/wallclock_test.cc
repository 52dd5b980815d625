#include "usched/wallclock.h"

#include <gtest/gtest.h>

namespace usched {
namespace {

constexpr int64_t kMs = 1'000'000;

TEST(Wallclock, NodesWithTheSameClockRunTheSameRowAtTheSameTime) {
  // Two nodes waking at different moments inside one quantum agree.
  const int64_t t = 1'796'240'407'000'000'000;  // a wall-clock time
  for (int64_t off : {int64_t{0}, 3 * kMs, 19 * kMs}) {
    EXPECT_EQ(row_at(t + off, 20 * kMs, 3), row_at(t, 20 * kMs, 3)) << off;
  }
  EXPECT_NE(row_at(t + 20 * kMs, 20 * kMs, 3), row_at(t, 20 * kMs, 3));
}

TEST(Wallclock, RowsTurnInOrderAtEachBoundary) {
  for (int64_t i = 0; i < 7; ++i) EXPECT_EQ(row_at(i * 10 * kMs + 1, 10 * kMs, 3), i % 3);
}

TEST(Wallclock, NextBoundaryIsStrictlyAfterAndAligned) {
  EXPECT_EQ(next_boundary(0, 20 * kMs), 20 * kMs);
  EXPECT_EQ(next_boundary(20 * kMs - 1, 20 * kMs), 20 * kMs);
  EXPECT_EQ(next_boundary(20 * kMs, 20 * kMs), 40 * kMs);
  EXPECT_EQ(next_boundary(-1, 20 * kMs), 0);
}

TEST(Wallclock, FloorsBeforeTheEpoch) {
  EXPECT_EQ(quantum_index(-1, 10), -1);
  EXPECT_EQ(quantum_index(-10, 10), -1);
  EXPECT_EQ(quantum_index(-11, 10), -2);
  EXPECT_EQ(row_at(-1, 10, 3), 2);
}

TEST(Wallclock, JobRowDependsOnTheJobIdAloneAndSpreadsConsecutiveJobs) {
  EXPECT_EQ(job_row(1234, 4), job_row(1234, 4));
  EXPECT_EQ(job_row(1234, 4), 2);
  EXPECT_EQ(job_row(1235, 4), 3);
  EXPECT_EQ(job_row(1236, 4), 0);
  EXPECT_EQ(job_row(99, 1), 0);
}

TEST(Wallclock, CorunShareFallsWithClockSkew) {
  EXPECT_DOUBLE_EQ(corun_share(20 * kMs, 0), 1.0);
  EXPECT_DOUBLE_EQ(corun_share(20 * kMs, kMs), 0.95);
  EXPECT_DOUBLE_EQ(corun_share(20 * kMs, -kMs), 0.95);
  EXPECT_DOUBLE_EQ(corun_share(20 * kMs, 20 * kMs), 0.0);
  EXPECT_DOUBLE_EQ(corun_share(20 * kMs, 50 * kMs), 0.0);
}

}  // namespace
}  // namespace usched
