#include "usched/glue/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <iterator>
#include <optional>
#include <sstream>
#include <string_view>

#include "usched/glue/knob.h"

namespace usched::glue {
namespace {

constexpr unsigned kPfKthread = 0x00200000;  // include/linux/sched.h
constexpr int kKthreaddPid = 2;
#ifndef SYS_pidfd_open
constexpr long kSysPidfdOpen = 434;
#else
constexpr long kSysPidfdOpen = SYS_pidfd_open;
#endif
#ifndef SYS_pidfd_send_signal
constexpr long kSysPidfdSendSignal = 424;
#else
constexpr long kSysPidfdSendSignal = SYS_pidfd_send_signal;
#endif
// PIDFD_THREAD (Linux 6.9) is O_EXCL by definition (include/uapi/linux/pidfd.h).
constexpr unsigned kPidfdThread = O_EXCL;

template <class T>
bool parse_num(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

Status task_error(const KnobError& e, int pid, int tid) {
  if (e.err == ENOENT || e.err == ESRCH) {
    std::string who = "pid " + std::to_string(pid);
    if (tid != 0) who += " tid " + std::to_string(tid);
    return not_found(who + " does not exist (" + e.path + ")");
  }
  return e.status();
}

// "Key:\tvalue" line of a /proc status file, value trimmed.
std::optional<std::string> status_field(const std::string& text, std::string_view key) {
  for (size_t at = 0; at < text.size();) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    std::string_view line(text.data() + at, nl - at);
    at = nl + 1;
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 && line[key.size()] == ':') {
      size_t b = line.find_first_not_of(" \t", key.size() + 1);
      return b == std::string_view::npos ? std::string() : std::string(line.substr(b));
    }
  }
  return std::nullopt;
}

// Uid, Tgid and the task's own id from /proc/.../status text.
Status parse_status(const std::string& text, const std::string& dir, int pid, int tid, TaskInfo& t) {
  auto uid = status_field(text, "Uid");
  auto tgid = status_field(text, "Tgid");
  if (!uid) return internal("no Uid: line in " + dir + "/status");
  {
    std::istringstream in(*uid);
    if (!(in >> t.uid >> t.euid)) return internal("malformed Uid: line in " + dir + "/status: " + *uid);
  }
  t.pid = pid;
  if (tgid && !parse_num(*tgid, t.pid)) return internal("malformed Tgid: line in " + dir + "/status");
  t.tid = tid != 0 ? tid : pid;
  return Status::ok();
}

std::string task_dir(const std::string& root, int pid, int tid) {
  std::string dir = root + "/" + std::to_string(pid);
  if (tid != 0) dir += "/task/" + std::to_string(tid);
  return dir;
}

}  // namespace

Result<TaskInfo> ProcFs::task(int pid, int tid) const {
  if (pid <= 0 || tid < 0) return invalid("bad pid " + std::to_string(pid) + " tid " + std::to_string(tid));
  const std::string dir = task_dir(root_, pid, tid);
  auto stat = read_knob(dir + "/stat");
  if (!stat) return task_error(stat.error(), pid, tid);
  auto status = read_knob(dir + "/status");
  if (!status) return task_error(status.error(), pid, tid);

  const std::string& s = stat.value();
  // comm is whatever the task named itself, spaces and ')' included: it
  // ends at the LAST ')' of the line.
  size_t open = s.find('(');
  size_t close = s.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open)
    return internal("malformed " + dir + "/stat: no (comm)");
  TaskInfo t;
  t.comm = s.substr(open + 1, close - open - 1);
  // The fields after comm, split in place: f[0] is field 3 (state). Only
  // the first 20 are used (every bind of a new task reads this).
  std::string_view f[20];
  size_t nf = 0;
  for (size_t i = close + 1; i < s.size() && nf < std::size(f);) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n')) ++i;
    const size_t b = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\n') ++i;
    if (i > b) f[nf++] = std::string_view(s).substr(b, i - b);
  }
  // Fields 3 (state), 4 (ppid), 9 (flags), 22 (starttime).
  if (nf < std::size(f)) return internal("malformed " + dir + "/stat: " + std::to_string(nf + 2) + " fields");
  int ppid = 0;
  unsigned flags = 0;
  if (f[0].size() != 1 || !parse_num(f[1], ppid) || !parse_num(f[6], flags) || !parse_num(f[19], t.start_time))
    return internal("malformed " + dir + "/stat: bad state, ppid, flags or starttime");
  t.state = f[0][0];
  {
    uint64_t utime = 0, stime = 0;
    static const long hz = ::sysconf(_SC_CLK_TCK);
    if (hz > 0 && parse_num(f[11], utime) && parse_num(f[12], stime))
      t.cpu_us = (utime + stime) * 1000000ull / static_cast<uint64_t>(hz);
  }
  t.ppid = ppid;
  t.kernel_thread = (flags & kPfKthread) != 0 || ppid == kKthreaddPid;

  if (Status st = parse_status(status.value(), dir, pid, tid, t); !st) return st;
  return t;
}

