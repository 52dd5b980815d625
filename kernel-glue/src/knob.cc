#include "usched/glue/knob.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

namespace usched::glue {
namespace {

std::mutex g_trace_mu;
KnobTrace g_trace;

void trace(std::string_view op, const std::string& path, const std::string& value) {
  std::lock_guard lock(g_trace_mu);
  if (g_trace) g_trace(op, path, value);
}

}  // namespace

Code code_for_errno(int err) {
  switch (err) {
    case EPERM:
    case EACCES:
      return Code::kPermissionDenied;
    case ENOENT:
    case ESRCH:
      return Code::kNotFound;
    case ENOSPC:
    case ENOMEM:
      return Code::kResourceExhausted;
    case EBUSY:
      return Code::kFailedPrecondition;
    default:
      return Code::kInternal;
  }
}

std::string errno_name(int err) {
  if (const char* n = strerrorname_np(err)) return n;
  return "errno " + std::to_string(err);
}

std::string KnobError::message() const {
  std::string m = op;
  if (!path.empty()) m += " " + path;
  if (!value.empty()) m += " = '" + value + "'";
  m += ": ";
  m += strerrordesc_np(err) ? strerrordesc_np(err) : "Unknown error";
  m += " (" + errno_name(err) + ")";
  return m;
}

KnobStatus write_knob(const std::string& path, std::string_view value) {
  std::string v(value);
  trace("write", path, v);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_TRUNC);
  if (fd < 0) return KnobError{"write", path, v, errno};
  ssize_t n = ::write(fd, v.data(), v.size());
  int werr = n < 0 ? errno : 0;
  // A short write to a knob means the kernel took part of a value: an
  // error, not something to resume.
  if (n >= 0 && static_cast<size_t>(n) != v.size()) werr = EIO;
  // cgroupfs reports some errors only at close (none today, but cheap).
  if (::close(fd) < 0 && werr == 0 && errno != EINTR) werr = errno;
  if (werr != 0) return KnobError{"write", path, v, werr};
  return {};
}

KnobResult<std::string> read_knob(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return KnobError{"read", path, "", errno};
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return KnobError{"read", path, "", e};
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

KnobResult<std::string> read_knob_trimmed(const std::string& path) {
  auto r = read_knob(path);
  if (!r) return r;
  std::string& s = r.value();
  size_t b = s.find_first_not_of(" \t\n");
  size_t e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

KnobStatus make_dir(const std::string& path) {
  trace("mkdir", path, "");
  if (::mkdir(path.c_str(), 0755) == 0) return {};
  int e = errno;
  struct stat st {};
  if (e == EEXIST && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return {};
  return KnobError{"mkdir", path, "", e};
}

KnobStatus remove_dir(const std::string& path) {
  trace("rmdir", path, "");
  if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return {};
  return KnobError{"rmdir", path, "", errno};
}

bool knob_exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

void set_knob_trace(KnobTrace t) {
  std::lock_guard lock(g_trace_mu);
  g_trace = std::move(t);
}

}  // namespace usched::glue
