//! The declarative config: a file of usched lines, one scheduler a line, as
//! typed after `usched` (the word `usched` may lead the line), with `#`
//! comments and blank lines. Parsing is pure; the daemon turns the parsed
//! file into a plan against its running tree (daemon/apply.cc).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "usched/line.h"
#include "usched/result.h"

namespace usched {

struct ConfigEntry {
  int line = 0;              // 1-based line number in the file
  std::string text;          // the line as written, comment stripped
  SchedulerLine scheduler;
  std::string pool_text;     // the pool words as written ("cpu1 cpu2")
};

// Errors read "LINE N: reason" (e.g. "line 4: lwktpri needs a number
// 0..31, got '40'", "line 7: 'batch' is defined again (first on line 3)").
// A child must come after its parent when both are in the file.
Result<std::vector<ConfigEntry>> parse_config(std::string_view text);

}  // namespace usched
