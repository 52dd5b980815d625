// `usched gang ...`, `usched run SCHED --gang G -- CMD` and the gang part of
// `usched show`: the CLI's gang commands, kept apart from main.cc.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "usched/client.h"

namespace usched::cli {

struct ConnOpts {
  std::string socket;
  int timeout_ms = 10000;
  bool json = false;
};

class GangCommands {
 public:
  // Registers `gang create|add|remove|destroy|list` under app.
  void add_to(CLI::App& app);
  bool selected() const;
  int run(const ConnOpts& o);

 private:
  CLI::App* gang_ = nullptr;
  CLI::App *create_ = nullptr, *add_ = nullptr, *remove_ = nullptr, *destroy_ = nullptr, *list_ = nullptr;
  std::string path_;
  int quantum_ms_ = 0, width_ = 0, pid_ = 0, tid_ = 0;
  std::string policy_;
  std::string threads_;
  std::string list_sched_;
};

// Adds this process to gang SCHED/GANG (binding it to SCHED), then execs cmd.
// With `threads` (a glob), only the threads whose name matches join, as
// they appear.
int run_in_gang(const ConnOpts& o, const std::string& sched, const std::string& gang,
                const std::vector<std::string>& cmd, const std::string& threads = "");
// Prints the gangs of one scheduler (for `usched show`); nothing when none.
void print_gangs(Client& c, const std::string& sched);

}  // namespace usched::cli
