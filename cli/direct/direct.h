//! The usched command's unary calls without gRPC's runtime: the gRPC wire
//! protocol (HTTP/2, a 5-byte length prefix, grpc-status in the trailers)
//! spoken by nghttp2 on one connection of the command's own. Starting
//! gRPC's channel cost ~3.5 ms of a 6 ms `usched list` (six threads, a
//! handshake round trip, its event engine); this costs one connect and one
//! round trip per call (docs/benchmarks.md, issue 12).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "usched/client.h"

namespace usched::cli {

// Connects to uschedd's gRPC socket within timeout. Errors as
// Client::connect's: kUnavailable "cannot reach uschedd at PATH: why".
Result<std::unique_ptr<UnaryCaller>> direct_caller(const std::string& socket,
                                                   std::chrono::milliseconds timeout);

}  // namespace usched::cli
