//! The placement socket (usched/place.h has the wire format): a process
//! binds itself, one of its threads or a child it forked, with one request
//! on a connection of its own, without gRPC. The connection is served on the engine's strand
//! (the io_context thread) from accept to answer: a Bind there costs the
//! engine's work and two small socket calls.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>

#include "asio.h"
#include "engine.h"
#include "server.h"

namespace usched::daemon {

class PlaceListener {
 public:
  PlaceListener(asio::io_context& io, Engine& engine, ServiceLimits limits)
      : io_(io), engine_(engine), limits_(limits), listen_(io), retry_(io) {}
  ~PlaceListener();
  PlaceListener(const PlaceListener&) = delete;
  PlaceListener& operator=(const PlaceListener&) = delete;

  Status listen(const std::string& path);
  void start() {
    accept_loop(listen_, retry_, [this](int fd, const Caller& c) { serve(fd, c); });
  }
  // Stops accepting and answers the requests still read with UNAVAILABLE.
  void close();

  // A client has this long to send its request once connected.
  static constexpr std::chrono::seconds kRequestTimeout{5};

 private:
  struct Conn;
  void serve(int fd, const Caller& c);
  void read(const std::shared_ptr<Conn>& conn);
  void answer(const std::shared_ptr<Conn>& conn);
  void send(const std::shared_ptr<Conn>& conn, const std::string& reply);
  void done(const std::shared_ptr<Conn>& conn);

  asio::io_context& io_;
  Engine& engine_;
  const ServiceLimits limits_;
  asio::posix::stream_descriptor listen_;
  asio::steady_timer retry_;
  std::string path_;
  bool closed_ = false;
  std::map<uid_t, int> open_;  // connections per uid (on the strand only)
};

}  // namespace usched::daemon
