#include "ops_cmd.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <fmt/core.h>
#include <google/protobuf/util/json_util.h>

#include "session.h"

#include "usched/cpuset.h"

namespace usched::cli {
namespace {

constexpr int kExitOk = 0, kExitError = 1, kExitUsage = 2;

int fail(const Status& s) {
  std::fflush(stdout);
  std::fprintf(stderr, "usched: %s\n", s.message().c_str());
  return kExitError;
}

void out(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
}

std::string json(const google::protobuf::Message& m, bool pretty) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = pretty;
  o.always_print_primitive_fields = true;
  std::string s;
  if (!google::protobuf::util::MessageToJsonString(m, &s, o).ok()) return "{}";
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

const char* action_word(v1::PlanStep::Action a) {
  switch (a) {
    case v1::PlanStep::CREATE: return "create";
    case v1::PlanStep::UPDATE: return "update";
    case v1::PlanStep::DESTROY: return "destroy";
    case v1::PlanStep::UNCHANGED: return "unchanged";
    case v1::PlanStep::KEEP: return "keep";
    default: return "?";
  }
}

const char* class_word(v1::SchedClass c) {
  switch (c) {
    case v1::SCHED_CLASS_IDLE: return "idle";
    case v1::SCHED_CLASS_NORMAL: return "normal";
    case v1::SCHED_CLASS_REALTIME: return "realtime";
    default: return "-";
  }
}

// Restores the terminal on every exit path.
class RawTerminal {
 public:
  RawTerminal() {
    if (::isatty(0) && ::tcgetattr(0, &old_) == 0) {
      termios t = old_;
      t.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
      t.c_cc[VMIN] = 0;
      t.c_cc[VTIME] = 0;
      raw_ = ::tcsetattr(0, TCSANOW, &t) == 0;
    }
  }
  ~RawTerminal() {
    if (raw_) ::tcsetattr(0, TCSANOW, &old_);
  }

