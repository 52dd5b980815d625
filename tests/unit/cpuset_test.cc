#include <gtest/gtest.h>

#include "usched/cpuset.h"
#include "usched/result.h"

namespace usched {
namespace {

struct GoodList {
  const char* in;
  const char* canonical;
  int count;
};

class CpuSetParseGood : public ::testing::TestWithParam<GoodList> {};

TEST_P(CpuSetParseGood, ParsesAndPrintsCanonically) {
  auto r = CpuSet::parse(GetParam().in);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->to_string(), GetParam().canonical);
  EXPECT_EQ(r->count(), GetParam().count);
}

INSTANTIATE_TEST_SUITE_P(Table, CpuSetParseGood,
                         ::testing::Values(GoodList{"", "", 0}, GoodList{"  \n", "", 0},
                                           GoodList{"0", "0", 1}, GoodList{"0-3,6", "0-3,6", 5},
                                           GoodList{"0-3,6\n", "0-3,6", 5},
                                           GoodList{" 6,0-3 ", "0-3,6", 5},
                                           GoodList{"3,2,1,0", "0-3", 4},
                                           GoodList{"1-1", "1", 1},
                                           GoodList{"0-1,1-2", "0-2", 3},
                                           GoodList{"8191", "8191", 1},
                                           GoodList{"63-65", "63-65", 3}));

struct BadList {
  const char* in;
  const char* message;
};

class CpuSetParseBad : public ::testing::TestWithParam<BadList> {};

TEST_P(CpuSetParseBad, RejectsNamingTheToken) {
  auto r = CpuSet::parse(GetParam().in);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find(GetParam().message), std::string::npos) << r.status().message();
}

INSTANTIATE_TEST_SUITE_P(Table, CpuSetParseBad,
                         ::testing::Values(BadList{"9000", "cpu 9000 is beyond 8191"},
                                           BadList{"8192", "cpu 8192 is beyond 8191"},
                                           BadList{"5-3", "range 5-3 is reversed"},
                                           BadList{"x", "'x' is not a number"},
                                           BadList{"0,x", "'x' is not a number"},
                                           BadList{"-1", "'-1' is not a number"},
                                           BadList{"0-7:2", "not a number"},
                                           BadList{"0,,1", "empty"},
                                           BadList{"99999999999999999999", "is beyond 8191"}));

TEST(CpuSet, SetAlgebraMatchesDefinitions) {
  CpuSet a = CpuSet::range(0, 7), b = CpuSet::of({6, 7, 8, 100});
  EXPECT_EQ((a & b).to_string(), "6-7");
  EXPECT_EQ((a | b).to_string(), "0-8,100");
  EXPECT_EQ((a - b).to_string(), "0-5");
  EXPECT_EQ((b - a).to_string(), "8,100");
  EXPECT_TRUE(a.intersects(b));
  EXPECT_FALSE(a.intersects(CpuSet::of({100})));
  EXPECT_TRUE(CpuSet::of({1, 2}).is_subset_of(a));
  EXPECT_FALSE(b.is_subset_of(a));
  EXPECT_EQ(b.first(), 6);
  EXPECT_EQ(b.last(), 100);
  EXPECT_EQ(CpuSet().first(), -1);
  EXPECT_EQ(CpuSet().last(), -1);
}

TEST(CpuSet, EqualityIgnoresRemovedHighCpus) {
  CpuSet a = CpuSet::of({1, 500});
  a.remove(500);
  EXPECT_EQ(a, CpuSet::of({1}));
  EXPECT_TRUE((CpuSet::of({200}) & CpuSet::of({1})).empty());
  EXPECT_EQ(CpuSet::of({200}) & CpuSet::of({1}), CpuSet());
}

TEST(Status, ToStringUsesGrpcCodeName) {
  EXPECT_EQ(invalid("bad").to_string(), "INVALID_ARGUMENT: bad");
  EXPECT_STREQ(code_name(Code::kNotFound), "NOT_FOUND");
  EXPECT_STREQ(code_name(Code::kFailedPrecondition), "FAILED_PRECONDITION");
  EXPECT_STREQ(code_name(Code::kAlreadyExists), "ALREADY_EXISTS");
  EXPECT_TRUE(Status::ok().is_ok());
}

}  // namespace
}  // namespace usched
