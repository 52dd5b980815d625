#include <gtest/gtest.h>

#include <string>

#include "usched/names.h"

namespace usched {
namespace {

TEST(Names, AcceptsPathsOfValidComponents) {
  for (const char* n : {"batch", "batch/jobA", "a.b-c_D9", "...", "a/.b/c..", "x"}) {
    EXPECT_TRUE(validate_name(n).is_ok()) << n << ": " << validate_name(n).message();
  }
  EXPECT_TRUE(validate_name(std::string(63, 'a')).is_ok());
  std::string deep = "a";
  for (int i = 1; i < 16; ++i) deep += "/a";
  EXPECT_TRUE(validate_name(deep).is_ok());
}

struct BadName {
  std::string name;
  std::string fragment;
};

class NamesRejects : public ::testing::TestWithParam<BadName> {};

TEST_P(NamesRejects, WithInvalidArgumentNamingTheRule) {
  Status s = validate_name(GetParam().name);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find(GetParam().fragment), std::string::npos) << s.message();
}

std::string depth17() {
  std::string d = "a";
  for (int i = 1; i < 17; ++i) d += "/a";
  return d;
}

INSTANTIATE_TEST_SUITE_P(
    Table, NamesRejects,
    ::testing::Values(BadName{"a/../b", "name 'a/../b': component '..' is not allowed"},
                      BadName{"..", "component '..' is not allowed"},
                      BadName{".", "component '.' is not allowed"},
                      BadName{"a/./b", "component '.' is not allowed"},
                      BadName{"a//b", "doubled '/'"}, BadName{"/a", "start with '/'"},
                      BadName{"a/", "end with '/'"}, BadName{"", "empty"},
                      BadName{std::string(64, 'a'), "longer than 63"},
                      BadName{depth17(), "more than 16 components"},
                      BadName{"a b", "character ' '"}, BadName{std::string("a\0b", 3), "\\x00"},
                      BadName{"cpu*", "character '*'"}, BadName{"a/b\\c", "character '\\'"},
                      BadName{"a\n", "\\x0a"}));

TEST(Names, SplitParentAndLeaf) {
  EXPECT_EQ(split_name("a/b/c"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(split_name("").empty());
  EXPECT_EQ(parent_name("batch/jobA"), "batch");
  EXPECT_EQ(parent_name("batch"), "");
  EXPECT_EQ(leaf_name("batch/jobA"), "jobA");
  EXPECT_EQ(leaf_name("batch"), "batch");
}

TEST(ThreadGlob, AcceptsTheGlobsVmMonitorsNeed) {
  for (const char* g : {"CPU */KVM", "CPU */*", "fc_vcpu *", "vcpu[0-9]*", "CPU [!2]/TCG", "[]x]*", "a\\*", "*",
                        "123456789012345", "*1234567890123*"})
    EXPECT_TRUE(validate_thread_glob(g).is_ok()) << g << ": " << validate_thread_glob(g).message();
}

TEST(ThreadGlob, RejectsWhatCouldNeverMatchOrIsMalformedNamingWhy) {
  struct Case {
    std::string glob, says;
  };
  for (const Case& c : std::vector<Case>{
           {"", "thread glob is empty"},
           {"CPU [0-9/TCG", "'[' at offset 4 is never closed"},
           {"[!]", "'[' at offset 0 is never closed"},
           {"CPU *\\", "ends in a lone '\\'"},
           {"CPU\t*", "control character at offset 3"},
           {"1234567890123456", "needs at least 16 characters but thread names hold at most 15"},
           {std::string(256, '*'), "longer than 255"},
       }) {
    Status st = validate_thread_glob(c.glob);
    EXPECT_FALSE(st.is_ok()) << c.glob;
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << c.glob;
    EXPECT_NE(st.message().find(c.says), std::string::npos) << c.glob << ": " << st.message();
  }
}

}  // namespace
}  // namespace usched
