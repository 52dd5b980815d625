//! The usched command's connection to uschedd: one per process (its unary
//! calls through direct/, watch's through a gRPC channel), never torn down:
//! finish() ends the process once the output is out. Tearing a gRPC channel
//! down joins its threads, and there the first contended absl::Mutex of the
//! process measured the TSC by sleeping 1, 2, 4 ms ... where the kernel
//! gives no tsc_freq_khz (this machine and most VMs): ~3 ms at the end of
//! `usched list`, when it still used gRPC.
#pragma once

#include <string>

#include "usched/client.h"

namespace usched::cli {

// The process's client, connected on the first call (socket "": the
// default socket) with timeout_ms per call; later calls return it.
Result<Client*> session(const std::string& socket, int timeout_ms);

// Flushes stdout (a failed write turns a 0 into 1, with the reason on
// stderr) and exits with rc without destructors. Under the sanitizers it
// closes the session and exits normally, so leaks and races stay checked.
[[noreturn]] void finish(int rc);

}  // namespace usched::cli
