#include "place_exchange.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "usched/place.h"

namespace usched::detail {

std::string unreachable(const std::string& path, const std::string& reason) {
  return "cannot reach uschedd at " + path + ": " + reason +
         " (is it running? start it with `uschedd`, or point --socket/$USCHED_SOCKET at its socket)";
}

namespace {

// Sends or receives all n bytes; false with errno set otherwise (errno
// EPROTO when the peer closed the connection first).
bool all(int fd, char* p, size_t n, bool out) {
  while (n > 0) {
    const ssize_t k = out ? ::send(fd, p, n, MSG_NOSIGNAL) : ::recv(fd, p, n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) errno = ETIMEDOUT;  // SO_*TIMEO ran out
    if (k == 0) errno = EPROTO;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

}  // namespace

int connect_unix(const char* path, int timeout_ms) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const size_t len = std::strlen(path);
  if (len >= sizeof(addr.sun_path)) return -ENAMETOOLONG;
  std::memcpy(addr.sun_path, path, len + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (timeout_ms < 1) timeout_ms = 1;  // 0 would mean no timeout at all
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) return fd;
  const int e = (errno == EAGAIN || errno == EINPROGRESS) ? ETIMEDOUT : errno;
  ::close(fd);
  return -e;
}

namespace {

// Makes receives on fd wait no longer than timeout_ms (at least 1: 0 would
// mean no timeout at all).
void recv_timeout(int fd, int timeout_ms) {
  if (timeout_ms < 1) timeout_ms = 1;
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

}  // namespace

int place_send(int fd, const char* req, size_t req_len) {
  return all(fd, const_cast<char*>(req), req_len, true) ? 0 : -errno;
}

ssize_t place_peek(int fd, char* reply, size_t cap, int timeout_ms) {
  if (cap < 8) return -EMSGSIZE;
  recv_timeout(fd, timeout_ms);
  if (timeout_ms < 1) timeout_ms = 1;  // for poll, as for the socket
  size_t want = 8;  // length and code; then the whole frame of a refusal
  bool header = true;
  bool closed = false;
  for (;;) {
    const ssize_t k = ::recv(fd, reply, want, MSG_PEEK | MSG_WAITALL);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
    if (k == 0) return -EPROTO;
    if (static_cast<size_t>(k) < want) {
      // A peek stops at the end of what has arrived. uschedd's reply is one
      // send() of a small frame, which arrives whole, and then it closes
      // the connection: a frame in pieces is complete once that close is
      // seen, or never.
      if (closed) return -EPROTO;
      pollfd p{fd, POLLRDHUP, 0};
      const int rc = ::poll(&p, 1, timeout_ms);
      if (rc < 0 && errno != EINTR) return -errno;
      if (rc == 0) return -ETIMEDOUT;
      closed = rc > 0;
      continue;
    }
    if (!header) return k;
    const uint32_t n = place::get_le32(reply);
    if (n < 4) return -EPROTO;
    if (place::get_le32(reply + 4) == 0) {
      place::put_le32_at(reply, 4);  // placed: the BindResponse is not read
      return 8;
    }
    if (n > cap - 4) return -EMSGSIZE;
    want = 4 + n;
    header = false;
  }
}

ssize_t place_exchange(const char* path, const char* req, size_t req_len, char* reply, size_t cap, int timeout_ms) {
  if (cap < 8) return -EMSGSIZE;
  const int fd = connect_unix(path, timeout_ms);
  if (fd < 0) return fd;
  recv_timeout(fd, timeout_ms);
  ssize_t out = -1;
  if (!all(fd, const_cast<char*>(req), req_len, true) || !all(fd, reply, 4, false)) {
    out = -errno;
  } else if (const uint32_t n = place::get_le32(reply); n < 4) {
    out = -EPROTO;
  } else if (n > cap - 4) {
    out = -EMSGSIZE;
  } else if (!all(fd, reply + 4, n, false)) {
    out = -errno;
  } else {
    out = static_cast<ssize_t>(4 + n);
  }
  ::close(fd);
  return out;
}

int timeout_ms(std::chrono::milliseconds t) {
  return static_cast<int>(std::clamp<int64_t>(t.count(), 1, 86400000));
}

Status place_status(const std::string& path, ssize_t n, const char* reply) {
  if (n == -ETIMEDOUT) return Status(Code::kUnavailable, "uschedd did not answer on " + path + " in time");
  if (n == -EPROTO) return Status(Code::kUnavailable, "uschedd closed " + path + " without an answer");
  if (n == -EMSGSIZE) return Status(Code::kInternal, "uschedd's answer on " + path + " is too large");
  if (n < 0) return Status(Code::kUnavailable, unreachable(path, std::strerror(static_cast<int>(-n))));
  const uint32_t code = place::get_le32(reply + 4);
  if (code > static_cast<uint32_t>(Code::kInternal)) {
    return Status(Code::kInternal, "uschedd answered on " + path + " with an unknown code " + std::to_string(code));
  }
  if (code != 0) return Status(static_cast<Code>(code), std::string(reply + 8, static_cast<size_t>(n - 8)));
  return Status::ok();
}

}  // namespace usched::detail
