//! The client's side of uschedd's placement socket (usched/place.h) that
//! needs no protobuf: shared by the client library and the `usched`
//! front program (cli/front/front.cc).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "usched/result.h"

namespace usched::detail {

// "cannot reach uschedd at PATH: REASON (is it running? ...)".
std::string unreachable(const std::string& path, const std::string& reason);

// A blocking AF_UNIX stream connection to path, close-on-exec, whose
// connect waits no longer than timeout_ms for a full listen backlog (and
// whose sends no longer than that). The fd, or -errno: -ETIMEDOUT when
// uschedd did not take the connection in time. Async-signal-safe.
int connect_unix(const char* path, int timeout_ms);

// Connects to path, sends the request frame, reads the reply frame into
// reply (cap bytes). Returns the reply frame's size, or -errno: -ETIMEDOUT
// when uschedd did not answer within timeout_ms, -EPROTO when it closed
// the connection or sent a malformed frame, -EMSGSIZE when the reply does
// not fit. Async-signal-safe: system calls only, no allocation (a child of
// fork() uses it).
ssize_t place_exchange(const char* path, const char* req, size_t req_len, char* reply, size_t cap, int timeout_ms);

// Sends the whole request frame on fd, a connection from connect_unix:
// 0, or -errno (-ETIMEDOUT past the connection's send timeout).
// Async-signal-safe.
int place_send(int fd, const char* req, size_t req_len);

// Waits up to timeout_ms for the reply frame on fd and reads it without
// taking it off the connection (MSG_PEEK), so that each holder of a shared
// connection reads the same reply: rfork's parent sends the request naming
// its child, and one reply wakes both. Returns 8 when placed (reply then
// holds a frame with code 0 and nothing after it: the BindResponse is not
// read, so cap need only hold a refusal, place::kMaxRefusal), the whole
// frame of a refusal, or -errno as place_exchange. Async-signal-safe.
ssize_t place_peek(int fd, char* reply, size_t cap, int timeout_ms);

// A timeout as place_exchange takes it: milliseconds, 1 to a day.
int timeout_ms(std::chrono::milliseconds t);

// What place_exchange's outcome says: OK when uschedd placed the caller
// (the reply then carries a BindResponse after its 8 bytes), else the
// error, with the daemon's message verbatim.
Status place_status(const std::string& path, ssize_t n, const char* reply);

}  // namespace usched::detail
