#include "gang_cmd.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/core.h>
#include <google/protobuf/util/json_util.h>

#include "session.h"

namespace usched::cli {
namespace {

constexpr int kOk = 0, kError = 1, kUsage = 2;

int fail(const Status& s) {
  std::fprintf(stderr, "usched: %s\n", s.message().c_str());
  return s.code() == Code::kInvalidArgument && s.message().find("SCHED/GANG") != std::string::npos ? kUsage : kError;
}

Result<Client*> open(const ConnOpts& o) { return session(o.socket, o.timeout_ms); }

std::string vcpus_str(const v1::Gang& g) {
  std::string s;
  for (int v : g.vcpus()) s += (s.empty() ? "" : ",") + std::to_string(v);
  return s.empty() ? "-" : s;
}

int threads_of(const v1::Gang& g) {
  int n = 0;
  for (const auto& m : g.members()) n += m.threads_size();
  return n;
}

std::string state_str(const v1::Gang& g) {
  if (g.members_size() == 0) return "empty";
  return g.frozen() ? "frozen" : "running";
}

void print_table(const v1::ListGangsResponse& r) {
  for (const auto& s : r.schedulers()) {
    std::printf("%s: policy %s, %d row%s, current row %d, %llu rotations, enforced by %s\n",
                s.scheduler().c_str(), s.policy().c_str(), s.rows(), s.rows() == 1 ? "" : "s", s.current_row(),
                static_cast<unsigned long long>(s.rotations()), s.freezer().c_str());
  }
  std::printf("%-20s %5s %7s %3s %-6s %-7s %7s %7s %8s %8s %10s %10s %9s %9s %6s %9s\n", "GANG", "WIDTH",
              "QUANTUM", "ROW", "VCPUS", "STATE", "MEMBERS", "THREADS", "SLOTS", "SWITCHES", "RUN(ms)", "FROZEN(ms)",
              "FREEZE(us)", "THAW(us)", "CO-RUN", "SKEW(ms)");
  for (const auto& g : r.gangs()) {
    const auto& st = g.stats();
    std::printf("%-20s %5d %5dms %3d %-6s %-7s %7d %7d %8llu %8llu %10.1f %10.1f %9.0f %9.0f %6.3f %9.1f\n",
                (g.spec().scheduler() + "/" + g.spec().name()).c_str(), g.spec().width(), g.spec().quantum_ms(),
                g.row(), vcpus_str(g).c_str(), state_str(g).c_str(), g.members_size(), threads_of(g),
                static_cast<unsigned long long>(st.slots_run()), static_cast<unsigned long long>(st.switches()),
                static_cast<double>(st.running_us()) / 1000.0, static_cast<double>(st.frozen_us()) / 1000.0,
                st.freeze_latency_us_avg(), st.thaw_latency_us_avg(), st.co_run_ratio(),
                static_cast<double>(st.skew_us()) / 1000.0);
  }
  // Members that joined by thread name, with the threads they hold now.
  for (const auto& g : r.gangs()) {
    for (const auto& m : g.members()) {
      if (m.threads_glob().empty()) continue;
      std::string tids;
      for (int i = 0; i < m.threads_size(); ++i) {
        tids += fmt::format("{}{}@vcpu{}", tids.empty() ? "" : " ", m.threads(i), m.thread_vcpus(i));
      }
      std::printf("  %s/%s: pid %d threads '%s': %s\n", g.spec().scheduler().c_str(), g.spec().name().c_str(), m.pid(),
                  m.threads_glob().c_str(), tids.empty() ? "none yet" : tids.c_str());
    }
  }
}

}  // namespace

void GangCommands::add_to(CLI::App& app) {
  gang_ = app.add_subcommand("gang", "gangs: threads and processes that run all at once or not at all");
  gang_->require_subcommand(1);
  create_ = gang_->add_subcommand("create", "create gang SCHED/GANG");
  create_->add_option("SCHED/GANG", path_, "scheduler and gang name")->required();
  create_->add_option("--quantum", quantum_ms_, "time slot in ms when gangs take turns (default 20)")
      ->check(CLI::Range(1, 10000));
  create_->add_option("--width", width_, "vcpus the gang occupies together (default: all of the scheduler's)")
      ->check(CLI::Range(1, 1 << 20));
  create_->add_option("--policy", policy_, "row policy of the scheduler's gangs: rr or bsd4")
      ->check(CLI::IsMember({"rr", "bsd4"}));
  add_ = gang_->add_subcommand("add", "add a process (all its threads, now and later) or one thread");
  add_->add_option("SCHED/GANG", path_, "gang")->required();
  add_->add_option("--pid", pid_, "process id")->required()->check(CLI::Range(1, 1 << 30));
  add_->add_option("--tid,--thread", tid_, "one thread of the process")->check(CLI::Range(0, 1 << 30));
  add_->add_option("--threads", threads_,
                   "only the threads of the process whose name matches this glob, now and later (e.g. 'CPU */KVM')")
      ->excludes("--tid");
  remove_ = gang_->add_subcommand("remove", "take a member out of the gang (it stays bound)");
  remove_->add_option("SCHED/GANG", path_, "gang")->required();
  remove_->add_option("--pid", pid_, "process id")->required()->check(CLI::Range(1, 1 << 30));
  remove_->add_option("--tid,--thread", tid_, "one thread of the process")->check(CLI::Range(0, 1 << 30));
  destroy_ = gang_->add_subcommand("destroy", "destroy a gang (members stay bound, thawed)");
  destroy_->add_option("SCHED/GANG", path_, "gang")->required();
  list_ = gang_->add_subcommand("list", "list gangs with their statistics");
  list_->add_option("SCHED", list_sched_, "only this scheduler's gangs");
}

bool GangCommands::selected() const { return gang_ != nullptr && gang_->parsed(); }

int GangCommands::run(const ConnOpts& o) {
  std::pair<std::string, std::string> sg;
  if (!list_->parsed()) {
    auto p = split_gang(path_);
    if (!p) return fail(p.status());
    sg = *p;
  }
  auto c = open(o);
  if (!c) return fail(c.status());
  Client& cl = **c;
  if (create_->parsed()) {
    v1::GangSpec spec;
    spec.set_scheduler(sg.first);
    spec.set_name(sg.second);
    spec.set_quantum_ms(quantum_ms_);
    spec.set_width(width_);
    spec.set_policy(policy_);
    auto r = cl.create_gang(spec);
    if (!r) return fail(r.status());
    std::printf("created gang %s/%s (width %d, vcpus %s, quantum %d ms, policy %s)\n", sg.first.c_str(),
                sg.second.c_str(), r->spec().width(), vcpus_str(*r).c_str(), r->spec().quantum_ms(),
                r->spec().policy().c_str());
    return kOk;
  }
  if (add_->parsed()) {
    auto r = threads_.empty() ? cl.add_gang_member(sg.first, sg.second, pid_, tid_)
                              : cl.add_gang_threads(sg.first, sg.second, pid_, threads_);
    if (!r) return fail(r.status());
    std::printf("added pid %d%s to gang %s/%s (%d threads on vcpus %s)\n", pid_,
                tid_ ? fmt::format(" tid {}", tid_).c_str()
                     : threads_.empty() ? "" : fmt::format(" threads '{}'", threads_).c_str(),
                sg.first.c_str(), sg.second.c_str(), threads_of(*r), vcpus_str(*r).c_str());
    return kOk;
  }
  if (remove_->parsed()) {
    if (Status s = cl.remove_gang_member(sg.first, sg.second, pid_, tid_); !s) return fail(s);
    std::printf("removed pid %d%s from gang %s/%s\n", pid_, tid_ ? fmt::format(" tid {}", tid_).c_str() : "",
                sg.first.c_str(), sg.second.c_str());
    return kOk;
  }
  if (destroy_->parsed()) {
    if (Status s = cl.destroy_gang(sg.first, sg.second); !s) return fail(s);
    std::printf("destroyed gang %s/%s\n", sg.first.c_str(), sg.second.c_str());
    return kOk;
  }
  auto r = cl.list_gangs(list_sched_);
  if (!r) return fail(r.status());
  if (o.json) {
    std::string json;
    google::protobuf::util::JsonPrintOptions jo;
    jo.add_whitespace = true;
    jo.always_print_primitive_fields = true;
    (void)google::protobuf::util::MessageToJsonString(*r, &json, jo);
    std::fputs(json.c_str(), stdout);
    return kOk;
  }
  print_table(*r);
  return kOk;
}

int run_in_gang(const ConnOpts& o, const std::string& sched, const std::string& gang,
                const std::vector<std::string>& cmd, const std::string& threads) {
  if (cmd.empty()) {
    std::fprintf(stderr, "usched: run needs a command to run\nusage: usched run SCHED --gang G -- CMD [ARGS...]\n");
    return kUsage;
  }
  auto c = open(o);
  if (!c) return fail(c.status());
  // The whole process: the command's threads join the gang as it makes them
  // (or those of them whose name matches `threads`; the process is bound
  // to the scheduler either way).
  const int self = static_cast<int>(::getpid());
  auto r = threads.empty() ? (*c)->add_gang_member(sched, gang, self, 0)
                           : (*c)->add_gang_threads(sched, gang, self, threads);
  if (!r) return fail(r.status());
  std::vector<char*> argv;
  for (const auto& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  ::execvp(argv[0], argv.data());
  std::fprintf(stderr, "usched: cannot run %s: %s\n", cmd[0].c_str(), std::strerror(errno));
  std::_Exit(127);
}

void print_gangs(Client& c, const std::string& sched) {
  auto r = c.list_gangs(sched);
  if (!r || r->gangs_size() == 0) return;
  std::printf("gangs:\n");
  std::fflush(stdout);
  print_table(*r);
}

}  // namespace usched::cli
