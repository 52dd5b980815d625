// usched: the command-line front end of uschedd.
//   usched NAME on POOL... [vcpus N] [lwktpri N] [class C] [locked|unlocked] [exclusive|shared] [isolated]
//   usched create|update|destroy|list|tree|show|run|bind|unbind|watch ...
// Exit codes: 0 ok, 1 daemon or connection error, 2 usage error.
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <google/protobuf/util/json_util.h>

#include "gang_cmd.h"
#include "ops_cmd.h"
#include "session.h"
#include "usched/client.h"
#include "usched/line.h"
#include "usched/lwkt.h"
#include "usched/names.h"

#ifndef USCHED_VERSION
#define USCHED_VERSION "0.1.0"
#endif

namespace {

using usched::Client;
using usched::Code;
using usched::Status;
namespace v1 = usched::v1;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

const std::set<std::string> kSubcommands = {"create", "update", "destroy", "chown", "list",   "tree",
                                            "show",   "run",    "bind",    "unbind", "watch", "gang",
                                            "apply",  "top"};
const std::set<std::string> kLineKeywords = {"vcpus",    "lwktpri",   "class", "locked",
                                             "unlocked", "exclusive", "shared", "isolated"};

const char* kLineUsage =
    "usage: usched NAME on POOL... [vcpus N] [lwktpri N] [class idle|normal|realtime] "
    "[locked|unlocked] [exclusive|shared] [isolated]";

struct Globals {
  std::string socket;
  int timeout_ms = 10000;
  bool json = false;
};

// ---- output helpers --------------------------------------------------------

void out(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
}

int error(const Status& s, const std::string& hint = "") {
  std::fflush(stdout);
  std::string msg = "usched: " + s.message();
  if (!hint.empty()) msg += " " + hint;
  std::fprintf(stderr, "%s\n", msg.c_str());
  return kExitError;
}

int usage(const std::string& what, const std::string& hint) {
  std::fflush(stdout);
  std::fprintf(stderr, "usched: %s\n%s\n", what.c_str(), hint.c_str());
  return kExitUsage;
}

std::string display(const std::string& name) { return name.empty() ? "/" : name; }

const char* class_str(v1::SchedClass c) {
  switch (c) {
    case v1::SCHED_CLASS_IDLE: return "idle";
    case v1::SCHED_CLASS_NORMAL: return "normal";
    case v1::SCHED_CLASS_REALTIME: return "realtime";
    default: return "unspecified";
  }
}

const char* kind_str(v1::Event::Kind k) {
  switch (k) {
    case v1::Event::SCHEDULER_CREATED: return "created";
    case v1::Event::SCHEDULER_UPDATED: return "updated";
    case v1::Event::SCHEDULER_DESTROYED: return "destroyed";
    case v1::Event::MEMBER_BOUND: return "bound";
    case v1::Event::MEMBER_UNBOUND: return "unbound";
    case v1::Event::MEMBER_EXITED: return "exited";
    default: return "unknown";
  }
}

int vcpu_count(const v1::Scheduler& s) {
  return s.vcpu_size() > 0 ? s.vcpu_size() : s.spec().vcpus();
}

int lwktpri_of(const v1::Scheduler& s) { return s.spec().has_lwktpri() ? s.spec().lwktpri() : 6; }

std::string cpus_str(const v1::Scheduler& s) {
  std::string c = s.effective_cpus().empty() ? "none" : s.effective_cpus();
  if (s.starved()) c += " (starved)";
  return c;
}

std::string mode_str(const v1::Scheduler& s) {
  std::string m = s.spec().locked() ? "locked" : "unlocked";
  if (s.spec().exclusive()) m += ",exclusive";
  if (s.spec().isolated()) m += ",isolated";
  return m;
}

// The kernel's verdict on the cpuset partition (cgroup v2), worth a line
// when the scheduler asked for one or the kernel shows one: "" otherwise.
std::string partition_str(const v1::Scheduler& s) {
  const std::string& p = s.partition();
  if (p.empty() || (p == "member" && !s.spec().exclusive())) return "";
  return p;
}

// What a person can do about a partition the kernel does not honour.
std::string partition_hint(const std::string& p) {
  if (p.find("invalid") == std::string::npos && p.find("not a partition") == std::string::npos) return "";
  if (p.find("Parent is not a partition root") != std::string::npos)
    return "make its parent scheduler exclusive too, or create it at the top";
  if (p.find("not exclusive") != std::string::npos)
    return "a sibling uses some of its CPUs: give the sibling other CPUs";
  if (p.find("refused to make") != std::string::npos && p.find("distribute") != std::string::npos)
    return "leave at least one CPU out of every scheduler for the rest of the system";
  if (p.find("distribute") != std::string::npos)
    return "it would take the last CPUs of its parent, which has tasks: leave the parent a CPU of its own";
  return "see cpuset.cpus.partition in the kernel's cgroup-v2 documentation";
}

// "cpus 0-1 (starved), 2 vcpus, normal, locked, exclusive"
std::string summary(const v1::Scheduler& s) {
  std::string r = fmt::format("cpus {}, {} vcpus, {}", cpus_str(s), vcpu_count(s),
                              class_str(s.effective_class()));
  if (s.spec().locked()) r += ", locked";
  if (s.spec().exclusive()) r += ", exclusive";
  if (s.spec().isolated()) r += ", isolated";
  if (const std::string p = partition_str(s); !p.empty()) r += ", partition " + p;
  return r;
}

std::string to_json(const google::protobuf::Message& m, bool pretty) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = pretty;
  o.always_print_primitive_fields = true;
  std::string s;
  auto st = google::protobuf::util::MessageToJsonString(m, &s, o);
  if (!st.ok()) return "{}";
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// ---- line syntax -----------------------------------------------------------

v1::SchedClass to_proto(usched::SchedClass c) {
  switch (c) {
    case usched::SchedClass::kIdle: return v1::SCHED_CLASS_IDLE;
    case usched::SchedClass::kNormal: return v1::SCHED_CLASS_NORMAL;
    case usched::SchedClass::kRealtime: return v1::SCHED_CLASS_REALTIME;
  }
  return v1::SCHED_CLASS_UNSPECIFIED;
}

// The pool words as typed (after "on", up to the first keyword), joined by spaces.
std::string raw_pool(const std::vector<std::string>& words) {
  size_t i = 0;
  while (i < words.size() && words[i] != "on") ++i;
  std::string pool;
  for (++i; i < words.size() && !kLineKeywords.count(words[i]); ++i) {
    if (!pool.empty()) pool += ' ';
    pool += words[i];
  }
  return pool;
}

struct ParsedLine {
  v1::SchedulerSpec spec;
  std::vector<std::string> mask;
};

// Parses "NAME on POOL... [...]" into a spec (and the mask of fields given).
// When pool_optional, "NAME [vcpus N] ..." (no 'on') is accepted too.
usched::Result<ParsedLine> parse_line(std::vector<std::string> words, bool pool_optional) {
  bool has_pool = true;
  if (pool_optional) {
    size_t first = (!words.empty() && words[0] == "usched") ? 1 : 0;
    if (words.size() <= first + 1 || words[first + 1] != "on") {
      has_pool = false;
      if (words.size() > first) {
        words.insert(words.begin() + static_cast<long>(first) + 1, {"on", "cpu*"});
      }
    }
  }
  auto line = usched::parse_scheduler_line(words);
  if (!line) return line.status();
  ParsedLine p;
  auto& s = p.spec;
  s.set_name(line->name);
  if (has_pool) {
    s.set_pool(raw_pool(words));
    p.mask.push_back("pool");
  }
  if (line->vcpus) {
    s.set_vcpus(*line->vcpus);
    p.mask.push_back("vcpus");
  }
  if (line->lwktpri) {
    s.set_lwktpri(*line->lwktpri);
    p.mask.push_back("lwktpri");
  }
  if (line->class_override) {
    s.set_sched_class(to_proto(*line->class_override));
    p.mask.push_back("sched_class");
  }
  if (line->locked) {
    s.set_locked(*line->locked);
    p.mask.push_back("locked");
  }
  if (line->exclusive) {
    s.set_exclusive(*line->exclusive);
    p.mask.push_back("exclusive");
  }
  if (line->isolated) {
    s.set_isolated(*line->isolated);
    p.mask.push_back("isolated");
  }
  return p;
}

// ---- commands --------------------------------------------------------------

class Cli {
 public:
  explicit Cli(Globals g) : g_(std::move(g)) {}

