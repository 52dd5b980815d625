#include <gtest/gtest.h>

#include "usched/glue/glue.h"

namespace usched::glue {
namespace {

TEST(TaskOrigin, RoundTripsThroughOneLine) {
  TaskOrigin o;
  o.cpus = CpuSet::parse("0-1,4").value();
  o.policy = 2;
  o.rt_priority = 10;
  o.nice = -5;
  o.cgroups["cpuset"] = "/";
  o.cgroups["cpu"] = "/user;odd%path";
  std::string s = o.to_string();
  EXPECT_EQ(s.find('\n'), std::string::npos);
  EXPECT_EQ(s, "cpus=0-1,4;policy=2;prio=10;nice=-5;cg:cpu=/user%3Bodd%25path;cg:cpuset=/");
  auto p = TaskOrigin::parse(s);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->cpus, o.cpus);
  EXPECT_EQ(p->policy, 2);
  EXPECT_EQ(p->rt_priority, 10);
  EXPECT_EQ(p->nice, -5);
  EXPECT_EQ(p->cgroups, o.cgroups);
}

TEST(TaskOrigin, ParsesTheDocumentedExample) {
  auto p = TaskOrigin::parse("cpus=0-1;policy=0;prio=0;nice=0;cg:cpuset=/;cg:cpu=/user");
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->cgroups.at("cpu"), "/user");
}

TEST(TaskOrigin, ParseErrorsNameTheField) {
  auto msg = [](std::string_view s) { return TaskOrigin::parse(s).status().message(); };
  EXPECT_NE(msg("cpus=0;prio=x").find("field 'prio': 'x' is not a number"), std::string::npos);
  EXPECT_NE(msg("cpus=0;bogus=1").find("unknown field 'bogus'"), std::string::npos);
  EXPECT_NE(msg("cpus=0;nice").find("field 'nice' has no '='"), std::string::npos);
  EXPECT_NE(msg("policy=0").find("missing field 'cpus'"), std::string::npos);
  EXPECT_NE(msg("cpus=5-3").find("field 'cpus'"), std::string::npos);
  EXPECT_NE(msg("cpus=0;cg:cpu=/a%zz").find("cg:cpu"), std::string::npos);
  EXPECT_EQ(TaskOrigin::parse("cpus=0;prio=x").status().code(), Code::kInvalidArgument);
}

TEST(Kind, NamesAndParsesEveryKind) {
  for (Kind k : {Kind::kAuto, Kind::kCgroupV2, Kind::kCgroupV1, Kind::kAffinity, Kind::kFake})
    EXPECT_EQ(parse_kind(kind_name(k)).value(), k);
  EXPECT_EQ(parse_kind("v1").value(), Kind::kCgroupV1);
  EXPECT_EQ(parse_kind("v2").value(), Kind::kCgroupV2);
  EXPECT_FALSE(parse_kind("v3").is_ok());
}

}  // namespace
}  // namespace usched::glue
