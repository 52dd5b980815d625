//! Where a test or benchmark binary finds the programs and sources it
//! runs (this build's uschedd and usched, the source tree). The values
//! live in one small source file generated per build directory
//! (cmake/usched_paths.cmake), not in -D flags: a -D naming the build
//! directory would make every object of the binary differ between two
//! clones, and ccache (shared across clones and the sanitizer builds) could
//! not reuse any of them. Forced into each such binary's sources with
//! `-include`.
#pragma once

namespace usched::test::paths {
const char* uschedd();
const char* cli();
const char* bin_dir();
const char* source_dir();
const char* omp_job();  // bench_omp_job (benchmarks only; "" elsewhere)
}  // namespace usched::test::paths

#define USCHEDD_PATH (::usched::test::paths::uschedd())
#define USCHED_CLI_PATH (::usched::test::paths::cli())
#define USCHED_BIN_DIR (::usched::test::paths::bin_dir())
#define USCHED_SOURCE_DIR (::usched::test::paths::source_dir())
#define BENCH_OMP_JOB (::usched::test::paths::omp_job())