  // Returns an exit code when the connection failed.
  std::optional<int> connect() {
    auto c = usched::cli::session(g_.socket, g_.timeout_ms);
    if (!c) return error(c.status());
    client_ = *c;
    return std::nullopt;
  }

  int create(const std::vector<std::string>& words) {
    auto p = parse_line(words, false);
    if (!p) return usage(p.status().message(), kLineUsage);
    if (auto rc = connect()) return *rc;
    auto r = client_->create(p->spec);
    if (!r) {
      if (r.status().code() == Code::kAlreadyExists)
        return error(r.status(), "(use `usched update` to change it)");
      return error(r.status());
    }
    out(fmt::format("created {}: {}", display(r->spec().name()), summary(*r)));
    return kExitOk;
  }

  int update(const std::vector<std::string>& words) {
    auto p = parse_line(words, true);
    if (!p)
      return usage(p.status().message(),
                   "usage: usched update NAME [on POOL...] [vcpus N] [lwktpri N] [class C] "
                   "[locked|unlocked] [exclusive|shared] [isolated]");
    if (p->mask.empty())
      return usage("nothing to update for " + p->spec.name(),
                   "give at least one of: on POOL..., vcpus N, lwktpri N, class C, "
                   "locked|unlocked, exclusive|shared, isolated");
    if (auto rc = connect()) return *rc;
    auto r = client_->update(p->spec, p->mask);
    if (!r) return error(r.status());
    out(fmt::format("updated {}: {}", display(r->spec().name()), summary(*r)));
    return kExitOk;
  }

