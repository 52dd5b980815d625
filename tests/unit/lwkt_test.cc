#include <gtest/gtest.h>

#include "usched/lwkt.h"

namespace usched {
namespace {

struct Row {
  int lwktpri;
  SchedClass cls;
  int rt;
  int weight;
  int shares;
  bool idle;
};

class LwktClassTable : public ::testing::TestWithParam<Row> {};

TEST_P(LwktClassTable, DefaultClassFollowsLwktpri) {
  const Row& r = GetParam();
  ClassParams p = class_for(r.lwktpri);
  EXPECT_EQ(p.cls, r.cls);
  EXPECT_EQ(p.rt_priority, r.rt);
  EXPECT_EQ(p.cpu_weight, r.weight);
  EXPECT_EQ(p.cpu_shares, r.shares);
  EXPECT_EQ(p.cgroup_idle, r.idle);
}

INSTANTIATE_TEST_SUITE_P(Table, LwktClassTable,
                         ::testing::Values(Row{0, SchedClass::kIdle, 0, 1, 2, true},
                                           Row{4, SchedClass::kIdle, 0, 1, 2, true},
                                           Row{5, SchedClass::kNormal, 0, 25, 256, false},
                                           Row{6, SchedClass::kNormal, 0, 100, 1024, false},
                                           Row{7, SchedClass::kNormal, 0, 400, 4096, false},
                                           Row{8, SchedClass::kRealtime, 1, 100, 1024, false},
                                           Row{31, SchedClass::kRealtime, 24, 100, 1024, false}));

TEST(Lwkt, OverrideChangesClassWeightFollowsNormalBand) {
  ClassParams n7 = class_for(7, SchedClass::kNormal);
  EXPECT_EQ(n7.cpu_weight, 400);
  ClassParams n2 = class_for(2, SchedClass::kNormal);
  EXPECT_EQ(n2.cls, SchedClass::kNormal);
  EXPECT_EQ(n2.cpu_weight, 100);
  EXPECT_EQ(n2.cpu_shares, 1024);
  EXPECT_FALSE(n2.cgroup_idle);
  ClassParams n20 = class_for(20, SchedClass::kNormal);
  EXPECT_EQ(n20.rt_priority, 0);
  EXPECT_EQ(n20.cpu_weight, 100);
}

TEST(Lwkt, RealtimeOverrideBelowEightGetsPriorityOne) {
  ClassParams p = class_for(5, SchedClass::kRealtime);
  EXPECT_EQ(p.cls, SchedClass::kRealtime);
  EXPECT_EQ(p.rt_priority, 1);
}

TEST(Lwkt, IdleOverrideIsWeightOneAndCgroupIdle) {
  ClassParams p = class_for(20, SchedClass::kIdle);
  EXPECT_EQ(p.cls, SchedClass::kIdle);
  EXPECT_EQ(p.cpu_weight, 1);
  EXPECT_EQ(p.cpu_shares, 2);
  EXPECT_TRUE(p.cgroup_idle);
  EXPECT_EQ(p.rt_priority, 0);
}

TEST(Lwkt, ValidatesRange0To31) {
  EXPECT_TRUE(validate_lwktpri(0).is_ok());
  EXPECT_TRUE(validate_lwktpri(31).is_ok());
  EXPECT_EQ(validate_lwktpri(40).message(), "lwktpri 40 is out of range 0..31");
  EXPECT_EQ(validate_lwktpri(-1).code(), Code::kInvalidArgument);
}

TEST(Lwkt, ParseClassAcceptsAliasesCaseInsensitively) {
  EXPECT_EQ(*parse_class("idle"), SchedClass::kIdle);
  EXPECT_EQ(*parse_class("NORMAL"), SchedClass::kNormal);
  EXPECT_EQ(*parse_class("other"), SchedClass::kNormal);
  EXPECT_EQ(*parse_class("realtime"), SchedClass::kRealtime);
  EXPECT_EQ(*parse_class("rr"), SchedClass::kRealtime);
  EXPECT_FALSE(parse_class("fifo").is_ok());
  EXPECT_STREQ(class_name(SchedClass::kRealtime), "realtime");
}

}  // namespace
}  // namespace usched
