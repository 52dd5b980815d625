#include "direct.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <grpcpp/support/status.h>
#include <nghttp2/nghttp2.h>

#include "place_exchange.h"

namespace usched::cli {
namespace {

using Clock = std::chrono::steady_clock;

// What a gRPC client accepts by default (GRPC_DEFAULT_MAX_RECV_MESSAGE_LENGTH).
constexpr size_t kMaxAnswer = 4u << 20;
// Flow-control windows large enough that no answer waits for a WINDOW_UPDATE.
constexpr int32_t kWindow = 16 << 20;

grpc::Status failed(grpc::StatusCode c, std::string msg) { return grpc::Status(c, std::move(msg)); }

// grpc-message is percent-encoded (gRPC's PROTOCOL-HTTP2).
std::string percent_decode(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
      out += static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2]));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

// The connection: a unix socket and an nghttp2 client session on it.
class Direct final : public UnaryCaller {
 public:
  explicit Direct(std::string socket) : socket_(std::move(socket)) {}
  ~Direct() override { close(); }

  // Connects within timeout; "" or why not.
  std::string open(std::chrono::milliseconds timeout);

  grpc::Status call(const std::string& method, const google::protobuf::Message& req,
                    google::protobuf::Message* resp, std::chrono::milliseconds timeout) override;

 private:
  void close() {
    if (session_) nghttp2_session_del(session_);
    session_ = nullptr;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Whether the connection can take another call: reads what came since
  // the last one (a GOAWAY, the end of a daemon that stopped) first.
  bool alive();
  // Sends what nghttp2 has and reads what comes until the stream closes or
  // the deadline passes.
  grpc::Status exchange(Clock::time_point deadline, const std::string& method, std::chrono::milliseconds timeout);

  static ssize_t on_send(nghttp2_session*, const uint8_t* data, size_t len, int, void* self);
  static ssize_t on_body(nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                         nghttp2_data_source*, void* self);
  static int on_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t name_len,
                       const uint8_t* value, size_t value_len, uint8_t, void* self);
  static int on_data(nghttp2_session*, uint8_t, int32_t stream, const uint8_t* data, size_t len, void* self);
  static int on_close(nghttp2_session*, int32_t stream, uint32_t error, void* self);

  std::string socket_;
  int fd_ = -1;
  nghttp2_session* session_ = nullptr;

  // The call under way.
  int32_t stream_ = -1;
  std::string body_;  // the request, prefixed
  size_t body_sent_ = 0;
  std::string http_status_, grpc_status_, grpc_message_;
  std::string answer_;
  bool too_big_ = false;
  bool closed_ = false;
  uint32_t reset_ = 0;  // HTTP/2 error code the stream closed with
};

std::string Direct::open(std::chrono::milliseconds timeout) {
  close();
  const int fd = detail::connect_unix(socket_.c_str(), detail::timeout_ms(timeout));
  if (fd < 0) {
    if (fd == -ETIMEDOUT) return "no answer within " + std::to_string(timeout.count()) + " ms";
    return fd == -ENAMETOOLONG ? "socket path too long" : std::strerror(-fd);
  }
  fd_ = fd;
  if (::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK) != 0) {
    const int e = errno;
    close();
    return std::strerror(e);
  }

  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) {
    close();
    return "out of memory";
  }
  nghttp2_session_callbacks_set_send_callback(cb, on_send);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
  const int made = nghttp2_session_client_new(&session_, cb, this);
  nghttp2_session_callbacks_del(cb);
  if (made != 0) {
    session_ = nullptr;
    close();
    return nghttp2_strerror(made);
  }
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kWindow)},
  };
  int rv = nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  if (rv == 0) rv = nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kWindow);
  if (rv != 0) {
    close();
    return nghttp2_strerror(rv);
  }
  return "";  // the preface and settings go out with the first request
}

bool Direct::alive() {
  char buf[4096];
  while (fd_ >= 0) {
    const ssize_t got = ::recv(fd_, buf, sizeof(buf), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno == EAGAIN) break;
    if (got <= 0 || nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(buf),
                                             static_cast<size_t>(got)) < 0) {
      close();
    }
  }
  return fd_ >= 0 && (nghttp2_session_want_read(session_) || nghttp2_session_want_write(session_));
}

