//! The operator's side of uschedd: the declarative config (--config,
//! re-applied on SIGHUP), --foreground, and the optional metrics endpoint.
//! Kept apart from main.cc so the daemon's start-up reads as a list of steps.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "asio.h"
#include "engine.h"
#include "metrics.h"

namespace usched::daemon {

inline constexpr const char* kDefaultConfig = "/etc/usched/usched.conf";

struct OpsOptions {
  std::string config = kDefaultConfig;
  bool config_given = false;  // --config named explicitly: it must exist
  bool no_config = false;
  bool foreground = false;    // accepted for service managers; uschedd never forks
  std::string metrics;        // "" = off
};

void add_ops_options(CLI::App& app, OpsOptions& o);
// The config file to load, or "" when there is none to load (the default
// path is optional; an explicit --config is not).
std::string config_path(const OpsOptions& o);

// Reads and applies the config as root; errors name the file and line.
Status apply_config_file(Engine& engine, const std::string& path, const std::string& why);

// SIGHUP re-applies the config; the metrics endpoint when asked for.
class Ops {
 public:
  Ops(asio::io_context& io, Engine& engine, OpsOptions o);
  Status start();
  void stop();

 private:
  void wait_hup();
  asio::io_context& io_;
  Engine& engine_;
  OpsOptions opts_;
  asio::signal_set hup_;
  std::unique_ptr<MetricsServer> metrics_;
};

}  // namespace usched::daemon