 private:
  termios old_{};
  bool raw_ = false;
};

int term_rows() {
  winsize w{};
  if (::ioctl(1, TIOCGWINSZ, &w) == 0 && w.ws_row > 0) return w.ws_row;
  return 24;
}

}  // namespace

bool color_stdout() { return ::isatty(1) && std::getenv("NO_COLOR") == nullptr; }

std::string cpu_map(const std::string& cpus, const std::string& all, bool exclusive,
                    v1::SchedClass cls, bool color) {
  auto a = CpuSet::parse(all);
  auto c = CpuSet::parse(cpus);
  if (!a) return "";
  const CpuSet mine = c ? *c : CpuSet();
  const char* on = "\033[32m";
  if (exclusive) on = "\033[31m";
  else if (cls == v1::SCHED_CLASS_REALTIME) on = "\033[33m";
  else if (cls == v1::SCHED_CLASS_IDLE) on = "\033[2m";
  std::string m = "[";
  for (int cpu : a->to_vector()) {
    const bool in = mine.contains(cpu);
    if (color && in) m += on;
    m += in ? '#' : '.';
    if (color && in) m += "\033[0m";
  }
  return m + "]";
}

void OpsCommands::add_to(CLI::App& app) {
  apply_ = app.add_subcommand("apply", "converge the schedulers to a config file (usched lines)");
  apply_->add_option("FILE", file_, "config file ('-' for stdin)")->required();
  apply_->add_flag("--dry-run,-n", dry_run_, "print the plan, change nothing");
  apply_->add_flag("--force", force_,
                   "also destroy config-made schedulers that left the file while busy "
                   "(members move to the parent)");
  top_ = app.add_subcommand("top", "per-scheduler CPU use and members, refreshed (q quits)");
  top_->add_option("--interval,-d", interval_, "seconds between refreshes (default 1)")
      ->check(CLI::Range(0.1, 3600.0));
  top_->add_option("--iterations,-n", iterations_, "exit after N refreshes")->check(CLI::Range(1, 1 << 30));
}

bool OpsCommands::selected() const { return (apply_ && *apply_) || (top_ && *top_); }

int OpsCommands::run(const OpsConn& o) {
  auto c = session(o.socket, o.timeout_ms);
  if (!c) return fail(c.status());
  if (*apply_) return apply(**c, o);
  return top(**c, o);
}

int OpsCommands::apply(Client& c, const OpsConn& o) {
  std::string text;
  if (file_ == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  } else {
    std::ifstream in(file_);
    if (!in) {
      std::fprintf(stderr, "usched: cannot read %s: %s\n", file_.c_str(), std::strerror(errno));
      return kExitUsage;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  v1::ApplyRequest req;
  req.set_config(text);
  req.set_source(file_ == "-" ? "<stdin>" : file_);
  req.set_dry_run(dry_run_);
  req.set_force(force_);
  auto r = c.apply(req);
  if (!r) return fail(r.status());
  if (o.json) {
    out(json(*r, true));
    return kExitOk;
  }
  int changes = 0;
  for (const auto& s : r->steps()) {
    const bool change = s.action() == v1::PlanStep::CREATE || s.action() == v1::PlanStep::UPDATE ||
                        s.action() == v1::PlanStep::DESTROY;
    changes += change;
    std::string where = s.line() > 0 ? fmt::format("line {}", s.line()) : "";
    out(fmt::format("{:<10} {:<20} {:<8} {}", action_word(s.action()), s.name(), where, s.detail()));
  }
  if (dry_run_)
    out(fmt::format("dry run: {} change{} planned, nothing applied", changes, changes == 1 ? "" : "s"));
  else
    out(fmt::format("applied {} change{}", changes, changes == 1 ? "" : "s"));
  return kExitOk;
}

int OpsCommands::top(Client& c, const OpsConn& o) {
  const bool tty = ::isatty(1);
  const bool color = color_stdout();
  RawTerminal raw;
  std::map<std::string, uint64_t> last_cpu;
  int64_t last_time = 0;
  for (int i = 0; iterations_ < 0 || i < iterations_; ++i) {
    auto st = c.stats();
    if (!st) return fail(st.status());
    if (o.json) {
      out(json(*st, false));
    } else {
      const double dt = last_time ? static_cast<double>(st->time_us() - last_time) / 1e6 : 0;
      std::string screen;
      if (tty) screen += "\033[H\033[2J";
      screen += fmt::format("usched top - {} schedulers, cpus {}, every {:.1f}s, q quits\n",
                            st->schedulers_size(), st->online_cpus(), interval_);
      std::string head = fmt::format("{:<24} {:>6} {:>10} {:>8} {:>6} {:>9} {:<10} {}", "NAME", "%CPU",
                                     "CPU-SEC", "MEMBERS", "VCPUS", "GANGSLOT", "CLASS", "CPUS");
      if (color) head = "\033[7m" + head + "\033[0m";
      screen += head + "\n";
      int rows = 2;
      for (const auto& s : st->schedulers()) {
        if (tty && rows >= term_rows() - 1) break;
        double pct = 0;
        if (dt > 0) {
          auto it = last_cpu.find(s.name());
          const uint64_t prev = it == last_cpu.end() ? s.cpu_usage_us() : it->second;
          pct = 100.0 * static_cast<double>(s.cpu_usage_us() - prev) / 1e6 / dt;
        }
        screen += fmt::format("{:<24} {:>6.1f} {:>10.2f} {:>8} {:>6} {:>9} {:<10} {}\n", s.name(), pct,
                              static_cast<double>(s.cpu_usage_us()) / 1e6, s.members(), s.vcpus(),
                              fmt::format("{}/{}", s.gangs(), s.gang_slots()), class_word(s.effective_class()),
                              s.effective_cpus().empty() ? "none" : s.effective_cpus());
        ++rows;
      }
      std::fwrite(screen.data(), 1, screen.size(), stdout);
    }
    std::fflush(stdout);
    last_cpu.clear();
    for (const auto& s : st->schedulers()) last_cpu[s.name()] = s.cpu_usage_us();
    last_time = st->time_us();
    if (iterations_ > 0 && i + 1 >= iterations_) break;
    // Wait for the interval, or for 'q' on the terminal.
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(static_cast<int>(interval_ * 1000));
    static bool stdin_open = true;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{0, POLLIN, 0};
      if (::poll(&p, stdin_open ? 1 : 0, static_cast<int>(left.count())) > 0) {
        char ch = 0;
        const ssize_t n = ::read(0, &ch, 1);
        if (n == 0) {
          // stdin at its end (not a terminal): keep refreshing on the timer.
          stdin_open = false;
          continue;
        }
        if (n == 1 && (ch == 'q' || ch == 'Q')) {
          if (tty && !o.json) std::fputs("\n", stdout);
          return kExitOk;
        }
      }
    }
  }
  return kExitOk;
}

}  // namespace usched::cli
