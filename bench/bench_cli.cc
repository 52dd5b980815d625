//! Issue 12's CLI goals: `usched run B -- /bin/true` <= 2x
//! `taskset -c 1 /bin/true`, and `usched list` <= 3x, each as a whole
//! process (fork, exec, wait). Also `usched --version`: the full command's
//! start-up alone (usched hands it to usched-cli), no connection.
#include <sys/wait.h>
#include <unistd.h>

#include "support/bench_util.h"

using namespace usched;
using namespace usched::bench;

namespace {

void spawn(const std::vector<std::string>& argv) {
  pid_t p = ::fork();
  if (p == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execvp(a[0], a.data());
    ::_exit(127);
  }
  int st = 0;
  while (::waitpid(p, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("'" + argv[0] + " ...' did not exit 0");
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, 40);
  test::Daemon d(daemon_flags());
  Owned own_d(d);
  if (!d.start()) die("uschedd did not start: " + d.log());
  if (d.cli({"B", "on", "cpu1"}).exit_code != 0) die("cannot create B: " + d.log());
  const std::string cli = USCHED_CLI_PATH;
  const std::vector<std::string> run = {cli, "--socket", d.socket(), "run", "B", "--", "/bin/true"};
  const std::vector<std::string> taskset = {"taskset", "-c", "1", "/bin/true"};

  ratio("usched_run_vs_taskset", args.rounds, args.iters, [&] { spawn(run); },
        [&] { spawn(taskset); }, "goal <= 2x");
  ratio("usched_version_vs_taskset", args.rounds, args.iters, [&] { spawn({cli, "--version"}); },
        [&] { spawn(taskset); }, "(start-up alone, no connection)");
  ratio("usched_list_vs_taskset", args.rounds, args.iters,
        [&] { spawn({cli, "--socket", d.socket(), "list"}); }, [&] { spawn(taskset); },
        "goal <= 3x (connect + one read RPC)");
  stopped(d);
  return 0;
}
