// The VM tier's own tests (tests/vm/): a uschedd on the guest's cgroup v2
// cpusets with a top directory of its own, torn down with everything it
// made, and the helpers every such test uses. They fail (never skip)
// without cgroup v2 cpusets or with fewer CPUs than the test is about: the
// tier exists to run them.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/harness.h"
#include "support/kernel.h"
#include "usched/client.h"

namespace usched::test {

inline int online_cpu_count() { return static_cast<int>(std::thread::hardware_concurrency()); }

inline std::string trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

class GuestDaemonTest : public ::testing::Test {
 protected:
  void need(int cpus, const std::vector<std::string>& extra = {}) {
    ASSERT_EQ(kernel_unavailable("VM tests"), "");
    ASSERT_TRUE(cgroup_v2_cpusets()) << "the VM tests run against cgroup v2 cpusets";
    ASSERT_GE(online_cpu_count(), cpus) << "this test needs a guest with " << cpus << " CPUs";
    top_ = "usched-test-" + random_suffix();
    std::vector<std::string> args{"--cgroup-top", top_, "--cleanup-on-exit"};
    args.insert(args.end(), extra.begin(), extra.end());
    daemon_ = std::make_unique<Daemon>(args);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
    auto c = Client::connect(daemon_->socket(), 5s);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    client_ = std::move(*c);
  }
  void TearDown() override {
    kids_.clear();
    if (!daemon_) return;
    client_.reset();
    daemon_->stop(SIGTERM);
    if (HasFailure()) std::cerr << "uschedd log:\n" << daemon_->log();
    remove_cgroup_top(top_);
  }
  // The CLI with the words of `line`.
  CmdResult usched(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> w;
    for (std::string x; in >> x;) w.push_back(x);
    return daemon_->cli(w);
  }
  void create(const std::string& line) {
    auto r = usched(line);
    ASSERT_EQ(r.exit_code, 0) << line << ": " << r.err;
  }

  std::string top_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<Client> client_;
  std::vector<std::unique_ptr<Child>> kids_;
};

}  // namespace usched::test