  // USER[:GROUP], names or numbers.
  int chown(const std::string& name, const std::string& owner) {
    const auto colon = owner.find(':');
    const std::string user = owner.substr(0, colon);
    const std::string grp = colon == std::string::npos ? "" : owner.substr(colon + 1);
    auto number = [](const std::string& s) -> std::optional<uint32_t> {
      if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
      const unsigned long long v = std::stoull(s);
      if (v >= 0xffffffffULL) return std::nullopt;
      return static_cast<uint32_t>(v);
    };
    std::optional<uint32_t> uid = number(user);
    if (!uid) {
      const passwd* pw = user.empty() ? nullptr : ::getpwnam(user.c_str());
      if (!pw) return usage("no user '" + user + "'", "Give USER[:GROUP] as names or numbers.");
      uid = pw->pw_uid;
    }
    int64_t gid = -1;
    if (!grp.empty()) {
      if (auto n = number(grp)) {
        gid = *n;
      } else if (const struct group* gr = ::getgrnam(grp.c_str())) {
        gid = gr->gr_gid;
      } else {
        return usage("no group '" + grp + "'", "Give USER[:GROUP] as names or numbers.");
      }
    }
    if (auto rc = connect()) return *rc;
    auto r = client_->chown(name, *uid, gid);
    if (!r) return error(r.status());
    out(fmt::format("{} now belongs to uid {} gid {}", display(name), r->owner_uid(), r->owner_gid()));
    return kExitOk;
  }

  int destroy(const std::string& name, bool force) {
    if (auto rc = connect()) return *rc;
    auto r = client_->destroy(name, force);
    if (!r) return error(r.status());
    std::string list;
    for (const auto& d : r->destroyed()) {
      if (!list.empty()) list += ", ";
      list += display(d);
    }
    if (list.empty()) list = display(name);
    out("destroyed " + list);
    if (r->members_moved() > 0)
      out(fmt::format("moved {} members to {}", r->members_moved(),
                      display(usched::parent_name(name))));
    return kExitOk;
  }

