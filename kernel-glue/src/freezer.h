//! Private to the glue: freezing gang groups, for the back ends.
#pragma once

#include <set>
#include <string>

#include "internal.h"

namespace usched::glue::detail {

// freezer.state (v1) or cgroup.freeze (v2) of one group, confirmed; a
// freeze that does not settle is thawed and retried, then left thawed.
Status cgroup_freeze(const std::string& dir, bool v2, bool frozen);
// Thaws top and every group below it that is not thawed.
Status cgroup_thaw_tree(const std::string& top, bool v2);
// SIGSTOP/SIGCONT of whole processes; a stop is confirmed by state T.
Status signal_freeze(const ProcFs& proc, const std::set<int>& pids, bool frozen);

}  // namespace usched::glue::detail
