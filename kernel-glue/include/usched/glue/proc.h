//! Reading /proc (root is a constructor argument) and pidfds: what the
//! daemon needs to know about a task before and after binding it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "usched/result.h"

namespace usched::glue {

struct TaskInfo {
  int pid = 0;            // thread group id
  int tid = 0;            // the task asked about (== pid for the main thread)
  int ppid = 0;           // field 4 of /proc/PID/stat
  uint64_t start_time = 0;  // field 22 of /proc/PID/stat, clock ticks after boot
  uint32_t uid = 0;       // real uid
  uint32_t euid = 0;
  bool kernel_thread = false;  // PF_KTHREAD, or parent is kthreadd
  std::string comm;
  char state = '?';
  // Dead (Z, a zombie not yet reaped; X): it will not run again, though
  // /proc still shows it.
  bool exited() const { return state == 'Z' || state == 'X'; }
  // utime + stime (fields 14, 15) in microseconds: for a whole process the
  // kernel sums every thread, live and exited; for a thread, that thread.
  uint64_t cpu_us = 0;
};

class ProcFs {
 public:
  explicit ProcFs(std::string root = "/proc") : root_(std::move(root)) {}
  // NOT_FOUND when the task does not exist (naming the pid).
  Result<TaskInfo> task(int pid, int tid = 0) const;
  // What /proc/PID/status alone says, one read where task() makes two:
  // pid (the thread group), tid, ppid, uid, euid, comm (as status escapes
  // it) and state. start_time, kernel_thread and cpu_us stay 0: for a task
  // the caller already knows, held by a live pidfd (pidfd_alive).
  Result<TaskInfo> task_status(int pid, int tid = 0) const;
  // Thread ids of a process, sorted.
  Result<std::vector<int>> threads(int pid) const;
  // "Cpus_allowed_list" of /proc/PID/task/TID/status.
  Result<std::string> cpus_allowed(int pid, int tid = 0) const;
  // Nanoseconds the thread has run on a CPU: the first field of
  // /proc/PID/task/TID/schedstat (exact, unlike stat's clock ticks).
  Result<uint64_t> run_ns(int pid, int tid) const;
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

// The task behind a pidfd has not been reaped: signal 0 reaches it (a
// zombie included, as /proc/PID does). While it holds, the pid it was
// opened for still names that task, never a reuse.
bool pidfd_alive(int fd);

// An owned pidfd (PIDFD_THREAD for a thread where the kernel has it). Not
// copyable, not implicitly an int.
class PidFd {
 public:
  PidFd() = default;
  static Result<PidFd> open(int pid, int tid = 0);
  PidFd(PidFd&& o) noexcept : fd_(o.release()) {}
  PidFd& operator=(PidFd&& o) noexcept;
  PidFd(const PidFd&) = delete;
  PidFd& operator=(const PidFd&) = delete;
  ~PidFd();
  int get() const { return fd_; }
  int release() { int f = fd_; fd_ = -1; return f; }
  bool valid() const { return fd_ >= 0; }

 private:
  explicit PidFd(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace usched::glue
