// Tier 3: every config in examples/ applies on this machine with the real
// glue (uschedd --config EXAMPLE at start-up, then `usched apply` again),
// in a private cgroup subtree removed afterwards.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "support/harness.h"
#include "usched/config.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;

const std::string kRoot = "/sys/fs/cgroup";

std::string why_not() {
  if (::geteuid() != 0) return "example configs need root";
  const bool v1 = std::filesystem::exists(kRoot + "/cpuset/cpuset.cpus");
  const bool v2 = read_file(kRoot + "/cgroup.controllers").find("cpuset") != std::string::npos;
  if (!v1 && !v2) return "no cgroup cpuset controller at " + kRoot;
  return "";
}

void remove_top(const std::string& top) {
  for (const char* h : {"cpuset", "cpu", "freezer", ""}) {
    const std::string dir = kRoot + (*h ? "/" + std::string(h) : "") + "/" + top;
    if (!std::filesystem::exists(dir)) continue;
    std::vector<std::string> dirs;
    for (auto& e : std::filesystem::recursive_directory_iterator(dir))
      if (e.is_directory()) dirs.push_back(e.path());
    dirs.push_back(dir);
    std::sort(dirs.begin(), dirs.end(), [](auto& a, auto& b) { return a.size() > b.size(); });
    for (auto& d : dirs) ::rmdir(d.c_str());
  }
}

class ExampleTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ExampleTest, AppliesOnThisMachine) {
  const std::string why = why_not();
  if (!why.empty()) {
    const char* req = std::getenv("USCHED_REQUIRE_KERNEL");
    if (req && std::string(req) == "1") FAIL() << why;
    GTEST_SKIP() << why;
  }
  const std::string file = std::string(USCHED_SOURCE_DIR) + "/examples/" + GetParam();
  auto entries = parse_config(read_file(file));
  ASSERT_TRUE(entries.is_ok()) << entries.status().message();
  const std::string top = "usched-test-" + random_suffix();
  {
    Daemon d({"--cgroup-top", top, "--cleanup-on-exit", "--config", file});
    ASSERT_TRUE(d.start()) << d.log();
    auto list = d.cli({"list"});
    ASSERT_EQ(list.exit_code, 0) << list.err;
    for (const auto& e : *entries) EXPECT_THAT(list.out, HasSubstr(e.scheduler.name)) << list.out;
    // Applying it again is a no-op: every line is unchanged.
    auto again = d.cli({"apply", file});
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_THAT(again.out, HasSubstr("applied 0 changes"));
    EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
  }
  remove_top(top);
}

INSTANTIATE_TEST_SUITE_P(Examples, ExampleTest,
                         ::testing::Values("realtime-shield.conf", "batch-pool.conf", "vm-host.conf"),
                         [](const auto& info) {
                           std::string n = info.param.substr(0, info.param.find('.'));
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace usched::test