grpc::Status Direct::call(const std::string& method, const google::protobuf::Message& req,
                          google::protobuf::Message* resp, std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  if (!alive()) {
    // The daemon went away (or said GOAWAY) since the last call: connect again.
    if (std::string why = open(timeout); !why.empty())
      return failed(grpc::StatusCode::UNAVAILABLE, detail::unreachable(socket_, why));
  }
  std::string msg;
  if (!req.SerializeToString(&msg)) return failed(grpc::StatusCode::INTERNAL, "cannot encode the request");
  body_.assign(5, '\0');  // uncompressed, then the length, big-endian
  const uint32_t n = static_cast<uint32_t>(msg.size());
  body_[1] = static_cast<char>(n >> 24);
  body_[2] = static_cast<char>(n >> 16);
  body_[3] = static_cast<char>(n >> 8);
  body_[4] = static_cast<char>(n);
  body_ += msg;
  body_sent_ = 0;
  http_status_.clear();
  grpc_status_.clear();
  grpc_message_.clear();
  answer_.clear();
  too_big_ = closed_ = false;
  reset_ = 0;

  // At most 8 digits (gRPC's PROTOCOL-HTTP2); the command's --timeout stays below that.
  const std::string grpc_timeout = std::to_string(std::clamp<int64_t>(timeout.count(), 1, 99999999)) + "m";
  auto nv = [](const char* name, const std::string& value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), std::strlen(name),
                      value.size(), NGHTTP2_NV_FLAG_NONE};
  };
  const std::string post = "POST", http = "http", authority = "localhost", grpc = "application/grpc",
                    trailers = "trailers", agent = "usched-cli";
  const nghttp2_nv headers[] = {
      nv(":method", post),          nv(":scheme", http),  nv(":path", method),
      nv(":authority", authority),  nv("content-type", grpc), nv("te", trailers),
      nv("grpc-timeout", grpc_timeout), nv("user-agent", agent),
  };
  nghttp2_data_provider data{};
  data.read_callback = on_body;
  stream_ = nghttp2_submit_request(session_, nullptr, headers, std::size(headers), &data, nullptr);
  if (stream_ < 0) {
    const char* why = nghttp2_strerror(stream_);
    close();
    return failed(grpc::StatusCode::UNAVAILABLE, std::string("cannot send ") + method + ": " + why);
  }

  if (grpc::Status s = exchange(deadline, method, timeout); !s.ok()) return s;
  if (grpc_status_.empty()) {
    if (reset_ != 0) {
      return failed(grpc::StatusCode::UNAVAILABLE,
                    "uschedd reset " + method + " (" + nghttp2_http2_strerror(reset_) + ")");
    }
    return failed(http_status_ == "200" ? grpc::StatusCode::INTERNAL : grpc::StatusCode::UNKNOWN,
                  "uschedd answered " + method + " with HTTP status " +
                      (http_status_.empty() ? "(none)" : http_status_) + " and no grpc-status");
  }
  int code = -1;
  try {
    code = std::stoi(grpc_status_);
  } catch (...) {
  }
  if (code < 0 || code > 16)
    return failed(grpc::StatusCode::INTERNAL, "uschedd answered grpc-status '" + grpc_status_ + "'");
  if (code != 0) return failed(static_cast<grpc::StatusCode>(code), percent_decode(grpc_message_));
  if (too_big_) {
    return failed(grpc::StatusCode::RESOURCE_EXHAUSTED,
                  "the answer to " + method + " is larger than " + std::to_string(kMaxAnswer) + " bytes");
  }
  if (answer_.size() < 5) return failed(grpc::StatusCode::INTERNAL, "uschedd sent no message for " + method);
  if (answer_[0] != 0) return failed(grpc::StatusCode::INTERNAL, "uschedd sent a compressed message");
  const auto b = [&](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(answer_[i])); };
  const uint32_t len = b(1) << 24 | b(2) << 16 | b(3) << 8 | b(4);
  if (len != answer_.size() - 5 || !resp->ParseFromArray(answer_.data() + 5, static_cast<int>(len)))
    return failed(grpc::StatusCode::INTERNAL, "cannot parse uschedd's answer to " + method);
  return grpc::Status::OK;
}

