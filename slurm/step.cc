// The uschedd side of the SPANK plugin: the step's child scheduler (or
// gang), binding each task, and removing them when the step ends. Runs in
// slurmstepd as root; one step per slurmstepd, so the state is a few
// file-scope variables.
#include "step.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "plan.h"
#include "usched/usched.h"

namespace {

using usched::Result;
using usched::Status;
namespace us = usched::slurm;

us::PluginArgs g_args;
// What this slurmstepd made: removed again by usched_step_end.
bool g_made = false;
std::string g_target;

int fail(char* err, size_t len, const std::string& msg) {
  std::snprintf(err, len, "%s", msg.c_str());
  return -1;
}

// slurmd exports its node name (slurmd -N NAME) to slurmstepd.
std::string node_name() {
  if (const char* n = std::getenv("SLURMD_NODENAME"); n && *n) return n;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string h = host;
  return h.substr(0, h.find('.'));
}

std::string socket_path() {
  if (g_args.socket.empty()) {
    usched_set_socket(nullptr);
    return usched_socket();
  }
  return us::expand_node(g_args.socket, node_name());
}

// Every libusched call below goes to this node's uschedd.
void use_socket() { usched_set_socket(socket_path().c_str()); }

// The message of libusched's last error as a Status.
Status last_error() { return Status(usched::Code::kInternal, usched_last_error()); }

Result<usched_sched_info> get(const std::string& name) {
  usched_sched_info info{};
  if (usched_sched_get(name.c_str(), &info) < 0) return last_error();
  return info;
}

int read_int(const std::string& path) {
  std::ifstream in(path);
  int v = -1;
  in >> v;
  return v;
}

// Online CPUs and their (package, core), from sysfs.
Result<std::vector<us::CpuTopo>> topology() {
  std::ifstream on("/sys/devices/system/cpu/online");
  std::string list;
  std::getline(on, list);
  auto online = usched::CpuSet::parse(list);
  if (!online) return Status(online.status().code(), "/sys/devices/system/cpu/online: " + online.status().message());
  std::vector<us::CpuTopo> out;
  for (int cpu : online->to_vector()) {
    const std::string d = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    out.push_back({cpu, read_int(d + "physical_package_id"), read_int(d + "core_id")});
  }
  return out;
}

std::string target_of(const usched_step& s) {
  return std::string(s.scheduler) + "/" + us::step_component(s.job_id, s.step_id);
}

// The step's child scheduler on the CPUs Slurm gave the step, handed to
// the job's user so the job can subdivide it in its own vcpu numbers.
Status check_user(const usched_step& s) {
  std::vector<std::pair<std::string, uint32_t>> owners;
  const std::string name = s.scheduler;
  for (size_t end = name.find('/'); ; end = name.find('/', end + 1)) {
    const std::string prefix = name.substr(0, end);
    auto e = get(prefix);
    if (!e) return e.status();
    owners.emplace_back(prefix, e->owner_uid);
    if (end == std::string::npos) break;
  }
  return us::may_use(name, owners, s.uid, g_args.allow);
}

Status make_scheduler(const usched_step& s) {
  auto parent = get(s.scheduler);
  if (!parent) return parent.status();
  auto topo = topology();
  if (!topo) return topo.status();
  auto cpus = us::cores_to_cpus(s.cores ? s.cores : "", *topo);
  if (!cpus) return cpus.status();
  auto vcpus = us::parse_vcpus(parent->vcpus);
  if (!vcpus) return vcpus.status();
  auto pool = us::pool_on(s.scheduler, *vcpus, *cpus);
  if (!pool) return pool.status();
  const std::string name = target_of(s);
  // The step inherits the class of the scheduler the user named.
  if (usched_sched_create(name.c_str(), pool->c_str(), parent->lwktpri, parent->locked) < 0) return last_error();
  g_made = true;
  if (usched_sched_chown(name.c_str(), s.uid, s.gid) < 0) return last_error();
  return Status::ok();
}

// A gang of NAME: the gangs of every step using NAME share its matrix and
// take turns, which they could not do from schedulers of their own.
Status make_gang(const usched_step& s) {
  const std::string gang = target_of(s);
  if (usched_gang_create(gang.c_str(), g_args.quantum_ms, static_cast<int>(s.local_tasks)) < 0) return last_error();
  g_made = true;
  return Status::ok();
}

}  // namespace

extern "C" int usched_step_args(int argc, char** argv, char* err, size_t errlen) {
  std::vector<std::string> args(argv, argv + argc);
  auto a = us::parse_args(args);
  if (!a) return fail(err, errlen, a.status().message());
  g_args = *a;
  return 0;
}

extern "C" const char* usched_step_socket(void) {
  static std::string s;
  s = socket_path();
  return s.c_str();
}

extern "C" int usched_step_target(const usched_step* s, char* out, size_t outlen, char* err, size_t errlen) {
  const std::string t = target_of(*s);
  if (t.size() >= outlen) return fail(err, errlen, "scheduler name too long: " + t);
  std::snprintf(out, outlen, "%s", t.c_str());
  return 0;
}

extern "C" int usched_step_bind(const usched_step* s, pid_t pid, char* err, size_t errlen) {
  use_socket();
  if (!g_made) {
    if (Status st = check_user(*s); !st) return fail(err, errlen, st.message());
    Status st = s->gang ? make_gang(*s) : make_scheduler(*s);
    if (!st) return fail(err, errlen, st.message());
    g_target = target_of(*s);
  }
  const int r = s->gang ? usched_gang_add(g_target.c_str(), pid, 0) : usched_bind_pid(g_target.c_str(), pid, 0, -1);
  if (r < 0) return fail(err, errlen, usched_last_error());
  return 0;
}

extern "C" int usched_step_end(const usched_step* s, char* err, size_t errlen) {
  if (!g_made) return 0;
  use_socket();
  g_made = false;
  const std::string target = target_of(*s);
  // Forced: whatever the job made below its scheduler goes with it, and
  // members still bound (a task that outlived the step) move to NAME.
  const int r = s->gang ? usched_gang_destroy(target.c_str()) : usched_sched_destroy(target.c_str(), 1);
  if (r < 0) return fail(err, errlen, usched_last_error());
  return 0;
}
