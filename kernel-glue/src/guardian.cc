// The guardian process (usched/glue/guardian.h): uschedd's side (spawn,
// tell, respawn) and the guardian's own main (wait for EOF, thaw, exit).
#include "usched/glue/guardian.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>
#include <thread>

#include "freezer.h"
#include "usched/glue/knob.h"
#include "usched/glue/proc.h"

namespace usched::glue {
namespace {

constexpr int kSockFd = 3;  // the guardian's end of the socket
constexpr int kHoldFd = 4;  // the lock uschedd handed on

// The socket a fatal signal closes (-1: none), and whether
// close_on_fatal_signals() asked for it (a respawned guardian's socket
// takes the old one's place).
std::atomic<int> g_fatal_fd{-1};
std::atomic<bool> g_fatal_armed{false};

void on_fatal_signal(int sig) {
  // Async-signal-safe only: close, signal, raise.
  const int fd = g_fatal_fd.exchange(-1);
  if (fd >= 0) ::close(fd);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

// ---- uschedd's side -------------------------------------------------------------

Result<std::unique_ptr<Guardian>> Guardian::spawn(const std::string& exe, const std::string& proc_root,
                                                 int hold_fd) {
  std::unique_ptr<Guardian> g(new Guardian(exe, proc_root, hold_fd));
  if (Status st = g->start(); !st) return st;
  return g;
}

Status Guardian::start() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return sys_error("socketpair", "guardian", "", errno).status();
  }
  // Everything the child needs is made before fork: between fork and exec
  // only async-signal-safe calls (uschedd has threads by now).
  const std::string arg0 = "uschedd-guardian", arg1 = "--guardian";
  char* argv[] = {const_cast<char*>(arg0.c_str()), const_cast<char*>(arg1.c_str()),
                  const_cast<char*>(proc_root_.c_str()), nullptr};
  // Copies above the fds the child dup2s into, so that no source is
  // overwritten first and every dup2 makes a copy (which clears
  // close-on-exec; dup2 of an fd onto itself would not).
  const int child_sock = ::fcntl(sv[1], F_DUPFD_CLOEXEC, kHoldFd + 1);
  ::close(sv[1]);
  const int hold = hold_fd_ >= 0 ? ::fcntl(hold_fd_, F_DUPFD_CLOEXEC, kHoldFd + 1) : -1;
  const pid_t pid = child_sock < 0 || (hold_fd_ >= 0 && hold < 0) ? -1 : ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(sv[0]);
    if (child_sock >= 0) ::close(child_sock);
    if (hold >= 0) ::close(hold);
    return sys_error("fork", "guardian", "", err).status();
  }
  if (pid == 0) {
    // dup2 clears close-on-exec on the copies; the originals close at exec.
    if (::dup2(child_sock, kSockFd) < 0) ::_exit(127);
    if (hold >= 0 && ::dup2(hold, kHoldFd) < 0) ::_exit(127);
    // Nothing else of uschedd's (its listening socket, pidfds, state files)
    // lives on in the guardian.
    ::syscall(SYS_close_range, hold >= 0 ? kHoldFd + 1 : kSockFd + 1, ~0U, 0);
    // Its own session before it is a guardian at all: until its main ran
    // setsid, a kill of uschedd's session or group took it too (the crash
    // test once found it there).
    ::setsid();
    ::execv(exe_.c_str(), argv);
    ::_exit(127);
  }
  ::close(child_sock);
  if (hold >= 0) ::close(hold);
  sock_ = sv[0];
  pid_ = pid;
  auto pfd = PidFd::open(pid);
  pidfd_ = pfd ? pfd->release() : -1;
  if (g_fatal_armed) g_fatal_fd = sock_;
  // Tell the new guardian what the old one knew.
  for (const std::string& line : std::vector<std::string>(trees_)) send(line);
  for (const auto& [p, start] : pids_) send("pid " + std::to_string(p) + " " + std::to_string(start));
  return {};
}

void Guardian::send(const std::string& line) {
  const std::string msg = line + "\n";
  size_t off = 0;
  while (off < msg.size()) {
    // MSG_NOSIGNAL: a dead guardian is an error to log, never a SIGPIPE.
    const ssize_t n = ::send(sock_, msg.data() + off, msg.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::fprintf(stderr, "uschedd: telling the guardian (pid %d) '%s': %s; it is started again\n", pid_,
                   line.c_str(), std::strerror(errno));
      return;  // the pidfd watch respawns it and sends everything again
    }
    off += static_cast<size_t>(n);
  }
}

void Guardian::watch_tree(const std::string& dir, bool v2) {
  std::lock_guard lock(mu_);
  const std::string line = std::string("tree ") + (v2 ? "v2 " : "v1 ") + dir;
  for (const std::string& t : trees_)
    if (t == line) return;
  trees_.push_back(line);
  send(line);
}