grpc::Status Direct::exchange(Clock::time_point deadline, const std::string& method,
                              std::chrono::milliseconds timeout) {
  char buf[16384];
  while (!closed_) {
    if (int rv = nghttp2_session_send(session_); rv != 0) {
      const int e = errno;
      close();
      return failed(grpc::StatusCode::UNAVAILABLE,
                    "the connection to uschedd failed during " + method + " (" +
                        (rv == NGHTTP2_ERR_CALLBACK_FAILURE ? std::strerror(e) : nghttp2_strerror(rv)) + ")");
    }
    if (closed_) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      close();  // the stream is abandoned: a connection of its own next time
      return failed(grpc::StatusCode::DEADLINE_EXCEEDED,
                    "uschedd did not answer " + method + " within " + std::to_string(timeout.count()) + " ms");
    }
    pollfd p{fd_, static_cast<short>(POLLIN | (nghttp2_session_want_write(session_) ? POLLOUT : 0)), 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    if (r < 0 && errno != EINTR) {
      const int e = errno;
      close();
      return failed(grpc::StatusCode::UNAVAILABLE, std::string("poll: ") + std::strerror(e));
    }
    if (r <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
    const ssize_t got = ::recv(fd_, buf, sizeof(buf), 0);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (got <= 0) {
      const std::string why = got == 0 ? "uschedd closed the connection"
                                       : std::string("the connection to uschedd failed (") + std::strerror(errno) + ")";
      close();
      return failed(grpc::StatusCode::UNAVAILABLE, why + " during " + method);
    }
    const ssize_t used = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(buf),
                                                  static_cast<size_t>(got));
    if (used < 0) {
      const char* why = nghttp2_strerror(static_cast<int>(used));
      close();
      return failed(grpc::StatusCode::INTERNAL, std::string("uschedd's answer to ") + method + ": " + why);
    }
  }
  return grpc::Status::OK;
}

ssize_t Direct::on_send(nghttp2_session*, const uint8_t* data, size_t len, int, void* self) {
  const ssize_t n = ::send(static_cast<Direct*>(self)->fd_, data, len, MSG_NOSIGNAL);
  if (n < 0) return errno == EAGAIN || errno == EINTR ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE;
  return n;
}

ssize_t Direct::on_body(nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                        nghttp2_data_source*, void* self) {
  Direct* d = static_cast<Direct*>(self);
  const size_t n = std::min(len, d->body_.size() - d->body_sent_);
  std::memcpy(buf, d->body_.data() + d->body_sent_, n);
  d->body_sent_ += n;
  if (d->body_sent_ == d->body_.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

int Direct::on_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t name_len,
                      const uint8_t* value, size_t value_len, uint8_t, void* self) {
  Direct* d = static_cast<Direct*>(self);
  if (f->hd.type != NGHTTP2_HEADERS || f->hd.stream_id != d->stream_) return 0;
  const std::string_view k(reinterpret_cast<const char*>(name), name_len);
  const std::string v(reinterpret_cast<const char*>(value), value_len);
  if (k == ":status") d->http_status_ = v;
  else if (k == "grpc-status") d->grpc_status_ = v;
  else if (k == "grpc-message") d->grpc_message_ = v;
  return 0;
}

int Direct::on_data(nghttp2_session*, uint8_t, int32_t stream, const uint8_t* data, size_t len, void* self) {
  Direct* d = static_cast<Direct*>(self);
  if (stream != d->stream_ || d->too_big_) return 0;
  if (d->answer_.size() + len > kMaxAnswer + 5) {
    d->too_big_ = true;
    d->answer_.clear();
    return 0;
  }
  d->answer_.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int Direct::on_close(nghttp2_session*, int32_t stream, uint32_t error, void* self) {
  Direct* d = static_cast<Direct*>(self);
  if (stream != d->stream_) return 0;
  d->closed_ = true;
  d->reset_ = error;
  return 0;
}

}  // namespace

Result<std::unique_ptr<UnaryCaller>> direct_caller(const std::string& socket, std::chrono::milliseconds timeout) {
  if (socket.empty()) return Status(Code::kUnavailable, detail::unreachable(socket, "empty socket path"));
  auto d = std::make_unique<Direct>(socket);
  if (std::string why = d->open(timeout); !why.empty())
    return Status(Code::kUnavailable, detail::unreachable(socket, why));
  return std::unique_ptr<UnaryCaller>(std::move(d));
}

}  // namespace usched::cli