  int list() {
    if (auto rc = connect()) return *rc;
    auto r = client_->list();
    if (!r) return error(r.status());
    if (g_.json) {
      out(to_json(*r, true));
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"NAME", "CPUS", "VCPUS", "PRI", "CLASS", "MODE", "MEMBERS"});
    for (const auto& s : r->schedulers()) {
      rows.push_back({display(s.spec().name()), cpus_str(s), std::to_string(vcpu_count(s)),
                      std::to_string(lwktpri_of(s)), class_str(s.effective_class()), mode_str(s),
                      std::to_string(s.members_size())});
    }
    std::vector<size_t> w(rows[0].size(), 0);
    for (const auto& row : rows)
      for (size_t i = 0; i < row.size(); ++i) w[i] = std::max(w[i], row[i].size());
    for (const auto& row : rows) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(w[i] - row[i].size() + 2, ' ');
      }
      out(line);
    }
    return kExitOk;
  }

  int tree() {
    if (auto rc = connect()) return *rc;
    auto r = client_->list();
    if (!r) return error(r.status());
    if (g_.json) {
      out(to_json(*r, true));
      return kExitOk;
    }
    out(fmt::format("machine: cpus {} (glue {})",
                    r->online_cpus().empty() ? "none" : r->online_cpus(),
                    r->glue().empty() ? "unknown" : r->glue()));
    // Children from each entry's parent, in the daemon's (pre-)order.
    std::set<std::string> names;
    for (const auto& s : r->schedulers()) names.insert(s.spec().name());
    std::map<std::string, std::vector<int>> kids;
    std::vector<int> roots;
    for (int i = 0; i < r->schedulers_size(); ++i) {
      const auto& s = r->schedulers(i);
      const std::string& name = s.spec().name();
      std::string parent = s.parent();
      if (parent.empty() && !name.empty()) parent = usched::parent_name(name);
      if (!name.empty() && names.count(parent) && parent != name)
        kids[parent].push_back(i);
      else
        roots.push_back(i);
    }
    std::set<int> seen;
    std::function<void(int, const std::string&, bool)> draw = [&](int i, const std::string& prefix,
                                                                  bool last) {
      if (!seen.insert(i).second) return;
      const auto& s = r->schedulers(i);
      const std::string part = partition_str(s);
      out(fmt::format("{}{}{}  {}  cpus {}  vcpus {}  lwktpri {} {}  {}  members {}{}", prefix,
                      last ? "└─ " : "├─ ", display(s.spec().name()),
                      usched::cli::cpu_map(s.effective_cpus(), r->online_cpus(), s.spec().exclusive(),
                                           s.effective_class(), usched::cli::color_stdout()),
                      cpus_str(s), vcpu_count(s), lwktpri_of(s), class_str(s.effective_class()),
                      mode_str(s), s.members_size(), part.empty() ? "" : "  partition " + part));
      const auto& ch = kids[s.spec().name()];
      std::string next = prefix + (last ? "   " : "│  ");
      for (size_t k = 0; k < ch.size(); ++k) draw(ch[k], next, k + 1 == ch.size());
    };
    for (size_t k = 0; k < roots.size(); ++k) draw(roots[k], "", k + 1 == roots.size());
    return kExitOk;
  }

  int show(const std::string& name) {
    if (auto rc = connect()) return *rc;
    auto r = client_->get(name);
    if (!r) return error(r.status());
    if (g_.json) {
      out(to_json(*r, true));
      return kExitOk;
    }
    const auto& s = *r;
    const auto& sp = s.spec();
    std::string children;
    for (const auto& c : s.children()) children += (children.empty() ? "" : ", ") + c;
    out(fmt::format("name:           {}", display(sp.name())));
    out(fmt::format("parent:         {}", display(s.parent())));
    out(fmt::format("children:       {}", children.empty() ? "-" : children));
    out(fmt::format("pool:           {}", sp.pool().empty() ? "cpu*" : sp.pool()));
    out(fmt::format("cpus:           {}", s.cpus().empty() ? "none" : s.cpus()));
    out(fmt::format("effective cpus: {}", cpus_str(s)));
    out(fmt::format("vcpus:          {}", vcpu_count(s)));
    out(fmt::format("lwktpri:        {}", lwktpri_of(s)));
    std::string cls = class_str(s.effective_class());
    if (s.effective_class() == v1::SCHED_CLASS_REALTIME)
      cls += fmt::format(" (rt priority {})", s.rt_priority());
    else if (s.effective_class() == v1::SCHED_CLASS_NORMAL)
      cls += fmt::format(" (weight {})", s.cpu_weight());
    if (sp.sched_class() != v1::SCHED_CLASS_UNSPECIFIED) cls += " [class override]";
    out(fmt::format("class:          {}", cls));
    out(fmt::format("mode:           {}", mode_str(s)));
    if (const std::string p = partition_str(s); !p.empty()) {
      out(fmt::format("partition:      {}", p));
      if (const std::string h = partition_hint(p); !h.empty()) out(fmt::format("                ({})", h));
    }
    out(fmt::format("owner:          uid {} gid {}", s.owner_uid(), s.owner_gid()));
    out(fmt::format("depth:          {}", s.depth()));
    out(fmt::format("vcpu map:       {} vcpus", s.vcpu_size()));
    for (const auto& v : s.vcpu())
      out(fmt::format("  vcpu {:<3} -> cpus {:<12} members {}", v.index(),
                      v.cpus().empty() ? "none" : v.cpus(), v.members()));
    std::fflush(stdout);
    usched::cli::print_gangs(*client_, name);
    out(fmt::format("members:        {}", s.members_size()));
    for (const auto& m : s.members())
      out(fmt::format("  pid {:<8} tid {:<8} vcpu {:<4} cpus {}", m.pid(), m.tid(), m.vcpu(),
                      m.cpus().empty() ? "none" : m.cpus()));
    return kExitOk;
  }

  int run(const std::string& name, int vcpu, const std::vector<std::string>& cmd) {
    if (cmd.empty())
      return usage("run needs a command to run", "usage: usched run NAME [--vcpu N] -- CMD [ARGS...]");
    // Through the placement socket: no gRPC channel to start for one call.
    auto r = usched::place_self(g_.socket.empty() ? usched::default_socket() : g_.socket, name, vcpu, 0,
                                std::chrono::milliseconds(g_.timeout_ms));
    if (!r) return error(r.status());
    std::vector<char*> argv;
    for (const auto& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::fflush(stdout);
    std::fflush(stderr);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "usched: cannot run %s: %s\n", cmd[0].c_str(), std::strerror(errno));
    std::_Exit(127);
  }

  int bind(const std::string& name, int pid, int tid, int vcpu) {
    if (auto rc = connect()) return *rc;
    auto r = client_->bind(name, pid, tid, vcpu);
    if (!r) return error(r.status());
    const auto& m = r->member();
    std::string who = fmt::format("pid {}", pid);
    if (tid != 0) who += fmt::format(" tid {}", tid);
    std::string where = "cpus " + (m.cpus().empty() ? std::string("none") : m.cpus());
    if (m.vcpu() >= 0) where += fmt::format(", vcpu {}", m.vcpu());
    out(fmt::format("bound {} to {} ({}){}{}", who, display(r->scheduler().empty() ? name : r->scheduler()), where,
                    r->note().empty() ? "" : "; ", r->note()));
    return kExitOk;
  }

  int unbind(int pid, int tid) {
    if (auto rc = connect()) return *rc;
    auto r = client_->unbind(pid, tid);
    if (!r) return error(r.status());
    std::string who = fmt::format("pid {}", pid);
    if (tid != 0) who += fmt::format(" tid {}", tid);
    out(fmt::format("unbound {} from {}", who, display(*r)));
    return kExitOk;
  }

  int watch(int count) {
    if (auto rc = connect()) return *rc;
    int seen = 0;
    if (count == 0) {
      // Nothing to wait for.
      return kExitOk;
    }
    Status st = client_->watch([&](const v1::Event& e) {
      std::string line;
      if (g_.json) {
        line = to_json(e, false);
      } else {
        line = fmt::format("{} {}", kind_str(e.kind()), display(e.scheduler()));
        if (e.pid() != 0) line += fmt::format(" pid {}", e.pid());
        if (e.tid() != 0) line += fmt::format(" tid {}", e.tid());
        if (!e.detail().empty()) line += " " + e.detail();
      }
      out(line);
      std::fflush(stdout);
      ++seen;
      return count < 0 || seen < count;
    });
    if (!st) return error(st);
    if (count > 0 && seen < count)
      return error(Status(Code::kUnavailable, "uschedd closed the event stream"));
    return kExitOk;
  }

 private:
  Globals g_;
  Client* client_ = nullptr;  // usched::cli::session()'s
};

