//! Private to the glue: freezing gang groups, for the back ends.
#pragma once

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "internal.h"

namespace usched::glue::detail {

// How long a freeze may take to be confirmed on this machine (the RR time
// slice under `proc`'s sys/kernel, plus a tick, and at least 40 ms, unless
// override_ms > 0 says otherwise); the back ends read it once and pass it
// to the calls below.
std::chrono::milliseconds freeze_settle(const ProcFs& proc, int override_ms);
// freezer.state (v1) or cgroup.freeze (v2) of one group, confirmed within
// `settle`; a freeze that does not settle is thawed and retried, then left
// thawed.
Status cgroup_freeze(const std::string& dir, bool v2, bool frozen, std::chrono::milliseconds settle);
// The same for a gang that spans several groups: all are asked, then all
// confirmed; when one does not settle, every one of them is left thawed.
Status cgroup_freeze(const std::vector<std::string>& dirs, bool v2, bool frozen, std::chrono::milliseconds settle);
// Thaws top and every group below it that is not thawed.
Status cgroup_thaw_tree(const std::string& top, bool v2, std::chrono::milliseconds settle);
// SIGSTOP/SIGCONT of whole processes; a stop is confirmed by state T.
Status signal_freeze(const ProcFs& proc, const std::set<int>& pids, bool frozen, std::chrono::milliseconds settle);

}  // namespace usched::glue::detail
