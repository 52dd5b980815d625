#include "place.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "usched/place.h"

namespace usched::daemon {

struct PlaceListener::Conn {
  Conn(asio::io_context& io, int fd, const Caller& c) : sock(io, fd), timer(io), caller(c) {}
  asio::posix::stream_descriptor sock;
  asio::steady_timer timer;
  Caller caller;
  std::string buf;
  bool timed = false;  // the request timeout runs
  bool finished = false;
};

PlaceListener::~PlaceListener() { close(); }

Status PlaceListener::listen(const std::string& path) {
  auto fd = listen_unix(path);
  if (!fd) return fd.status();
  listen_.assign(*fd);
  path_ = path;
  return Status::ok();
}

void PlaceListener::close() {
  closed_ = true;
  retry_.cancel();
  if (listen_.is_open()) {
    boost::system::error_code ec;
    listen_.close(ec);
    ::unlink(path_.c_str());
  }
}

void PlaceListener::serve(int fd, const Caller& c) {
  const int limit = limits_.max_connections_per_uid;
  int& n = open_[c.uid];
  if (c.uid != 0 && limit > 0 && n >= limit) {
    // Refused before reading: the client reads this answer after sending.
    const std::string f = place::reply_frame(
        Code::kResourceExhausted, "uid " + std::to_string(c.uid) + " has " + std::to_string(n) +
                                      " connections to " + path_ +
                                      " open; the limit is --max-connections-per-uid " + std::to_string(limit));
    (void)::send(fd, f.data(), f.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::close(fd);
    return;
  }
  ++n;
  read(std::make_shared<Conn>(io_, fd, c));
}

void PlaceListener::read(const std::shared_ptr<Conn>& conn) {
  // Read before waiting: a client sends its request right after connect,
  // so it is mostly there by the time the connection is accepted.
  char chunk[4096];
  const ssize_t n = ::recv(conn->sock.native_handle(), chunk, sizeof(chunk), MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
    if (!conn->timed) {  // the first wait starts the client's time
      conn->timed = true;
      conn->timer.expires_after(kRequestTimeout);
      conn->timer.async_wait([this, conn](const boost::system::error_code& ec) {
        if (ec || conn->finished) return;
        spdlog::debug("place: pid {} sent no request within {} s; closed", conn->caller.pid, kRequestTimeout.count());
        done(conn);
      });
    }
    conn->sock.async_wait(asio::posix::stream_descriptor::wait_read, [this, conn](const boost::system::error_code& ec) {
      if (ec || conn->finished) return done(conn);
      read(conn);
    });
    return;
  }
  if (n <= 0) return done(conn);  // gone before its request
  conn->buf.append(chunk, static_cast<size_t>(n));
  if (conn->buf.size() >= 4 && place::get_le32(conn->buf.data()) > place::kMaxRequest) return answer(conn);
  if (conn->buf.size() < 4 || conn->buf.size() < 4 + place::get_le32(conn->buf.data())) return read(conn);
  answer(conn);
}

void PlaceListener::answer(const std::shared_ptr<Conn>& conn) {
  const Caller& c = conn->caller;
  const uint32_t len = place::get_le32(conn->buf.data());
  auto refuse = [](Code code, const std::string& msg) { return place::reply_frame(code, cut_message(msg)); };
  std::string reply;
  v1::BindRequest req;
  if (len > place::kMaxRequest) {
    reply = refuse(Code::kInvalidArgument, "a placement request of " + std::to_string(len) +
                                               " bytes is larger than the " + std::to_string(place::kMaxRequest) +
                                               " bytes a usched.v1.BindRequest can take on " + path_);
  } else if (conn->buf.size() != 4 + len) {
    reply = refuse(Code::kInvalidArgument, "one placement request per connection on " + path_ + "; " +
                                               std::to_string(conn->buf.size() - 4 - len) + " bytes came after it");
  } else if (!req.ParseFromArray(conn->buf.data() + 4, static_cast<int>(len))) {
    reply = refuse(Code::kInvalidArgument,
                   "the placement request on " + path_ + " is not a usched.v1.BindRequest (see usched/place.h)");
  } else if (closed_) {
    reply = refuse(Code::kUnavailable, "uschedd is stopping");
  } else {
    // The caller's pid came from SO_PEERCRED at connect. While the
    // connection is open that process has not exited (its exit closes the
    // connection before its pid can be reused), so the pid is still the
    // caller's. A child it names (rfork's parent places the child it just
    // forked) the engine checks as for Bind: by /proc, its parent the caller.
    char b;
    const ssize_t peek = ::recv(conn->sock.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (peek == 0) return done(conn);  // gone: nobody to place
    if (req.pid() == 0) req.set_pid(c.pid);
    auto r = engine_.bind(c, req, /*own_only=*/true);
    if (r) {
      // Answered once its first instruction runs where the tree says
      // (Engine::when_placed): the request timeout no longer applies.
      conn->timer.cancel();
      engine_.when_placed(MemberKey{req.pid(), req.tid()},
                          [this, conn, f = place::reply_frame(Code::kOk, r->SerializeAsString())] { send(conn, f); });
      return;
    }
    reply = refuse(r.status().code(), r.status().message());
  }
  send(conn, reply);
}

void PlaceListener::send(const std::shared_ptr<Conn>& conn, const std::string& reply) {
  if (conn->finished) return;
  // The answer fits in the socket's buffer (kMaxReply is far below it); a
  // client that does not read it loses it, nothing else.
  const ssize_t sent = ::send(conn->sock.native_handle(), reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent != static_cast<ssize_t>(reply.size())) {
    spdlog::debug("place: the answer to pid {} was not sent: {}", conn->caller.pid,
                  sent < 0 ? std::strerror(errno) : "cut");
  }
  done(conn);
}

void PlaceListener::done(const std::shared_ptr<Conn>& conn) {
  if (conn->finished) return;
  conn->finished = true;
  conn->timer.cancel();
  boost::system::error_code ec;
  conn->sock.close(ec);
  if (auto it = open_.find(conn->caller.uid); it != open_.end() && --it->second <= 0) open_.erase(it);
}

}  // namespace usched::daemon
