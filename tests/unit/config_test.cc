#include "usched/config.h"

#include <gtest/gtest.h>

namespace usched {
namespace {

TEST(Config, SkipsCommentsAndBlankLinesAndKeepsLineNumbers) {
  auto r = parse_config("# top\n\nusched IDLE on cpu* lwktpri 4  # idle\n  NORM on cpu0-1 locked\n");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].line, 3);
  EXPECT_EQ((*r)[0].scheduler.name, "IDLE");
  EXPECT_EQ((*r)[0].scheduler.lwktpri, 4);
  EXPECT_EQ((*r)[1].line, 4);
  EXPECT_EQ((*r)[1].pool_text, "cpu0-1");
  EXPECT_EQ((*r)[1].scheduler.locked, true);
}

TEST(Config, ErrorNamesTheLineAndTheWord) {
  auto r = parse_config("A on cpu*\nB on cpu* lwktpri 40\n");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message().rfind("line 2: ", 0), 0u) << r.status().message();
  EXPECT_NE(r.status().message().find("40"), std::string::npos);
}

TEST(Config, RejectsADuplicateName) {
  auto r = parse_config("A on cpu*\n\nA on cpu0\n");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "line 3: 'A' is defined again (first on line 1)");
}

TEST(Config, RejectsAChildBeforeItsParent) {
  auto r = parse_config("a/b on cpu0\na on cpu*\n");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("line 1: 'a/b' comes before its parent 'a'"), std::string::npos)
      << r.status().message();
}

TEST(Config, AcceptsAChildOfASchedulerNotInTheFile) {
  auto r = parse_config("NORM/web on cpu0\n");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
}

TEST(Config, EmptyFileIsEmptyConfig) {
  auto r = parse_config("# nothing\n\n");
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(r->empty());
}

}  // namespace
}  // namespace usched
