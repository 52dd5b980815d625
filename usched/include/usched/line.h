//! Dillon's line syntax, as typed after `usched` or written in a config file:
//!   [usched] NAME on POOL... [vcpus N] [lwktpri N] [class C]
//!            [locked|unlocked] [exclusive|shared] [isolated]
//! e.g. "usched MYCUSTOM on cpu1 cpu2 lwktpri 4 locked",
//!      "batch/jobA on cpu0-1 vcpus 4". Pure parser: no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "usched/lwkt.h"
#include "usched/pool.h"
#include "usched/result.h"

namespace usched {

struct SchedulerLine {
  std::string name;
  PoolSpec pool;
  std::optional<int> vcpus;
  std::optional<int> lwktpri;
  std::optional<SchedClass> class_override;
  std::optional<bool> locked;
  std::optional<bool> exclusive;
  // "isolated" (implies exclusive) sets true; "exclusive" or "shared"
  // without it set false; absent when none of the three is given.
  std::optional<bool> isolated;
};

// Splits on whitespace. Errors name the word at fault ("expected 'on' after
// NAME, got 'at'", "lwktpri needs a number 0..31, got '40'", "unknown word
// 'lokced'").
Result<SchedulerLine> parse_scheduler_line(const std::vector<std::string>& words);
Result<SchedulerLine> parse_scheduler_line(std::string_view line);
std::vector<std::string> split_words(std::string_view line);

}  // namespace usched
