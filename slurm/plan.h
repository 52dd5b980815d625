//! The pure part of the Slurm SPANK plugin: what a job step asks of uschedd,
//! worked out from what Slurm says about the step (its job and step ids,
//! the cores it was given on this node) and what uschedd says about the
//! scheduler the user named. No I/O, so every rule has a unit test.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "usched/cpuset.h"
#include "usched/result.h"

namespace usched::slurm {

// One online CPU as /sys/devices/system/cpu/cpuN/topology describes it.
struct CpuTopo {
  int cpu = 0;
  int package = 0;
  int core = 0;
};

// Slurm numbers the cores of a node 0..N-1 in (socket, core) order and
// lists a step's cores in that numbering ("0-1,4": S_STEP_ALLOC_CORES).
// Returns the OS CPUs of those cores, every hardware thread of each.
// Errors name the core that does not exist on this node.
Result<CpuSet> cores_to_cpus(std::string_view cores, const std::vector<CpuTopo>& topo);

// The vcpus of scheduler `name` (index, physical CPUs) that lie wholly on
// `cpus`, as a pool in that scheduler's vcpu numbers ("cpu0 cpu2"): the
// pool of the step's child scheduler. Error when there is none.
Result<std::string> pool_on(const std::string& name, const std::vector<std::pair<int, CpuSet>>& vcpus,
                            const CpuSet& cpus);

// A scheduler's vcpus as libusched's usched_sched_get() lists them,
// "0:0 1:2-3" (INDEX:CPUS, space separated), for pool_on. Errors name the
// entry that is malformed.
Result<std::vector<std::pair<int, CpuSet>>> parse_vcpus(std::string_view list);

// "job1234.0", "job1234.batch", "job1234.extern", "job1234.interactive":
// the name of a step's scheduler below the one the user named, and of its
// gang. Slurm's special step ids are spelled out.
std::string step_component(uint32_t job_id, uint32_t step_id);

// Arguments on the plugin's plugstack.conf line.
struct PluginArgs {
  // uschedd's socket; "" means the client library's default. "%n" stands
  // for the node's Slurm name (several slurmd on one host, one uschedd
  // each, as in the test cluster).
  std::string socket;
  // Quantum of the gangs the plugin creates; 0 means uschedd's default.
  int quantum_ms = 0;
  // Schedulers every job may name (and those below them).
  std::vector<std::string> allow;
};
// "socket=/run/usched/usched.sock", "quantum=20", "allow=batch:gangs".
// Errors name the argument.
Result<PluginArgs> parse_args(const std::vector<std::string>& args);

// The plugin acts as root in slurmstepd, so it decides itself whether the
// job's user may name `name`: root may name any scheduler; a user one it
// owns or that lies below one it owns (`owners`: `name` and each ancestor
// with its owner uid), or one on the allow= list or below one. The error
// names the user, the scheduler and what would let it.
Status may_use(const std::string& name, const std::vector<std::pair<std::string, uint32_t>>& owners, uint32_t uid,
               const std::vector<std::string>& allow);

// `pattern` with every "%n" replaced by `node`.
std::string expand_node(const std::string& pattern, const std::string& node);

}  // namespace usched::slurm