const char* kExamples = R"(Line syntax (Dillon's): if the first word is not a subcommand, the whole
command line is a scheduler definition and creates it:
  usched MYCUSTOM on cpu1 cpu2 lwktpri 4 locked
  usched batch/jobA on cpu0-1 vcpus 4

Examples:
  usched create batch on cpu0-3 vcpus 2 lwktpri 5
  usched update batch vcpus 4 exclusive
  usched list
  usched tree --json
  usched show batch
  usched run batch -- make -j4
  usched run MYCUSTOM --vcpu 1 -- ./server --port 80
  usched bind batch --pid 1234 [--tid 1240] [--vcpu 0]
  usched unbind --pid 1234
  usched watch --count 5
  usched apply /etc/usched/usched.conf [--dry-run] [--force]
  usched top [--interval 2]
  usched destroy batch --force

Socket: --socket PATH, else $USCHED_SOCKET, else /run/usched/usched.sock.
Exit codes: 0 ok, 1 error from uschedd or the connection, 2 usage error.)";

bool takes_value(const std::string& a) { return a == "--socket" || a == "--timeout"; }
bool is_global_flag(const std::string& a) {
  return a == "--json" || a == "--help" || a == "-h" || a == "--version" ||
         a.rfind("--socket=", 0) == 0 || a.rfind("--timeout=", 0) == 0;
}

