//! Item 2 of the performance issue: usched::rfork into a scheduler + exec of
//! /bin/true + wait, on an open client, vs plain fork + exec + wait.
//! Goal: <= 1.3x. Real cgroup glue as root (the child is also moved into
//! the scheduler's cgroup, off the critical path), else the fake glue.
#include <sys/wait.h>
#include <unistd.h>

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

  ratio(
      "rfork_exec_true_vs_fork", args.rounds, args.iters,
      [&] {
        auto r = rfork(client, "B");
        if (!r) die(r.status().message());
        if (*r == 0) exec_true();
        wait_ok(*r);
      },
      [&] {
        pid_t p = ::fork();
        if (p == 0) exec_true();
        wait_ok(p);
      },
      "goal <= 1.3x");
  c->reset();
  stopped(d);
  return 0;
}
