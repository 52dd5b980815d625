//! Private to the glue: the syscall helpers shared by the back ends, and
//! the back-end factories make_glue() chooses from.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "usched/glue/glue.h"
#include "usched/glue/knob.h"
#include "usched/glue/proc.h"

namespace usched::glue::detail {

KnobStatus set_affinity(int tid, const CpuSet& cpus);
KnobResult<CpuSet> get_affinity(int tid);
// realtime -> SCHED_RR rt_priority, idle -> SCHED_IDLE, normal ->
// SCHED_OTHER. sched_setscheduler keeps the nice value for the normal
// policies (the kernel copies static_prio), so nice is left alone.
KnobStatus set_class(int tid, const ClassParams& cls);

// Runs fn on one thread (tid != 0) or on every thread of pid, re-reading
// /proc/PID/task until no new thread appears. A thread that exits meanwhile
// (ESRCH) is skipped; the whole process gone is NOT_FOUND.
Status for_each_thread(const ProcFs& proc, int pid, int tid, const std::function<KnobStatus(int)>& fn);

// Affinity and class on every thread (the fast path of every real back end).
Status place_task(const ProcFs& proc, int pid, int tid, const TaskSettings& s);
// Affinity, policy, rt priority and nice of one task (the main thread for tid == 0).
Result<TaskOrigin> capture_sched(int pid, int tid);
// Affinity and policy back on every thread; an exited task is ok.
Status restore_sched(const ProcFs& proc, int pid, int tid, const TaskOrigin& o);

// /proc/PID/cgroup (or task/TID/cgroup): v1 lines "N:cpu,cpuacct:/path"
// give one entry per controller; the v2 line "0::/path" gives "unified".
std::map<std::string, std::string> parse_proc_cgroup(const std::string& text);
Result<std::map<std::string, std::string>> read_proc_cgroup(const ProcFs& proc, int pid, int tid);
// capture_sched plus the task's cgroup v2 path (cgroups["unified"]).
Result<TaskOrigin> capture_sched_and_unified(const ProcFs& proc, int pid, int tid);

Result<CpuSet> read_cpulist(const std::string& path);
Status check_entity(const std::string& entity);
// "batch/jobA" -> "batch"; "batch" -> "".
std::string parent_entity(const std::string& entity);
bool is_realtime(const ClassParams& c);
bool wants_idle(const ClassParams& c);

std::unique_ptr<Glue> make_v1(const Options& o, std::string cpuset_dir, std::string cpu_dir);
std::unique_ptr<Glue> make_v2(const Options& o);
std::unique_ptr<Glue> make_affinity(const Options& o);
Result<std::unique_ptr<Glue>> make_fake(const Options& o);
Result<std::unique_ptr<Glue>> make_systemd(const Options& o);
std::pair<bool, std::string> probe_systemd(const Options& o);

}  // namespace usched::glue::detail

namespace usched::glue::detail {

// One cpuset.cpus file of apply_groups, in pre-order.
struct CpusWrite {
  std::string path;
  CpuSet old;
  CpuSet want;
};
// v1 and v2 refuse (v1) or silently narrow (v2) a child's cpuset outside
// its parent's, so at every moment each child stays inside its parent:
// top-down old|new, then bottom-up new. Unchanged values are not written.
Status write_cpus_two_pass(std::vector<CpusWrite>& v);

// Back ends without cpuset partitions (v1, affinity) keep exclusion in the
// tree and refuse an isolated entity, naming the keyword and `why`.
Status refuse_isolated(const std::vector<std::pair<std::string, GroupSettings>>& all, const std::string& why);

// Moves every id listed in from_file (tasks or cgroup.procs) by writing it
// to to_file. A missing from_file means no ids; an id that has exited
// (ESRCH) is skipped.
Status move_ids(const std::string& from_file, const std::string& to_file);
// Directories below top (not top itself), deepest first; symlinks are not followed.
std::vector<std::string> subdirs_deepest_first(const std::string& top);
// The knob's value trimmed, or "" when the file does not exist.
KnobResult<std::string> read_optional(const std::string& path, bool& exists);

}  // namespace usched::glue::detail