void Guardian::watch_pid(int pid, uint64_t start_time) {
  std::lock_guard lock(mu_);
  pids_[pid] = start_time;
  send("pid " + std::to_string(pid) + " " + std::to_string(start_time));
}

void Guardian::unwatch_pid(int pid) {
  std::lock_guard lock(mu_);
  if (!pids_.erase(pid)) return;
  send("unpid " + std::to_string(pid));
}

void Guardian::reap(bool wait) {
  if (pid_ <= 0) return;
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) break;
    if (!wait || std::chrono::steady_clock::now() > until) {
      // Still thawing after 2 s: something is badly wrong; do not hang
      // uschedd's exit on it.
      if (wait) std::fprintf(stderr, "uschedd: the guardian (pid %d) did not exit within 2 s\n", pid_);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  pid_ = -1;
}

Result<std::string> Guardian::respawn() {
  std::lock_guard lock(mu_);
  int status = 0;
  std::string how = "is gone";
  if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
    how = WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                              : "exited with status " + std::to_string(WEXITSTATUS(status));
  }
  pid_ = -1;
  g_fatal_fd = -1;  // start() arms the new socket
  if (sock_ >= 0) ::close(sock_);
  if (pidfd_ >= 0) ::close(pidfd_);
  sock_ = pidfd_ = -1;
  if (Status st = start(); !st) return st;
  return how;
}

void Guardian::close_on_fatal_signals() {
  std::lock_guard lock(mu_);
  g_fatal_armed = true;
  g_fatal_fd = sock_;
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_NODEFER;
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) ::sigaction(sig, &sa, nullptr);
}

Guardian::~Guardian() {
  {
    std::lock_guard lock(mu_);
    g_fatal_armed = false;
    g_fatal_fd = -1;
    if (sock_ >= 0) ::close(sock_);
    sock_ = -1;
  }
  reap(true);
  if (pidfd_ >= 0) ::close(pidfd_);
}

// ---- the guardian ---------------------------------------------------------------

int guardian_main(const std::string& proc_root) {
  ::prctl(PR_SET_NAME, "uschedd-guard", 0, 0, 0);
  // Its own session: a kill of uschedd's process group does not reach it.
  ::setsid();
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(sig, SIG_IGN);
  // The OOM killer takes uschedd maybe, never the one that thaws after it.
  (void)write_knob(proc_root + "/self/oom_score_adj", "-1000");
  sched_param sp{};
  sp.sched_priority = Guardian::kRtPriority;
  if (::sched_setscheduler(0, SCHED_RR, &sp) != 0) {
    std::fprintf(stderr, "uschedd-guardian: cannot run at SCHED_RR %d (%s): a thaw may wait behind busy members\n",
                 Guardian::kRtPriority, std::strerror(errno));
  }
  struct Tree {
    std::string dir;
    bool v2;
  };
  std::vector<Tree> trees;
  std::map<int, uint64_t> pids;
  std::string buf;
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::read(kSockFd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) std::fprintf(stderr, "uschedd-guardian: %s; thawing now\n", errno_text("read").c_str());
    if (n <= 0) break;  // EOF: uschedd is gone
    buf.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::istringstream in(buf.substr(0, nl));
      buf.erase(0, nl + 1);
      std::string cmd;
      in >> cmd;
      if (cmd == "tree") {
        std::string kind, dir;
        in >> kind;
        std::getline(in >> std::ws, dir);
        if (!dir.empty()) trees.push_back({dir, kind == "v2"});
      } else if (cmd == "pid") {
        int pid = 0;
        uint64_t start = 0;
        if (in >> pid >> start) pids[pid] = start;
      } else if (cmd == "unpid") {
        int pid = 0;
        if (in >> pid) pids.erase(pid);
      }
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  const ProcFs proc(proc_root);
  const auto settle = detail::freeze_settle(proc, 0);  // the default bound: a thaw needs no more
  int failed = 0, continued = 0;
  for (const Tree& t : trees) {
    if (Status st = detail::cgroup_thaw_tree(t.dir, t.v2, settle); !st) {
      ++failed;
      std::fprintf(stderr, "uschedd-guardian: thawing %s: %s\n", t.dir.c_str(), st.message().c_str());
    }
  }
  for (const auto& [pid, start] : pids) {
    auto info = proc.task(pid);
    if (!info || info->start_time != start) continue;  // exited; the pid may be someone else's now
    if (::kill(pid, SIGCONT) == 0) ++continued;
  }
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "uschedd-guardian: uschedd is gone; thawed %zu freezer trees and %d stopped processes in %lld us%s\n",
               trees.size(), continued, static_cast<long long>(us), failed ? " (with errors)" : "");
  return failed ? 1 : 0;
}

}  // namespace usched::glue
