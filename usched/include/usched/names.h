//! Entity names are paths ("batch", "batch/jobA"). They end up as cgroupfs
//! directory names, so they are validated here, before anything can reach
//! a file system path.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "usched/result.h"

namespace usched {

inline constexpr int kMaxNameComponent = 63;
inline constexpr int kMaxDepth = 16;

// A component is [A-Za-z0-9_.-]{1,63}, never "." or ".."; at most kMaxDepth
// components; no leading, trailing or doubled '/'. The error names the
// offending component and the rule it breaks.
Status validate_name(std::string_view path);
std::vector<std::string> split_name(std::string_view path);
// "batch/jobA" -> "batch"; "batch" -> "" (the root).
std::string parent_name(std::string_view path);
// "batch/jobA" -> "jobA".
std::string leaf_name(std::string_view path);

// Thread names (comm) are at most 15 bytes (TASK_COMM_LEN 16).
inline constexpr int kMaxCommLen = 15;
// A glob over thread names, as fnmatch(3) reads it without flags: '*', '?',
// '[...]' and '\\' escapes. Rejected, naming the reason: empty, longer
// than 255, a control character, a '[' never closed, a trailing '\\', or
// more literal characters than a thread name can hold (it could never match).
Status validate_thread_glob(std::string_view glob);

}  // namespace usched
