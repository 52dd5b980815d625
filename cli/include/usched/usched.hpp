//! The installed C++ API of libusched: a header-only layer over the C ABI of
//! usched/usched.h, so applications get RAII strings and typed errors without
//! depending on the gRPC or protobuf version libusched was built with.
//! Errors are values (usched::sdk::Status), never exceptions.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>

#include "usched/usched.h"

namespace usched::sdk {

// gRPC status code numbers, as in usched_code.
enum class Code : int {
  kOk = USCHED_OK,
  kInvalidArgument = USCHED_INVALID_ARGUMENT,
  kNotFound = USCHED_NOT_FOUND,
  kAlreadyExists = USCHED_ALREADY_EXISTS,
  kPermissionDenied = USCHED_PERMISSION_DENIED,
  kResourceExhausted = USCHED_RESOURCE_EXHAUSTED,
  kFailedPrecondition = USCHED_FAILED_PRECONDITION,
  kInternal = USCHED_INTERNAL,
  kUnavailable = USCHED_UNAVAILABLE,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  // The calling thread's last error from libusched.
  static Status last() { return Status(static_cast<Code>(usched_last_error_code()), usched_last_error()); }
  bool ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return ok(); }
  Code code() const { return code_; }
  // "NOT_FOUND", ...
  const char* code_name() const { return usched_code_name(static_cast<int>(code_)); }
  const std::string& message() const { return message_; }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

namespace detail {
inline Status check(int rc) { return rc == 0 ? Status() : Status::last(); }
}  // namespace detail

// Uses the daemon at `path` ("" for $USCHED_SOCKET / the default).
inline void set_socket(const std::string& path) { (void)usched_set_socket(path.c_str()); }
inline std::string socket() { return usched_socket(); }

// Forks; the child is bound to `name` before it returns (pid 0 in the child,
// the child's pid in the parent). vcpu < 0 lets the daemon choose.
inline Status rfork(const std::string& name, pid_t& pid, int vcpu = -1) {
  const pid_t r = usched_rfork(name.c_str(), vcpu);
  if (r < 0) return Status::last();
  pid = r;
  return Status();
}
inline Status bind_self(const std::string& name, int vcpu = -1) {
  return detail::check(usched_bind_self(name.c_str(), vcpu));
}
inline Status bind_thread(const std::string& name, int vcpu = -1) {
  return detail::check(usched_bind_thread(name.c_str(), vcpu));
}
// tid 0: the whole process.
inline Status bind(const std::string& name, pid_t pid, pid_t tid = 0, int vcpu = -1) {
  return detail::check(usched_bind_pid(name.c_str(), pid, tid, vcpu));
}
inline Status unbind(pid_t pid, pid_t tid = 0) { return detail::check(usched_unbind(pid, tid)); }

// Gangs are named "SCHED/GANG".
inline Status create_gang(const std::string& gang, int quantum_ms = 0, int width = 0) {
  return detail::check(usched_gang_create(gang.c_str(), quantum_ms, width));
}
inline Status destroy_gang(const std::string& gang) { return detail::check(usched_gang_destroy(gang.c_str())); }
inline Status add_to_gang(const std::string& gang, pid_t pid, pid_t tid = 0) {
  return detail::check(usched_gang_add(gang.c_str(), pid, tid));
}
// Binds the calling thread into the gang: once per vCPU thread.
inline Status join_gang(const std::string& gang) { return detail::check(usched_join_gang(gang.c_str())); }

}  // namespace usched::sdk
