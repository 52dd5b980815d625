#include "metrics.h"

#include <unistd.h>

#include <filesystem>

#include <fmt/core.h>
#include <spdlog/spdlog.h>

namespace usched::daemon {
namespace {

// Label values escape backslash, double quote and newline.
std::string label(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o += c;
  }
  return o;
}

const char* class_label(v1::SchedClass c) {
  switch (c) {
    case v1::SCHED_CLASS_IDLE: return "idle";
    case v1::SCHED_CLASS_NORMAL: return "normal";
    case v1::SCHED_CLASS_REALTIME: return "realtime";
    default: return "unspecified";
  }
}

template <class Socket>
void serve_one(std::shared_ptr<Socket> sock, Engine& engine) {
  auto buf = std::make_shared<asio::streambuf>(16384);
  // Read the request head (bounded), then answer whatever was asked.
  asio::async_read_until(*sock, *buf, "\r\n\r\n",
                         [sock, buf, &engine](const boost::system::error_code& ec, size_t) {
                           if (ec && ec != asio::error::eof) return;
                           std::istream in(buf.get());
                           std::string method, path;
                           in >> method >> path;
                           std::string body, status = "200 OK";
                           if (method != "GET" && method != "HEAD") {
                             status = "405 Method Not Allowed";
                             body = "only GET\n";
                           } else {
                             body = render_metrics(engine.stats());
                           }
                           auto out = std::make_shared<std::string>(fmt::format(
                               "HTTP/1.0 {}\r\nContent-Type: text/plain; version=0.0.4; "
                               "charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                               status, body.size(), method == "HEAD" ? "" : body));
                           asio::async_write(*sock, asio::buffer(*out),
                                             [sock, out](const boost::system::error_code&, size_t) {
                                               boost::system::error_code ignored;
                                               sock->shutdown(Socket::shutdown_both, ignored);
                                             });
                         });
}

}  // namespace

std::string render_metrics(const v1::GetStatsResponse& s) {
  std::string o;
  auto family = [&](const char* name, const char* type, const char* help) {
    o += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  family("usched_scheduler_cpu_seconds_total", "counter",
         "CPU time used by the scheduler's members while bound to it (kernel per-task accounting).");
  for (const auto& e : s.schedulers())
    o += fmt::format("usched_scheduler_cpu_seconds_total{{scheduler=\"{}\"}} {:.6f}\n", label(e.name()),
                     static_cast<double>(e.cpu_usage_us()) / 1e6);
  family("usched_scheduler_members", "gauge", "Processes and threads bound to the scheduler.");
  for (const auto& e : s.schedulers())
    o += fmt::format("usched_scheduler_members{{scheduler=\"{}\"}} {}\n", label(e.name()), e.members());
  family("usched_scheduler_vcpus", "gauge", "Virtual CPUs of the scheduler.");
  for (const auto& e : s.schedulers())
    o += fmt::format("usched_scheduler_vcpus{{scheduler=\"{}\",class=\"{}\"}} {}\n", label(e.name()),
                     class_label(e.effective_class()), e.vcpus());
  family("usched_scheduler_gang_switches_total", "counter",
         "Gang slot switches (rotations of the Ousterhout matrix) in the scheduler.");
  for (const auto& e : s.schedulers())
    o += fmt::format("usched_scheduler_gang_switches_total{{scheduler=\"{}\"}} {}\n", label(e.name()),
                     e.gang_switches());
  family("usched_scheduler_gang_frozen_seconds_total", "counter",
         "Time gangs of the scheduler spent frozen waiting for their slot.");
  for (const auto& e : s.schedulers())
    o += fmt::format("usched_scheduler_gang_frozen_seconds_total{{scheduler=\"{}\"}} {:.6f}\n",
                     label(e.name()), static_cast<double>(e.frozen_us()) / 1e6);
  family("usched_gang_skew_seconds", "gauge",
         "CPU time the gang's fastest thread has run ahead of its slowest runnable one since joining (skew).");
  for (const auto& g : s.gangs())
    o += fmt::format("usched_gang_skew_seconds{{scheduler=\"{}\",gang=\"{}\"}} {:.6f}\n", label(g.scheduler()),
                     label(g.gang()), static_cast<double>(g.skew_us()) / 1e6);
  family("usched_gang_co_run_ratio", "gauge",
         "Share of the gang's running time in which all its runnable threads ran together.");
  for (const auto& g : s.gangs())
    o += fmt::format("usched_gang_co_run_ratio{{scheduler=\"{}\",gang=\"{}\"}} {:.4f}\n", label(g.scheduler()),
                     label(g.gang()), g.co_run_ratio());
  family("usched_gang_threads", "gauge", "Threads in the gang now.");
  for (const auto& g : s.gangs())
    o += fmt::format("usched_gang_threads{{scheduler=\"{}\",gang=\"{}\"}} {}\n", label(g.scheduler()),
                     label(g.gang()), g.threads());
  family("usched_schedulers", "gauge", "Schedulers in the tree (the root excluded).");
  o += fmt::format("usched_schedulers {}\n", s.schedulers_size());
  return o;
}

struct MetricsServer::Impl {
  asio::io_context& io;
  Engine& engine;
  std::unique_ptr<asio::local::stream_protocol::acceptor> unix_acc;
  std::unique_ptr<asio::ip::tcp::acceptor> tcp_acc;
  std::string unix_path;

  template <class Acceptor, class Socket>
  void accept(Acceptor& acc) {
    auto sock = std::make_shared<Socket>(io);
    acc.async_accept(*sock, [this, &acc, sock](const boost::system::error_code& ec) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) serve_one(sock, engine);
      accept<Acceptor, Socket>(acc);
    });
  }
};

MetricsServer::MetricsServer(asio::io_context& io, Engine& engine)
    : impl_(new Impl{io, engine, nullptr, nullptr, ""}) {}

MetricsServer::~MetricsServer() { close(); }

Status MetricsServer::listen(const std::string& where) {
  boost::system::error_code ec;
  if (where.rfind("unix:", 0) == 0) {
    const std::string path = where.substr(5);
    if (path.empty()) return invalid("--metrics unix:PATH needs a path");
    // A stale socket from a previous run is replaced; anything else is not.
    std::error_code fec;
    if (std::filesystem::is_socket(path, fec)) ::unlink(path.c_str());
    auto acc = std::make_unique<asio::local::stream_protocol::acceptor>(impl_->io);
    acc->open(asio::local::stream_protocol(), ec);
    if (!ec) acc->bind(asio::local::stream_protocol::endpoint(path), ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Status(Code::kUnavailable, "--metrics: cannot listen on " + path + ": " + ec.message());
    impl_->unix_path = path;
    impl_->unix_acc = std::move(acc);
    impl_->accept<asio::local::stream_protocol::acceptor, asio::local::stream_protocol::socket>(
        *impl_->unix_acc);
    return Status::ok();
  }
  const size_t colon = where.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == where.size()) {
    return invalid("--metrics '" + where + "': give unix:PATH or ADDRESS:PORT (127.0.0.1:9464)");
  }
  std::string host = where.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const auto addr = asio::ip::make_address(host, ec);
  if (ec) return invalid("--metrics '" + where + "': '" + host + "' is not an IP address");
  int port = 0;
  try {
    port = std::stoi(where.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (port <= 0 || port > 65535) return invalid("--metrics '" + where + "': bad port");
  auto acc = std::make_unique<asio::ip::tcp::acceptor>(impl_->io);
  const asio::ip::tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status(Code::kUnavailable, "--metrics: cannot listen on " + where + ": " + ec.message());
  impl_->tcp_acc = std::move(acc);
  impl_->accept<asio::ip::tcp::acceptor, asio::ip::tcp::socket>(*impl_->tcp_acc);
  return Status::ok();
}

void MetricsServer::close() {
  boost::system::error_code ec;
  if (impl_->unix_acc) {
    impl_->unix_acc->close(ec);
    impl_->unix_acc.reset();
    ::unlink(impl_->unix_path.c_str());
  }
  if (impl_->tcp_acc) {
    impl_->tcp_acc->close(ec);
    impl_->tcp_acc.reset();
  }
}

}  // namespace usched::daemon
