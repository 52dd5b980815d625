// The pure half of the systemd cgroup driver: unit names, systemd's
// escaping, property encoding, and which unit a cgroup path belongs to.
#include "usched/glue/systemd_names.h"

#include <gtest/gtest.h>

#include "usched/glue/glue.h"

namespace usched::glue::systemd {
namespace {

TEST(SystemdNames, EscapeFollowsSystemdEscape) {
  // What `systemd-escape` prints for the same strings.
  EXPECT_EQ(escape("batch"), "batch");
  EXPECT_EQ(escape("my-job"), "my\\x2djob");
  EXPECT_EQ(escape("a_b:c.d"), "a_b:c.d");
  EXPECT_EQ(escape(".hidden"), "\\x2ehidden");
  EXPECT_EQ(escape("a.b"), "a.b");
  EXPECT_EQ(escape("x y"), "x\\x20y");
  EXPECT_EQ(escape("a/b"), "a-b");
}

TEST(SystemdNames, UnescapeInvertsEscape) {
  for (const char* s : {"batch", "my-job", ".x", "a.b-c_d", "-", "--.."}) {
    auto u = unescape(escape(s));
    ASSERT_TRUE(u.has_value()) << s;
    EXPECT_EQ(*u, s);
  }
  EXPECT_FALSE(unescape("a\\x2").has_value());
  EXPECT_FALSE(unescape("a\\y20").has_value());
  EXPECT_FALSE(unescape("a\\xzz").has_value());
}

TEST(SystemdNames, SlicesNestWithDashes) {
  EXPECT_EQ(slice_name("usched", ""), "usched.slice");
  EXPECT_EQ(slice_name("usched", "batch"), "usched-batch.slice");
  EXPECT_EQ(slice_name("usched", "batch/jobA"), "usched-batch-jobA.slice");
  EXPECT_EQ(slice_name("usched", "batch/my-job"), "usched-batch-my\\x2djob.slice");
  EXPECT_EQ(slice_path("usched", ""), "/usched.slice");
  EXPECT_EQ(slice_path("usched", "batch/jobA"), "/usched.slice/usched-batch.slice/usched-batch-jobA.slice");
  // A '-' inside a name is escaped, so it never reads as another level.
  EXPECT_NE(slice_name("usched", "a-b"), slice_name("usched", "a/b"));
}

TEST(SystemdNames, SliceNamesMapBackToEntities) {
  for (const char* e : {"batch", "batch/jobA", "a-b/.c/d_e", "NORM"}) {
    auto back = entity_of_slice("usched", slice_name("usched", e));
    ASSERT_TRUE(back.has_value()) << e;
    EXPECT_EQ(*back, e);
  }
  EXPECT_EQ(entity_of_slice("usched", "usched.slice"), std::string());
  EXPECT_FALSE(entity_of_slice("usched", "system.slice").has_value());
  EXPECT_FALSE(entity_of_slice("usched", "uschedx-a.slice").has_value());
  EXPECT_FALSE(entity_of_slice("usched", "usched-a.scope").has_value());
  EXPECT_FALSE(entity_of_slice("usched", "usched-a--b.slice").has_value());
}

TEST(SystemdNames, ScopeNames) {
  EXPECT_EQ(run_scope_name("usched", 42, 0), "usched-run-42.scope");
  EXPECT_EQ(run_scope_name("usched", 42, 7), "usched-run-42-7.scope");
  EXPECT_EQ(returned_scope_name("usched", 42), "usched-returned-42.scope");
}

TEST(SystemdNames, UnitOfCgroup) {
  auto u = unit_of_cgroup("/system.slice/victim.service");
  EXPECT_EQ(u.slice, "system.slice");
  EXPECT_EQ(u.unit, "victim.service");
  EXPECT_EQ(u.subcgroup, "");
  u = unit_of_cgroup("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service");
  EXPECT_EQ(u.slice, "user-1000.slice");
  EXPECT_EQ(u.unit, "user@1000.service");
  EXPECT_EQ(u.subcgroup, "/app.slice/foo.service");
  u = unit_of_cgroup("/usched.slice/usched-batch.slice/usched-run-9.scope/gang:vm");
  EXPECT_EQ(u.slice, "usched-batch.slice");
  EXPECT_EQ(u.unit, "usched-run-9.scope");
  EXPECT_EQ(u.subcgroup, "/gang:vm");
  u = unit_of_cgroup("/");
  EXPECT_EQ(u.slice, "-.slice");
  EXPECT_EQ(u.unit, "");
  u = unit_of_cgroup("/init.scope");
  EXPECT_EQ(u.slice, "-.slice");
  EXPECT_EQ(u.unit, "init.scope");

  EXPECT_TRUE(in_our_tree("usched", "/usched.slice/usched-batch.slice/usched-run-9.scope"));
  EXPECT_FALSE(in_our_tree("usched", "/usched.slicex/a"));
  EXPECT_FALSE(in_our_tree("usched", "/system.slice/usched.service"));
  EXPECT_TRUE(is_service("victim.service"));
  EXPECT_FALSE(is_service("session-3.scope"));
}

TEST(SystemdNames, AllowedCpusIsALittleEndianByteMask) {
  EXPECT_EQ(cpu_mask(CpuSet()), std::vector<uint8_t>{});
  EXPECT_EQ(cpu_mask(CpuSet::of({0})), (std::vector<uint8_t>{0x01}));
  EXPECT_EQ(cpu_mask(CpuSet::range(1, 2)), (std::vector<uint8_t>{0x06}));
  EXPECT_EQ(cpu_mask(CpuSet::of({0, 9})), (std::vector<uint8_t>{0x01, 0x02}));
  EXPECT_EQ(cpu_mask(CpuSet::range(0, 15)), (std::vector<uint8_t>{0xff, 0xff}));
}

TEST(SystemdNames, WeightFollowsTheLwktpriTable) {
  EXPECT_EQ(cpu_weight(class_for(5)), 25u);
  EXPECT_EQ(cpu_weight(class_for(6)), 100u);
  EXPECT_EQ(cpu_weight(class_for(7)), 400u);
  EXPECT_EQ(cpu_weight(class_for(2)), 1u);  // idle
  EXPECT_EQ(cpu_weight(class_for(9)), static_cast<uint64_t>(class_for(9).cpu_weight));
  ClassParams huge;
  huge.cpu_weight = 50000;
  EXPECT_EQ(cpu_weight(huge), 10000u);
}

TEST(SystemdNames, PropertiesAndTheirSignatures) {
  auto p = slice_properties("batch", CpuSet::range(1, 2), class_for(6));
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[1].name, "AllowedCPUs");
  EXPECT_STREQ(signature(p[1].value), "ay");
  EXPECT_EQ(p[2].name, "CPUWeight");
  EXPECT_STREQ(signature(p[2].value), "t");
  EXPECT_EQ(describe(p), "Description=usched scheduler batch AllowedCPUs=1-2 CPUWeight=100");

