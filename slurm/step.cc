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
#include "usched/client.h"

namespace {

using usched::Result;
using usched::Status;
namespace us = usched::slurm;

us::PluginArgs g_args;
std::unique_ptr<usched::Client> g_client;
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
  return g_args.socket.empty() ? usched::default_socket() : us::expand_node(g_args.socket, node_name());
}

Result<usched::Client*> client() {
  if (g_client) return g_client.get();
  auto c = usched::Client::connect(socket_path(), std::chrono::seconds(3));
  if (!c) return c.status();
  g_client = std::move(*c);
  return g_client.get();
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
Status check_user(usched::Client& c, const usched_step& s) {
  std::vector<std::pair<std::string, uint32_t>> owners;
  const std::string name = s.scheduler;
  for (size_t end = name.find('/'); ; end = name.find('/', end + 1)) {
    const std::string prefix = name.substr(0, end);
    auto e = c.get(prefix);
    if (!e) return e.status();
    owners.emplace_back(prefix, e->owner_uid());
    if (end == std::string::npos) break;
  }
  return us::may_use(name, owners, s.uid, g_args.allow);
}

Status make_scheduler(usched::Client& c, const usched_step& s) {
  auto parent = c.get(s.scheduler);
  if (!parent) return parent.status();
  auto topo = topology();
  if (!topo) return topo.status();
  auto cpus = us::cores_to_cpus(s.cores ? s.cores : "", *topo);
  if (!cpus) return cpus.status();
  std::vector<std::pair<int, usched::CpuSet>> vcpus;
  for (const auto& v : parent->vcpu()) {
    auto set = usched::CpuSet::parse(v.cpus());
    if (set) vcpus.emplace_back(v.index(), *set);
  }
  auto pool = us::pool_on(s.scheduler, vcpus, *cpus);
  if (!pool) return pool.status();
  usched::v1::SchedulerSpec spec;
  spec.set_name(target_of(s));
  spec.set_pool(*pool);
  // The step inherits the class of the scheduler the user named.
  spec.set_lwktpri(parent->spec().has_lwktpri() ? parent->spec().lwktpri() : 6);
  spec.set_locked(parent->spec().locked());
  auto made = c.create(spec);
  if (!made) return made.status();
  g_made = true;
  auto own = c.chown(spec.name(), s.uid, s.gid);
  if (!own) return own.status();
  return Status::ok();
}

// A gang of NAME: the gangs of every step using NAME share its matrix and
// take turns, which they could not do from schedulers of their own.
Status make_gang(usched::Client& c, const usched_step& s) {
  usched::v1::GangSpec spec;
  spec.set_scheduler(s.scheduler);
  spec.set_name(us::step_component(s.job_id, s.step_id));
  spec.set_width(static_cast<int>(s.local_tasks));
  spec.set_quantum_ms(g_args.quantum_ms);
  auto g = c.create_gang(spec);
  if (!g) return g.status();
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
  auto c = client();
  if (!c) return fail(err, errlen, c.status().message());
  const std::string gang = us::step_component(s->job_id, s->step_id);
  if (!g_made) {
    if (Status st = check_user(**c, *s); !st) return fail(err, errlen, st.message());
    Status st = s->gang ? make_gang(**c, *s) : make_scheduler(**c, *s);
    if (!st) return fail(err, errlen, st.message());
    g_target = target_of(*s);
  }
  if (s->gang) {
    auto r = (*c)->add_gang_member(s->scheduler, gang, pid, 0);
    if (!r) return fail(err, errlen, r.status().message());
  } else {
    auto r = (*c)->bind(g_target, pid);
    if (!r) return fail(err, errlen, r.status().message());
  }
  return 0;
}

extern "C" int usched_step_end(const usched_step* s, char* err, size_t errlen) {
  if (!g_made) return 0;
  auto c = client();
  if (!c) return fail(err, errlen, c.status().message());
  g_made = false;
  if (s->gang) {
    Status st = (*c)->destroy_gang(s->scheduler, us::step_component(s->job_id, s->step_id));
    if (!st) return fail(err, errlen, st.message());
    return 0;
  }
  // Forced: whatever the job made below its scheduler goes with it, and
  // members still bound (a task that outlived the step) move to NAME.
  auto r = (*c)->destroy(g_target, true);
  if (!r) return fail(err, errlen, r.status().message());
  return 0;
}
