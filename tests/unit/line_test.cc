#include <gtest/gtest.h>

#include "usched/line.h"

namespace usched {
namespace {

TEST(Line, ParsesDillonExample) {
  auto r = parse_scheduler_line("usched MYCUSTOM on cpu1 cpu2 lwktpri 4 locked");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->name, "MYCUSTOM");
  EXPECT_EQ(r->pool.vcpus, (std::vector<int>{1, 2}));
  EXPECT_EQ(r->lwktpri, 4);
  EXPECT_EQ(r->locked, true);
  EXPECT_FALSE(r->vcpus.has_value());
  EXPECT_FALSE(r->exclusive.has_value());
}

TEST(Line, ParsesNestedNameWithVcpusAndAllKeywords) {
  auto r = parse_scheduler_line("batch/jobA on cpu0-1 vcpus 4 class realtime unlocked exclusive");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->name, "batch/jobA");
  EXPECT_EQ(r->vcpus, 4);
  EXPECT_EQ(r->class_override, SchedClass::kRealtime);
  EXPECT_EQ(r->locked, false);
  EXPECT_EQ(r->exclusive, true);
  auto s = parse_scheduler_line("x on cpu* shared");
  ASSERT_TRUE(s.is_ok());
  EXPECT_TRUE(s->pool.all);
  EXPECT_EQ(s->exclusive, false);
}

TEST(Line, IsolatedImpliesExclusiveAndExclusiveAloneIsNotIsolated) {
  auto r = parse_scheduler_line("usched REAL on cpu3 exclusive isolated");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->exclusive, true);
  EXPECT_EQ(r->isolated, true);
  auto alone = parse_scheduler_line("REAL on cpu3 isolated");
  ASSERT_TRUE(alone.is_ok()) << alone.status().to_string();
  EXPECT_EQ(alone->exclusive, true);
  EXPECT_EQ(alone->isolated, true);
  // "exclusive" alone (an update from isolated) ends isolation; "shared" too.
  auto ex = parse_scheduler_line("REAL on cpu3 exclusive");
  ASSERT_TRUE(ex.is_ok());
  EXPECT_EQ(ex->isolated, false);
  auto sh = parse_scheduler_line("REAL on cpu3 shared");
  ASSERT_TRUE(sh.is_ok());
  EXPECT_EQ(sh->isolated, false);
  // None of the three: both left as they are.
  auto none = parse_scheduler_line("REAL on cpu3 locked");
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none->exclusive.has_value());
  EXPECT_FALSE(none->isolated.has_value());
  // "isolated" ends the pool like every keyword.
  auto pool = parse_scheduler_line("REAL on cpu2 cpu3 isolated");
  ASSERT_TRUE(pool.is_ok());
  EXPECT_EQ(pool->pool.vcpus, (std::vector<int>{2, 3}));
}

TEST(Line, IsolatedAndSharedTogetherAreRejected) {
  auto r = parse_scheduler_line("REAL on cpu3 shared isolated");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("isolated"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("shared"), std::string::npos) << r.status().message();
}

struct BadLine {
  const char* line;
  const char* message;
};

class LineRejects : public ::testing::TestWithParam<BadLine> {};

TEST_P(LineRejects, WithMessageNamingTheWord) {
  auto r = parse_scheduler_line(std::string_view(GetParam().line));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find(GetParam().message), std::string::npos) << r.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Table, LineRejects,
    ::testing::Values(BadLine{"usched foo at cpu1", "expected 'on' after NAME, got 'at'"},
                      BadLine{"foo on cpu1 lokced", "unknown word 'lokced'"},
                      BadLine{"foo on cpu1 lwktpri 40", "lwktpri needs a number 0..31, got '40'"},
                      BadLine{"foo on cpu1 vcpus x", "vcpus needs a number 1..4096, got 'x'"},
                      BadLine{"foo on cpu1 vcpus 0", "vcpus needs a number 1..4096, got '0'"},
                      BadLine{"foo on cpu1 lwktpri", "lwktpri needs a number 0..31, got ''"},
                      BadLine{"foo on cpu1 class fifo", "'fifo'"},
                      BadLine{"a/../b on cpu1", "component '..' is not allowed"},
                      BadLine{"foo on lwktpri 4", "pool"}, BadLine{"foo", "expected 'on'"},
                      BadLine{"", "NAME"}, BadLine{"foo on cpu* cpu1", "cpu*"}));

TEST(Line, SplitWordsOnAnyWhitespace) {
  EXPECT_EQ(split_words("  a\tb \n c  "), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(split_words("   ").empty());
}

}  // namespace
}  // namespace usched
