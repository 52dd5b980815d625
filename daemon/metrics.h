//! An optional Prometheus text endpoint (--metrics unix:PATH or
//! --metrics 127.0.0.1:PORT): a tiny HTTP/1.0 responder on the daemon's
//! io_context, so every scrape reads the engine on its strand without a
//! lock. Any request gets the metrics; one response per connection.
#pragma once

#include <memory>
#include <string>

#include "asio.h"
#include "engine.h"

namespace usched::daemon {

// The text exposition format (version 0.0.4) of one stats sample.
std::string render_metrics(const v1::GetStatsResponse& s);

class MetricsServer {
 public:
  MetricsServer(asio::io_context& io, Engine& engine);
  ~MetricsServer();
  // "unix:/run/usched/metrics.sock" or "127.0.0.1:9464" ("[::1]:9464").
  Status listen(const std::string& where);
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace usched::daemon
