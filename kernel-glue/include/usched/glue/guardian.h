//! The guardian: a small process that outlives uschedd and thaws whatever
//! uschedd may have frozen as soon as uschedd is gone, however it went
//! (SIGKILL, abort, the OOM killer), without waiting for a restart.
//!
//! uschedd starts it (fork, then exec of its own binary with argv[1]
//! "--guardian") on one end of a socketpair and keeps the other end, close
//! on exec, in no other process. The kernel closes that end when uschedd's
//! last thread exits, and the guardian's read returns 0 (EOF). Over the
//! socket the glue tells it, one line each, what may be frozen:
//!
//!   tree v1 DIR          every cgroup v1 freezer group at or below DIR
//!   tree v2 DIR          every cgroup v2 group at or below DIR (cgroup.freeze)
//!   pid PID START        a process that may be SIGSTOPped (START: field 22 of
//!                        /proc/PID/stat, so a reused pid is never continued)
//!   unpid PID            no longer
//!
//! On EOF it thaws all of it at once, says on stderr what it thawed and how
//! long it took, and exits. It runs in a session of its own (a kill of
//! uschedd's process group does not reach it), ignores SIGTERM, SIGINT,
//! SIGHUP and SIGQUIT, asks the OOM killer to spare it, and runs at
//! SCHED_RR above every member (as uschedd's threads do), so that realtime
//! gang members spinning on every CPU cannot delay the thaw.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "usched/result.h"

namespace usched::glue {

class Guardian {
 public:
  // SCHED_RR priority of the guardian: above every member (lwktpri 31 is
  // RR 24) and equal to uschedd's own threads.
  static constexpr int kRtPriority = 30;

  // Starts `exe --guardian PROC_ROOT` with its end of the socket on fd 3.
  // `hold_fd` (>= 0) is passed on as fd 4 and kept open by the guardian
  // until it exits: uschedd passes its state directory's lock, so that the
  // next uschedd starts only once this guardian has thawed and gone.
  static Result<std::unique_ptr<Guardian>> spawn(const std::string& exe, const std::string& proc_root, int hold_fd);
  // Closes the socket (the guardian thaws, which after a clean stop finds
  // nothing frozen, and exits) and reaps it, waiting at most 2 s.
  ~Guardian();
  Guardian(const Guardian&) = delete;
  Guardian& operator=(const Guardian&) = delete;

  void watch_tree(const std::string& dir, bool v2);
  void watch_pid(int pid, uint64_t start_time);
  void unwatch_pid(int pid);

  pid_t pid() const { return pid_; }
  // A pidfd of the guardian: readable once it has exited.
  int pidfd() const { return pidfd_; }
  // After the guardian died (pidfd readable): reaps it, starts a new one
  // and tells it everything again. The exit status for the log.
  Result<std::string> respawn();

  // Closes the socket to the guardian first thing on a fatal signal
  // (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL), then lets the signal do
  // what it does: the guardian thaws at once instead of waiting for a core
  // dump to be written. One guardian per process.
  void close_on_fatal_signals();

 private:
  Guardian(std::string exe, std::string proc_root, int hold_fd) : exe_(std::move(exe)), proc_root_(std::move(proc_root)), hold_fd_(hold_fd) {}
  Status start();
  void send(const std::string& line);
  void reap(bool wait);

  std::string exe_, proc_root_;
  int hold_fd_ = -1;
  std::mutex mu_;  // the glue may be called from the cgroup mover's thread too
  int sock_ = -1;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::vector<std::string> trees_;       // "tree v1 DIR" lines, sent again on respawn
  std::map<int, uint64_t> pids_;         // pid -> start time
};

// The guardian's main (uschedd --guardian PROC_ROOT, socket on fd 3):
// waits for EOF, thaws, returns the exit code.
int guardian_main(const std::string& proc_root);

}  // namespace usched::glue
