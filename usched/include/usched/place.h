//! The placement socket: uschedd listens on PATH.place beside its gRPC
//! socket PATH, for a process that places itself or the child it just
//! forked, and nothing else (usched::rfork, `usched run`). One request per
//! connection:
//!
//!   request  u32 length, then a usched.v1.BindRequest of that length
//!            (pid 0, the connecting process's own pid, or the pid of a
//!            child of it)
//!   reply    u32 length, then u32 code (usched::Code), then the rest:
//!            a usched.v1.BindResponse when the code is 0, else the message
//!
//! Lengths and codes are little-endian. The daemon takes the caller's pid
//! and uid from SO_PEERCRED, so a process can place only itself (or one of
//! its threads) and its children. The reply is one send(), then uschedd
//! closes the connection: a client that shares the connection with its
//! child (rfork) can let both read the reply with MSG_PEEK. Why not gRPC: a child forked from a gRPC client cannot use
//! gRPC (its threads did not survive the fork), and a client that starts
//! gRPC's thread pools for one call pays milliseconds for a 0.1 ms answer.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "usched/result.h"

namespace usched::place {

inline constexpr const char* kSuffix = ".place";
inline constexpr uint32_t kMaxRequest = 4096;     // a BindRequest: a name and three ints
inline constexpr uint32_t kMaxReply = 16 * 1024;  // a BindResponse, or a message cut to 1 KiB
// A refusal: the 8 bytes of length and code, then uschedd's message, which
// it cuts to 1 KiB (and says so in 17 more bytes).
inline constexpr uint32_t kMaxRefusal = 8 + 1024 + 64;

inline constexpr const char* kDefaultSocket = "/run/usched/usched.sock";

// $USCHED_SOCKET if set and non-empty, else kDefaultSocket.
inline std::string default_socket() {
  const char* env = std::getenv("USCHED_SOCKET");
  return env != nullptr && *env != '\0' ? env : kDefaultSocket;
}

inline std::string socket_of(const std::string& grpc_socket) { return grpc_socket + kSuffix; }

inline void put_le32_at(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

inline void put_le32(std::string& out, uint32_t v) {
  char b[4];
  put_le32_at(b, v);
  out.append(b, 4);
}

inline uint32_t get_le32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// The most bytes bind_request writes for a name of name_len bytes: the
// name's field (a tag, a length of up to 10 bytes, the name) and three
// int32 fields (a tag and up to 10 bytes each).
inline constexpr size_t bind_request_max(size_t name_len) { return name_len + 11 + 3 * 11; }

// A usched.v1.BindRequest{name, pid, tid, vcpu (when >= 0)} in protobuf's
// wire format, written out by hand so that the `usched` command's fast
// path (cli/front.cc) needs no protobuf library; a service test checks it
// byte for byte against protobuf's own serialization. Writes into out,
// which holds at least bind_request_max(name.size()) bytes, and returns
// how many it wrote; allocates nothing (rfork's child path uses it).
inline size_t bind_request_to(char* out, std::string_view name, int pid, int tid, int vcpu) {
  char* p = out;
  auto varint = [&](uint64_t v) {
    do {
      *p++ = static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
      v >>= 7;
    } while (v != 0);
  };
  // int32 fields go out sign-extended to 64 bits, as protobuf does.
  auto int32_field = [&](int field, int v) {
    varint(static_cast<uint64_t>(field) << 3);
    varint(static_cast<uint64_t>(static_cast<int64_t>(v)));
  };
  if (!name.empty()) {
    varint(1 << 3 | 2);
    varint(name.size());
    std::memcpy(p, name.data(), name.size());
    p += name.size();
  }
  if (pid != 0) int32_field(2, pid);
  if (tid != 0) int32_field(3, tid);
  if (vcpu >= 0) int32_field(4, vcpu);
  return static_cast<size_t>(p - out);
}

inline std::string bind_request(const std::string& name, int pid, int tid, int vcpu) {
  std::string out(bind_request_max(name.size()), '\0');
  out.resize(bind_request_to(out.data(), name, pid, tid, vcpu));
  return out;
}

// The most bytes request_frame_to writes for a name of name_len bytes.
inline constexpr size_t request_frame_max(size_t name_len) { return 4 + bind_request_max(name_len); }

// request_frame(bind_request(...)) written into out, which holds at least
// request_frame_max(name.size()) bytes; returns how many it wrote.
// Allocates nothing.
inline size_t request_frame_to(char* out, std::string_view name, int pid, int tid, int vcpu) {
  const size_t n = bind_request_to(out + 4, name, pid, tid, vcpu);
  put_le32_at(out, static_cast<uint32_t>(n));
  return 4 + n;
}

inline std::string request_frame(const std::string& bind_request) {
  std::string f;
  put_le32(f, static_cast<uint32_t>(bind_request.size()));
  return f + bind_request;
}

inline std::string reply_frame(Code code, const std::string& rest) {
  std::string f;
  put_le32(f, static_cast<uint32_t>(4 + rest.size()));
  put_le32(f, static_cast<uint32_t>(code));
  return f + rest;
}

}  // namespace usched::place
