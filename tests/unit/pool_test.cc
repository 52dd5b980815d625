#include <gtest/gtest.h>

#include "usched/pool.h"

namespace usched {
namespace {

struct GoodPool {
  std::vector<std::string> words;
  bool all;
  std::vector<int> vcpus;
  std::string printed;
};

class PoolParseGood : public ::testing::TestWithParam<GoodPool> {};

TEST_P(PoolParseGood, ParsesToSortedUniqueVcpus) {
  auto r = PoolSpec::parse(GetParam().words);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->all, GetParam().all);
  EXPECT_EQ(r->vcpus, GetParam().vcpus);
  EXPECT_EQ(r->to_string(), GetParam().printed);
}

INSTANTIATE_TEST_SUITE_P(
    Table, PoolParseGood,
    ::testing::Values(GoodPool{{"cpu*"}, true, {}, "cpu*"},
                      GoodPool{{"cpu1", "cpu2"}, false, {1, 2}, "cpu1-2"},
                      GoodPool{{"cpu0-3"}, false, {0, 1, 2, 3}, "cpu0-3"},
                      GoodPool{{"0-3,6"}, false, {0, 1, 2, 3, 6}, "cpu0-3,6"},
                      GoodPool{{"cpu0-1,cpu3"}, false, {0, 1, 3}, "cpu0-1,3"},
                      GoodPool{{"cpu3", "cpu3", "3"}, false, {3}, "cpu3"},
                      GoodPool{{"4095"}, false, {4095}, "cpu4095"}));

class PoolParseBad : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(PoolParseBad, IsInvalidArgument) {
  auto r = PoolSpec::parse(GetParam());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Table, PoolParseBad,
                         ::testing::Values(std::vector<std::string>{},
                                           std::vector<std::string>{"cpu*", "cpu1"},
                                           std::vector<std::string>{"cpu-1"},
                                           std::vector<std::string>{"4096"},
                                           std::vector<std::string>{"cpu5-3"},
                                           std::vector<std::string>{"cpux"},
                                           std::vector<std::string>{"locked"},
                                           std::vector<std::string>{"0,,1"}));

TEST(PoolParse, EmptyListSaysPoolIsEmpty) {
  EXPECT_EQ(PoolSpec::parse(std::vector<std::string>{}).status().message(), "pool is empty");
}

TEST(PoolParse, ErrorNamesTheWord) {
  auto r = PoolSpec::parse(std::vector<std::string>{"cpu1", "bogus"});
  EXPECT_NE(r.status().message().find("'bogus'"), std::string::npos) << r.status().message();
}

TEST(PoolParse, TextFormSplitsOnSpaces) {
  auto r = PoolSpec::parse(std::string_view("cpu1  cpu2\t4"));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->vcpus, (std::vector<int>{1, 2, 4}));
}

TEST(PoolResolve, AllFollowsParentCountListIsLiteral) {
  EXPECT_EQ(PoolSpec::everything().resolve(3), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(PoolSpec::parse(std::string_view("cpu1 cpu5"))->resolve(2), (std::vector<int>{1, 5}));
}

using Blocks = std::vector<std::vector<int>>;

TEST(VcpuBlocks, FourOnEightAreContiguousPairs) {
  EXPECT_EQ(vcpu_blocks(8, 4), (Blocks{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
}

TEST(VcpuBlocks, TwoOnFiveLargerBlockFirst) {
  EXPECT_EQ(vcpu_blocks(5, 2), (Blocks{{0, 1, 2}, {3, 4}}));
}

TEST(VcpuBlocks, EightOnFourWrapModulo) {
  EXPECT_EQ(vcpu_blocks(4, 8), (Blocks{{0}, {1}, {2}, {3}, {0}, {1}, {2}, {3}}));
}

TEST(VcpuBlocks, OneOnOne) { EXPECT_EQ(vcpu_blocks(1, 1), (Blocks{{0}})); }

TEST(VcpuBlocks, SizesDifferByAtMostOneAndCoverPool) {
  for (int p = 1; p <= 20; ++p) {
    for (int v = 1; v <= p; ++v) {
      Blocks b = vcpu_blocks(p, v);
      ASSERT_EQ(static_cast<int>(b.size()), v);
      int next = 0;
      size_t prev = b[0].size();
      for (const auto& blk : b) {
        EXPECT_LE(blk.size(), prev);
        EXPECT_GE(blk.size() + 1, b[0].size());
        prev = blk.size();
        for (int x : blk) EXPECT_EQ(x, next++);
      }
      EXPECT_EQ(next, p);
    }
  }
}

}  // namespace
}  // namespace usched
