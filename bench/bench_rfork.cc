//! Item 2 of the performance issue: usched::rfork into a scheduler + exec of
//! /bin/true + wait, on an open client, vs plain fork + exec + wait.
//! Goal: <= 1.3x. Real cgroup glue as root (the child is also moved into
//! the scheduler's cgroup, off the critical path), else the fake glue.
//! Also two floors, each answered at once by a thread: any placement made
//! before exec (the child makes one unix-socket round trip and tells the
//! parent through a pipe), and rfork's own exchange (the parent connects
//! before fork and asks, parent and child both peek at the one answer).
//! rfork's ratio minus the second is what uschedd's work costs.
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "support/bench_util.h"
#include "usched/client.h"

using namespace usched;
using namespace usched::bench;

namespace {

void exec_true() {
  ::execl("/bin/true", "true", static_cast<char*>(nullptr));
  ::_exit(127);
}

void wait_ok(pid_t pid) {
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("child did not exit 0");
}

// Answers every connection at once with a reply of the placement
// socket's size; the floor's other end.
class Echo {
 public:
  explicit Echo(const std::string& path) : path_(path) {
    fd_ = test::listen_unix(path, 64);
    if (fd_ < 0) die("echo socket " + path + ": " + std::strerror(errno));
    t_ = std::thread([this] {
      char buf[256], reply[36] = {};
      while (!stop_) {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        if (::recv(c, buf, sizeof buf, 0) > 0) (void)::send(c, reply, sizeof reply, MSG_NOSIGNAL);
        ::close(c);
      }
    });
  }
  ~Echo() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    t_.join();
    ::close(fd_);
    ::unlink(path_.c_str());
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread t_;
};

// fork; the child connects to path, sends 7 bytes, reads the answer,
// writes 8 bytes to the parent and execs /bin/true; the parent reads them
// and waits.
void fork_roundtrip_exec(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) die("pipe");
  pid_t p = ::fork();
  if (p == 0) {
    ::close(fds[0]);
    const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char req[7] = {3}, reply[64];
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::send(s, req, sizeof req, MSG_NOSIGNAL) != sizeof req || ::recv(s, reply, sizeof reply, 0) <= 0)
      ::_exit(126);
    ::close(s);
    const long n = 36;
    if (::write(fds[1], &n, sizeof n) != sizeof n) ::_exit(126);
    exec_true();
  }
  ::close(fds[1]);
  long n = 0;
  if (::read(fds[0], &n, sizeof n) != sizeof n) die("the child did not answer");
  ::close(fds[0]);
  wait_ok(p);
}

// rfork's own exchange, answered at once: the parent connects before it
// forks (the child inherits the connection), sends 10 bytes naming the
// child, and both wait for the answer with MSG_PEEK; the child execs
// /bin/true, the parent waits.
void fork_exchange_exec(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect " + path);
  char reply[64];
  pid_t p = ::fork();
  if (p == 0) {
    if (::recv(s, reply, sizeof reply, MSG_PEEK) <= 0) ::_exit(126);
    exec_true();
  }
  char req[10] = {6};
  if (::send(s, req, sizeof req, MSG_NOSIGNAL) != sizeof req) die("send");
  if (::recv(s, reply, sizeof reply, MSG_PEEK) <= 0) die("no answer");
  ::close(s);
  wait_ok(p);
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, 100);
  test::Daemon d(daemon_flags());
  Owned own_d(d);
  if (!d.start()) die("uschedd did not start: " + d.log());
  if (d.cli({"B", "on", "cpu1"}).exit_code != 0) die("cannot create B: " + d.log());
  auto c = Client::connect(d.socket());
  if (!c) die(c.status().message());
  Client& client = **c;
  auto fork_exec = [] {
    pid_t p = ::fork();
    if (p == 0) exec_true();
    wait_ok(p);
  };

  ratio(
      "rfork_exec_true_vs_fork", args.rounds, args.iters,
      [&] {
        auto r = rfork(client, "B");
        if (!r) die(r.status().message());
        if (*r == 0) exec_true();
        wait_ok(*r);
      },
      fork_exec, "goal <= 1.3x");

  const std::string echo_path = d.dir() / "floor.sock";
  {
    Echo echo(echo_path);
    ratio(
        "floor_roundtrip_exec_vs_fork", args.rounds, args.iters, [&] { fork_roundtrip_exec(echo_path); },
        fork_exec,
        "(one unix-socket round trip answered at once, before exec: what any placement costs)");
    ratio(
        "floor_exchange_exec_vs_fork", args.rounds, args.iters, [&] { fork_exchange_exec(echo_path); },
        fork_exec,
        "(rfork's exchange answered at once: connect before fork, parent asks, both peek)");
  }
  c->reset();
  stopped(d);
  return 0;
}
