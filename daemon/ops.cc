#include "ops.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

namespace usched::daemon {

void add_ops_options(CLI::App& app, OpsOptions& o) {
  app.add_option("--config", o.config,
                 "Config file of usched lines applied at start-up and on SIGHUP "
                 "(optional at the default path)")
      ->capture_default_str()
      ->each([&o](const std::string&) { o.config_given = true; });
  app.add_flag("--no-config", o.no_config, "Do not load any config file");
  app.add_flag("--foreground", o.foreground,
               "Stay in the foreground, logging to stderr (uschedd never daemonizes; "
               "for service managers and containers)");
  app.add_option("--metrics", o.metrics,
                 "Serve Prometheus metrics on unix:PATH or ADDRESS:PORT (e.g. 127.0.0.1:9464)");
}

std::string config_path(const OpsOptions& o) {
  if (o.no_config) return "";
  if (o.config_given) return o.config;
  std::error_code ec;
  return std::filesystem::exists(o.config, ec) ? o.config : "";
}

Status apply_config_file(Engine& engine, const std::string& path, const std::string& why) {
  std::ifstream in(path);
  if (!in) return invalid("cannot read the config " + path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  v1::ApplyRequest req;
  req.set_config(ss.str());
  req.set_source(path);
  Caller root;  // the daemon itself applies its own config
  auto r = engine.apply(root, req);
  if (!r) return r.status();
  int changes = 0;
  for (const auto& s : r->steps()) {
    if (s.action() == v1::PlanStep::CREATE || s.action() == v1::PlanStep::UPDATE ||
        s.action() == v1::PlanStep::DESTROY)
      ++changes;
    if (s.action() == v1::PlanStep::KEEP) spdlog::warn("{}: {} {}", path, s.name(), s.detail());
  }
  spdlog::info("config {} applied ({}): {} changes", path, why, changes);
  return Status::ok();
}

Ops::Ops(asio::io_context& io, Engine& engine, OpsOptions o)
    : io_(io), engine_(engine), opts_(std::move(o)), hup_(io, SIGHUP) {}

Status Ops::start() {
  wait_hup();
  if (!opts_.metrics.empty()) {
    metrics_ = std::make_unique<MetricsServer>(io_, engine_);
    if (Status s = metrics_->listen(opts_.metrics); !s) return s;
    spdlog::info("metrics on {}", opts_.metrics);
  }
  return Status::ok();
}

void Ops::stop() {
  boost::system::error_code ec;
  hup_.cancel(ec);
  if (metrics_) metrics_->close();
}

void Ops::wait_hup() {
  hup_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    // Runs on the io_context, which is the engine's strand.
    const std::string path = config_path(opts_);
    if (path.empty()) {
      spdlog::warn("SIGHUP: no config file to re-apply ({} does not exist)", opts_.config);
    } else if (Status s = apply_config_file(engine_, path, "SIGHUP"); !s) {
      spdlog::error("SIGHUP: config not applied, nothing changed: {}", s.message());
    }
    wait_hup();
  });
}

}  // namespace usched::daemon
