//! The one path for kernel knob I/O (cgroupfs, procfs, sysfs) and the typed
//! error every kernel call of the glue returns: operation, target, value and
//! errno, so that a failure reads like
//!   write /sys/fs/cgroup/cpuset/usched/batch/cpuset.cpus = '0-5': Invalid argument (EINVAL)
//! Writes never create files (no O_CREAT): a typo'd knob fails loudly.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "usched/result.h"

namespace usched::glue {

// EPERM/EACCES -> kPermissionDenied, ENOENT/ESRCH -> kNotFound,
// ENOSPC/ENOMEM -> kResourceExhausted, EBUSY -> kFailedPrecondition,
// anything else -> kInternal.
Code code_for_errno(int err);
// "EINVAL"; "errno 4242" when unknown.
std::string errno_name(int err);

struct KnobError {
  std::string op;     // "write", "read", "mkdir", "rmdir", or a syscall name
  std::string path;   // the knob's path, or the syscall's target ("tid 123")
  std::string value;  // what was written ("" for none)
  int err = 0;        // errno
  // "OP PATH[ = 'VALUE']: strerror (ENAME)"
  std::string message() const;
  Status status() const { return Status(code_for_errno(err), message()); }
  operator Status() const { return status(); }  // NOLINT: implicit by design
};

// A syscall failure in the same form: sys_error("sched_setaffinity", "tid 123", "0-1", errno).
inline KnobError sys_error(std::string op, std::string target, std::string value, int err) {
  return KnobError{std::move(op), std::move(target), std::move(value), err};
}

// Ok, or the KnobError. err() is 0 when ok, so callers can branch on ESRCH
// and friends without parsing messages.
class [[nodiscard]] KnobStatus {
 public:
  KnobStatus() = default;
  KnobStatus(KnobError e) : e_(std::move(e)) {}  // NOLINT: implicit by design
  bool is_ok() const { return !e_; }
  explicit operator bool() const { return is_ok(); }
  int err() const { return e_ ? e_->err : 0; }
  const KnobError& error() const { return *e_; }
  Status status() const { return e_ ? e_->status() : Status(); }
  operator Status() const { return status(); }  // NOLINT: implicit by design

 private:
  std::optional<KnobError> e_;
};

template <class T>
class [[nodiscard]] KnobResult {
 public:
  KnobResult(T v) : v_(std::move(v)) {}           // NOLINT: implicit by design
  KnobResult(KnobError e) : v_(std::move(e)) {}   // NOLINT: implicit by design
  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  int err() const { return is_ok() ? 0 : std::get<1>(v_).err; }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const KnobError& error() const { return std::get<1>(v_); }
  Status status() const { return is_ok() ? Status() : std::get<1>(v_).status(); }

 private:
  std::variant<T, KnobError> v_;
};

// open(O_WRONLY|O_CLOEXEC|O_TRUNC), one write(2) of the whole value, close.
// No O_CREAT. O_TRUNC is what a shell redirection does, harmless on
// kernfs/procfs, and keeps the fake cgroupfs (regular files) exact.
KnobStatus write_knob(const std::string& path, std::string_view value);
// The whole content, as the kernel gives it (trailing newline kept).
KnobResult<std::string> read_knob(const std::string& path);
// The content with surrounding whitespace removed.
KnobResult<std::string> read_knob_trimmed(const std::string& path);
// mkdir 0755; an existing directory is adopted (ok).
KnobStatus make_dir(const std::string& path);
// rmdir; a directory that is already gone is ok.
KnobStatus remove_dir(const std::string& path);
bool knob_exists(const std::string& path);

// Process-wide trace hook, called before every write, mkdir and rmdir
// (op is "write", "mkdir" or "rmdir"; value is "" for directories). Tests
// check the order of writes with it; the daemon logs at trace level. Pass
// an empty function to remove it. Not for use while glue calls are running
// on other threads.
using KnobTrace = std::function<void(std::string_view op, const std::string& path, const std::string& value)>;
void set_knob_trace(KnobTrace trace);

}  // namespace usched::glue
