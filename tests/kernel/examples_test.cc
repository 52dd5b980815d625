// Tier 3: every config in examples/ applies on this machine with the real
// glue (uschedd --config EXAMPLE at start-up, then `usched apply` again),
// in a private cgroup subtree removed afterwards.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "support/harness.h"
#include "support/kernel.h"
#include "usched/config.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;

class ExampleTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ExampleTest, AppliesOnThisMachine) {
  USCHED_SKIP_OR_FAIL_IF(kernel_unavailable("example configs"));
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
  remove_cgroup_top(top);
}

INSTANTIATE_TEST_SUITE_P(Examples, ExampleTest,
                         ::testing::Values("realtime-shield.conf", "batch-pool.conf", "vm-host.conf", "vm-gangs.conf"),
                         [](const auto& info) {
                           std::string n = info.param.substr(0, info.param.find('.'));
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace usched::test