  auto s = scope_properties("usched-batch.slice", 42, "m");
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[1], (Property{"Slice", std::string("usched-batch.slice")}));
  EXPECT_EQ(s[2], (Property{"PIDs", std::vector<uint32_t>{42}}));
  EXPECT_STREQ(signature(s[2].value), "au");
  EXPECT_EQ(s[3], (Property{"Delegate", true}));
  EXPECT_STREQ(signature(s[3].value), "b");
}

TEST(SystemdNames, KindParsesAndTheDriverSaysWhyItCannotRun) {
  auto k = parse_kind("systemd");
  ASSERT_TRUE(k.is_ok());
  EXPECT_EQ(*k, Kind::kSystemd);
  EXPECT_STREQ(kind_name(Kind::kSystemd), "systemd");
  // This tier runs where systemd is not PID 1 (or on a temp cgroup root):
  // the probe says no with a reason, and forcing the driver fails clearly.
  Options o;
  o.cgroup_root = "/nonexistent-cgroup-root";
  auto [yes, why] = probe_systemd(o);
  EXPECT_FALSE(yes);
  EXPECT_FALSE(why.empty());
  o.kind = Kind::kSystemd;
  auto g = make_glue(o);
  ASSERT_FALSE(g.is_ok());
  EXPECT_NE(g.status().message().find("systemd cgroup driver cannot be used"), std::string::npos)
      << g.status().message();
}

}  // namespace
}  // namespace usched::glue::systemd