int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);

  // Which path: line syntax or subcommands? Look at the first word that is
  // not a global option.
  size_t first = args.size();
  for (size_t i = 0; i < args.size(); ++i) {
    if (takes_value(args[i])) {
      ++i;
      continue;
    }
    if (is_global_flag(args[i])) continue;
    first = i;
    break;
  }
  bool line_syntax = first < args.size() && !kSubcommands.count(args[first]) &&
                     !args[first].empty() && args[first][0] != '-';

  if (first < args.size() && args[first] == "help") {
    args[first] = "--help";
    line_syntax = false;
  }

  Globals g;
  CLI::App app{"usched: nested CPU schedulers, served by uschedd", "usched"};
  app.set_version_flag("--version", "usched " USCHED_VERSION);
  app.footer(kExamples);
  app.fallthrough();
  app.add_option("--socket", g.socket, "uschedd socket (default $USCHED_SOCKET or /run/usched/usched.sock)");
  app.add_option("--timeout", g.timeout_ms, "deadline of each call in milliseconds (default 10000)")
      ->check(CLI::Range(1, 86400000));
  app.add_flag("--json", g.json, "print JSON (list, tree, show, watch)");

  if (line_syntax) {
    // Separate the global options from the line's words, then let CLI11
    // check the globals.
    std::vector<std::string> words, globals;
    for (size_t i = 0; i < args.size(); ++i) {
      if (takes_value(args[i])) {
        globals.push_back(args[i]);
        if (i + 1 < args.size()) globals.push_back(args[++i]);
      } else if (is_global_flag(args[i])) {
        globals.push_back(args[i]);
      } else {
        words.push_back(args[i]);
      }
    }
    std::vector<std::string> rev(globals.rbegin(), globals.rend());
    try {
      app.parse(rev);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
      return app.exit(e);
    } catch (const CLI::ParseError& e) {
      return usage(e.what(), "Run `usched --help` for usage.");
    }
    Cli cli(g);
    return cli.create(words);
  }

  app.require_subcommand(1);

  std::vector<std::string> create_words;
  auto* create = app.add_subcommand("create", "create a scheduler: NAME on POOL... [options]");
  create->add_option("words", create_words, "NAME on POOL... [vcpus N] [lwktpri N] [class C] [locked|unlocked] [exclusive|shared] [isolated]")
      ->required();

  std::vector<std::string> update_words;
  auto* update = app.add_subcommand("update", "change a scheduler: NAME [on POOL...] [options]");
  update->add_option("words", update_words, "NAME [on POOL...] [vcpus N] [lwktpri N] [class C] [locked|unlocked] [exclusive|shared] [isolated]")
      ->required();

  std::string destroy_name;
  bool force = false;
  auto* destroy = app.add_subcommand("destroy", "destroy a scheduler");
  destroy->add_option("NAME", destroy_name, "scheduler")->required();
  destroy->add_flag("--force", force, "destroy children too and move members to the parent");

  std::string chown_name, chown_owner;
  auto* chown = app.add_subcommand("chown", "hand a scheduler to another user: NAME USER[:GROUP]");
  chown->add_option("NAME", chown_name, "scheduler")->required();
  chown->add_option("OWNER", chown_owner, "USER[:GROUP], names or numbers")->required();

  auto* list = app.add_subcommand("list", "list the schedulers");
  auto* tree = app.add_subcommand("tree", "draw the scheduler tree");

  std::string show_name;
  auto* show = app.add_subcommand("show", "show one scheduler, its vcpus and members");
  show->add_option("NAME", show_name, "scheduler")->required();

  std::string run_name;
  int run_vcpu = -1;
  std::vector<std::string> run_cmd;
  auto* run = app.add_subcommand("run", "bind this process to NAME, then exec CMD");
  run->add_option("NAME", run_name, "scheduler")->required();
  run->add_option("--vcpu", run_vcpu, "vcpu of a locked scheduler")->check(CLI::Range(0, 1 << 30));
  run->add_option("CMD", run_cmd, "command and its arguments (after --)");
  std::string run_gang;
  run->add_option("--gang", run_gang, "add the process to gang NAME/GANG instead (all its threads)");
  std::string run_threads;
  run->add_option("--threads", run_threads,
                  "with --gang: only the threads whose name matches this glob join the gang (e.g. 'CPU */KVM')");
  usched::cli::GangCommands gang_cmds;
  gang_cmds.add_to(app);
  usched::cli::OpsCommands ops_cmds;
  ops_cmds.add_to(app);

  std::string bind_name;
  int bind_pid = 0, bind_tid = 0, bind_vcpu = -1;
  auto* bind = app.add_subcommand("bind", "bind a process or thread to NAME");
  bind->add_option("NAME", bind_name, "scheduler")->required();
  bind->add_option("--pid", bind_pid, "process id")->required()->check(CLI::Range(1, 1 << 30));
  bind->add_option("--tid,--thread", bind_tid, "one thread of the process")->check(CLI::Range(0, 1 << 30));
  bind->add_option("--vcpu", bind_vcpu, "vcpu of a locked scheduler")->check(CLI::Range(0, 1 << 30));

  int unbind_pid = 0, unbind_tid = 0;
  auto* unbind = app.add_subcommand("unbind", "unbind a process or thread");
  unbind->add_option("--pid", unbind_pid, "process id")->required()->check(CLI::Range(1, 1 << 30));
  unbind->add_option("--tid,--thread", unbind_tid, "one thread of the process")->check(CLI::Range(0, 1 << 30));

  int watch_count = -1;
  auto* watch = app.add_subcommand("watch", "print events as they happen");
  watch->add_option("--count", watch_count, "exit after N events")->check(CLI::Range(0, 1 << 30));

  // `run NAME ... -- CMD ARGS`: everything after the first "--" is the command,
  // untouched by option parsing.
  bool run_dashdash = false;
  if (first < args.size() && args[first] == "run") {
    for (size_t i = first + 1; i < args.size(); ++i) {
      if (args[i] == "--") {
        run_cmd.assign(args.begin() + static_cast<long>(i) + 1, args.end());
        args.resize(i);
        run_dashdash = true;
        break;
      }
    }
  }

  try {
    std::vector<std::string> rev(args.rbegin(), args.rend());
    app.parse(rev);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string hint = "Run `usched --help` for usage.";
    for (auto* sub : app.get_subcommands())
      hint = fmt::format("Run `usched {} --help` for usage.", sub->get_name());
    std::string what = e.what();
    if (what.empty()) what = "bad arguments";
    return usage(what, hint);
  }
  (void)run_dashdash;

  Cli cli(g);
  if (*create) return cli.create(create_words);
  if (*update) return cli.update(update_words);
  if (*destroy) return cli.destroy(destroy_name, force);
  if (*chown) return cli.chown(chown_name, chown_owner);
  if (*list) return cli.list();
  if (*tree) return cli.tree();
  if (*show) return cli.show(show_name);
  if (ops_cmds.selected()) return ops_cmds.run({g.socket, g.timeout_ms, g.json});
  if (gang_cmds.selected()) return gang_cmds.run({g.socket, g.timeout_ms, g.json});
  if (*run && !run_threads.empty() && run_gang.empty()) {
    return usage("--threads picks the threads that join a gang: give --gang GANG too",
                 "Run `usched run --help` for usage.");
  }
  if (*run && !run_gang.empty()) {
    return usched::cli::run_in_gang({g.socket, g.timeout_ms, g.json}, run_name, run_gang, run_cmd, run_threads);
  }
  if (*run) return cli.run(run_name, run_vcpu, run_cmd);
  if (*bind) return cli.bind(bind_name, bind_pid, bind_tid, bind_vcpu);
  if (*unbind) return cli.unbind(unbind_pid, unbind_tid);
  if (*watch) return cli.watch(watch_count);
  return usage("no command given", "Run `usched --help` for usage.");
}

}  // namespace

int main(int argc, char** argv) { usched::cli::finish(run(argc, argv)); }
