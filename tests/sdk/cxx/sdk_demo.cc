// Built by sdk_test.sh outside the source tree against an installed
// libusched, with find_package(usched CONFIG) and usched::usched.
// Usage: sdk_demo_cxx SOCKET SCHED GANG
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include <usched/usched.hpp>

namespace {

std::string cpus_allowed(const std::string& status_path) {
  std::ifstream in(status_path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Cpus_allowed_list:", 0) == 0) return line.substr(line.find_first_not_of(" \t", 18));
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: sdk_demo_cxx SOCKET SCHED GANG\n";
    return 2;
  }
  namespace sdk = usched::sdk;
  bool ok = true;
  sdk::set_socket(argv[1]);

  pid_t pid = -1;
  if (auto s = sdk::rfork(argv[2], pid); !s) {
    std::cerr << "rfork: " << s.code_name() << ": " << s.message() << "\n";
    return 1;
  }
  if (pid == 0) {
    std::cout << "child cpus " << cpus_allowed("/proc/self/status") << std::endl;
    _exit(0);
  }
  int st = 0;
  ok = ::waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;

  std::string thread_cpus;
  std::thread vcpu([&] {
    if (auto s = sdk::join_gang(argv[3]); !s) {
      std::cerr << "join_gang: " << s.code_name() << ": " << s.message() << "\n";
      ok = false;
      return;
    }
    std::cout << "thread " << ::gettid() << " joined " << argv[3] << std::endl;
    thread_cpus = cpus_allowed("/proc/self/task/" + std::to_string(::gettid()) + "/status");
    std::string line;
    std::getline(std::cin, line);  // stay in the gang until the test has looked
  });
  vcpu.join();
  std::cout << "thread cpus " << thread_cpus << "\n";

  if (auto s = sdk::bind_self("no-such-scheduler"); s) {
    std::cout << "bind to no-such-scheduler succeeded\n";
    ok = false;
  } else {
    std::cout << "bad name: " << s.code_name() << ": " << s.message() << "\n";
    ok = ok && s.code() == sdk::Code::kNotFound;
  }
  std::cout << (ok ? "OK" : "FAILED") << std::endl;
  return ok ? 0 : 1;
}
