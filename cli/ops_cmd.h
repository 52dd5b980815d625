// `usched apply`, `usched top` and the CPU map of `usched tree`: the
// operator's commands, kept apart from main.cc.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "usched/client.h"

namespace usched::cli {

struct OpsConn {
  std::string socket;
  int timeout_ms = 10000;
  bool json = false;
};

class OpsCommands {
 public:
  // Registers `apply FILE [--dry-run] [--force]` and `top [--interval S]
  // [--iterations N]` under app.
  void add_to(CLI::App& app);
  bool selected() const;
  int run(const OpsConn& o);

 private:
  int apply(Client& c, const OpsConn& o);
  int top(Client& c, const OpsConn& o);
  CLI::App *apply_ = nullptr, *top_ = nullptr;
  std::string file_;
  bool dry_run_ = false, force_ = false;
  double interval_ = 1.0;
  int iterations_ = -1;
};

// One character per machine CPU (in `all`): '#' in `cpus`, '.' not. On a
// TTY (color) the marks are coloured: exclusive red, realtime yellow,
// idle dim, else green.
std::string cpu_map(const std::string& cpus, const std::string& all, bool exclusive,
                    v1::SchedClass cls, bool color);
// stdout is a terminal and NO_COLOR is unset.
bool color_stdout();

}  // namespace usched::cli