Result<TaskInfo> ProcFs::task_status(int pid, int tid) const {
  if (pid <= 0 || tid < 0) return invalid("bad pid " + std::to_string(pid) + " tid " + std::to_string(tid));
  const std::string dir = task_dir(root_, pid, tid);
  auto status = read_knob(dir + "/status");
  if (!status) return task_error(status.error(), pid, tid);
  TaskInfo t;
  if (Status st = parse_status(status.value(), dir, pid, tid, t); !st) return st;
  auto name = status_field(status.value(), "Name");
  auto state = status_field(status.value(), "State");
  auto ppid = status_field(status.value(), "PPid");
  if (!state || state->empty() || !ppid || !parse_num(*ppid, t.ppid))
    return internal("malformed " + dir + "/status: no State: or PPid: line");
  t.comm = name.value_or("");
  t.state = (*state)[0];
  return t;
}

bool pidfd_alive(int fd) {
  return ::syscall(kSysPidfdSendSignal, fd, 0, nullptr, 0) == 0;
}

Result<std::vector<int>> ProcFs::threads(int pid) const {
  // A bare open and getdents64 into a buffer on the stack: opendir's fstat
  // and 32 KiB heap buffer cost more than listing a small process does, and
  // every placement of a whole process lists its threads.
  std::string dir = root_ + "/" + std::to_string(pid) + "/task";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return task_error(KnobError{"open", dir, "", errno}, pid, 0);
  std::vector<int> out;
  alignas(dirent64) char buf[4096];
  for (;;) {
    const ssize_t n = ::getdents64(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return task_error(KnobError{"getdents64", dir, "", err}, pid, 0);
    }
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      const auto* e = reinterpret_cast<const dirent64*>(buf + off);
      int tid = 0;
      if (parse_num(std::string_view(e->d_name), tid) && tid > 0) out.push_back(tid);
      off += e->d_reclen;
    }
  }
  ::close(fd);
  std::sort(out.begin(), out.end());
  // An exiting process keeps /proc/PID with an empty task list for a moment.
  if (out.empty()) return not_found("pid " + std::to_string(pid) + " has no threads left");
  return out;
}

Result<std::string> ProcFs::cpus_allowed(int pid, int tid) const {
  std::string path = root_ + "/" + std::to_string(pid) + "/task/" + std::to_string(tid != 0 ? tid : pid) + "/status";
  auto status = read_knob(path);
  if (!status) return task_error(status.error(), pid, tid);
  auto v = status_field(status.value(), "Cpus_allowed_list");
  if (!v) return internal("no Cpus_allowed_list: line in " + path);
  return *v;
}

Result<uint64_t> ProcFs::run_ns(int pid, int tid) const {
  std::string path = root_ + "/" + std::to_string(pid) + "/task/" + std::to_string(tid != 0 ? tid : pid) + "/schedstat";
  auto text = read_knob(path);
  if (!text) return task_error(text.error(), pid, tid);
  uint64_t ns = 0;
  const std::string& t = text.value();
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), ns);
  if (ec != std::errc() || p == t.data()) return internal("no run time in " + path + ": '" + t + "'");
  return ns;
}

Result<PidFd> PidFd::open(int pid, int tid) {
  if (pid <= 0 || tid < 0) return invalid("bad pid " + std::to_string(pid) + " tid " + std::to_string(tid));
  if (tid != 0 && tid != pid) {
    int fd = static_cast<int>(::syscall(kSysPidfdOpen, tid, kPidfdThread));
    if (fd >= 0) return PidFd(fd);
    // Before Linux 6.9 there is no PIDFD_THREAD (EINVAL): the process's
    // pidfd is the closest we have; it signals when the whole process exits.
    if (errno != EINVAL) return sys_error("pidfd_open", "tid " + std::to_string(tid), "PIDFD_THREAD", errno).status();
  }
  int fd = static_cast<int>(::syscall(kSysPidfdOpen, pid, 0));
  if (fd < 0) return sys_error("pidfd_open", "pid " + std::to_string(pid), "", errno).status();
  return PidFd(fd);
}

PidFd& PidFd::operator=(PidFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

PidFd::~PidFd() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace usched::glue
