#include "server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <vector>

#include <grpcpp/server_posix.h>
#include <spdlog/spdlog.h>

namespace usched::daemon {

grpc::Status to_grpc(const Status& s) {
  grpc::StatusCode c = grpc::StatusCode::INTERNAL;
  switch (s.code()) {
    case Code::kOk: return grpc::Status::OK;
    case Code::kInvalidArgument: c = grpc::StatusCode::INVALID_ARGUMENT; break;
    case Code::kNotFound: c = grpc::StatusCode::NOT_FOUND; break;
    case Code::kAlreadyExists: c = grpc::StatusCode::ALREADY_EXISTS; break;
    case Code::kFailedPrecondition: c = grpc::StatusCode::FAILED_PRECONDITION; break;
    case Code::kPermissionDenied: c = grpc::StatusCode::PERMISSION_DENIED; break;
    case Code::kResourceExhausted: c = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
    case Code::kUnavailable: c = grpc::StatusCode::UNAVAILABLE; break;
    case Code::kInternal: c = grpc::StatusCode::INTERNAL; break;
  }
  return grpc::Status(c, cut_message(s.message()));  // gRPC's metadata limit is 8 KiB
}

std::string cut_message(const std::string& m) {
  constexpr size_t kMaxMessage = 1024;
  return m.size() > kMaxMessage ? m.substr(0, kMaxMessage) + "... (message cut)" : m;
}

void Service::shutting_down() {
  stopping_ = true;
  std::lock_guard<std::mutex> l(peers_mu_);
  for (auto& [ctx, fd] : watches_) {
    ctx->TryCancel();
    // Only while the fd is still that connection (same socket inode).
    struct stat st {};
    if (auto it = peers_.find(fd); it != peers_.end() && ::fstat(fd, &st) == 0 && st.st_ino == it->second.ino) {
      ::shutdown(fd, SHUT_RDWR);
    }
  }
}

void Service::remember_peer(int fd, const Caller& c) {
  struct stat st {};
  (void)::fstat(fd, &st);
  std::lock_guard<std::mutex> l(peers_mu_);
  // gRPC closes a connection's fd without telling us: a peer whose fd is
  // closed, or is another socket now (socket inodes are unique while they
  // live), is gone.
  int served = 0;
  std::vector<std::map<int, Peer>::iterator> refused;  // this uid's, oldest first
  for (auto it = peers_.begin(); it != peers_.end();) {
    struct stat now {};
    if (it->first == fd || ::fstat(it->first, &now) != 0 || now.st_ino != it->second.ino) {
      it = peers_.erase(it);
      continue;
    }
    if (it->second.caller.uid == c.uid) {
      if (it->second.refused.empty()) {
        ++served;
      } else {
        refused.push_back(it);
      }
    }
    ++it;
  }
  Peer p{c, st.st_ino, next_seq_++, ""};
  const int limit = limits_.max_connections_per_uid;
  if (c.uid != 0 && limit > 0 && served >= limit) {
    // Past the limit a connection is still served, but each of its RPCs
    // fails with the reason. Only the newest few such connections are kept:
    // the oldest is shut down (gRPC then closes it; its fd is gRPC's to
    // close), so that a client that does not stop costs a bounded number
    // of fds, and its newest connection still hears why.
    p.refused = "uid " + std::to_string(c.uid) + " has " + std::to_string(served) +
                " connections to uschedd open; the limit is --max-connections-per-uid " + std::to_string(limit);
    std::sort(refused.begin(), refused.end(), [](auto a, auto b) { return a->second.seq < b->second.seq; });
    for (size_t i = 0; i + kRefusedConnections <= refused.size(); ++i) {
      ::shutdown(refused[i]->first, SHUT_RDWR);
      peers_.erase(refused[i]);
    }
  }
  peers_[fd] = std::move(p);
}

Caller Service::caller(grpc::ServerContextBase* ctx) {
  const std::string peer = ctx->peer();
  Caller c;
  c.uid = static_cast<uid_t>(-1);  // unknown peers may only read
  c.gid = static_cast<gid_t>(-1);
  if (peer.rfind("fd:", 0) == 0) {
    const int fd = std::atoi(peer.c_str() + 3);
    std::lock_guard<std::mutex> l(peers_mu_);
    if (auto it = peers_.find(fd); it != peers_.end()) c = it->second.caller;
  }
  return c;
}

std::string Service::refused(grpc::ServerContextBase* ctx) {
  const std::string peer = ctx->peer();
  if (peer.rfind("fd:", 0) != 0) return "";
  const int fd = std::atoi(peer.c_str() + 3);
  std::lock_guard<std::mutex> l(peers_mu_);
  auto it = peers_.find(fd);
  return it == peers_.end() ? "" : it->second.refused;
}

grpc::Status Service::admit(grpc::ServerContextBase* ctx) {
  if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "uschedd is stopping");
  if (std::string why = refused(ctx); !why.empty()) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, why);
  }
  return grpc::Status::OK;
}

// Who touches what. A gRPC callback thread deserializes *req, runs the
// handler (the peer's credentials under peers_mu_, admit, the post) and
// returns. The strand (the thread running io_) runs fn, which reads *req,
// writes *resp and uses the engine (only ever used on the strand). Then
// Finish, which serializes *resp before it hands the call back to gRPC, is
// called by the strand itself when no other RPC waits for it, else by the
// finisher_ thread, so that the strand goes on with the next RPC while the
// answer is sent. Each hand-off is an Asio post (a mutex-guarded queue):
// handler -> strand -> finisher. gRPC frees req and resp only after the call
// is done, i.e. after Finish. queued_ is an atomic counter, nothing else is
// shared. A refused call is finished by the handler and never posted. At
// shutdown, server->Shutdown() waits until every callback call is finished,
// and main() stops io_ only after it returns (the finisher_ thread lives as
// long as the Service), so every posted fn runs and its call is finished.
// ThreadSanitizer cannot see the order between Finish and gRPC's thread
// that completes the call (it passes through libgrpc): the TSan tier
// suppresses gRPC's call frames alone (tests/sanitize/tsan.supp), so a race
// in the handler or in fn is still reported.
template <class Fn>
grpc::ServerUnaryReactor* Service::finish_on_strand(grpc::CallbackServerContext* ctx, Fn&& fn) {
  return finish_on_strand(ctx, std::forward<Fn>(fn), [](auto&& finish) { finish(); });
}

template <class Fn, class When>
grpc::ServerUnaryReactor* Service::finish_on_strand(grpc::CallbackServerContext* ctx, Fn&& fn, When&& when) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (grpc::Status no = admit(ctx); !no.ok()) {
    reactor->Finish(std::move(no));
    return reactor;
  }
  ++queued_;
  asio::post(io_, [this, reactor, fn = std::forward<Fn>(fn), when = std::forward<When>(when)]() mutable {
    grpc::Status st = to_grpc(fn());
    --queued_;
    const bool ok = st.ok();
    auto finish = [this, reactor, st = std::move(st)]() mutable {
      if (queued_ > 0) {
        asio::post(finisher_, [reactor, st = std::move(st)]() mutable { reactor->Finish(std::move(st)); });
      } else {
        reactor->Finish(std::move(st));
      }
    };
    if (ok) {
      when(std::move(finish));
    } else {
      finish();
    }
  });
  return reactor;
}

template <class Fn>
grpc::Status Service::wait_on_strand(grpc::ServerContext* ctx, Fn&& fn) {
  if (grpc::Status no = admit(ctx); !no.ok()) return no;
  auto done = std::make_shared<std::promise<Status>>();
  auto fut = done->get_future();
  asio::post(io_, [done, fn = std::forward<Fn>(fn)]() mutable { done->set_value(fn()); });
  // The strand stops only at shutdown; do not wait on it forever then.
  while (fut.wait_for(std::chrono::milliseconds(200)) != std::future_status::ready) {
    if (stopping_ && io_.stopped()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "uschedd is stopping");
    }
  }
  return to_grpc(fut.get());
}

grpc::ServerUnaryReactor* Service::CreateScheduler(grpc::CallbackServerContext* ctx,
                                                   const v1::CreateSchedulerRequest* req,
                                                   v1::CreateSchedulerResponse* resp) {
  const Caller c = caller(ctx);
  return finish_on_strand(ctx, [=, this]() -> Status {
    auto r = engine_.create(c, req->spec());
    if (!r) return r.status();
    *resp->mutable_scheduler() = std::move(*r);
    return Status::ok();
  });
}

grpc::ServerUnaryReactor* Service::UpdateScheduler(grpc::CallbackServerContext* ctx,
                                                   const v1::UpdateSchedulerRequest* req,
                                                   v1::UpdateSchedulerResponse* resp) {
  const Caller c = caller(ctx);
  return finish_on_strand(ctx, [=, this]() -> Status {
    std::vector<std::string> mask(req->update_mask().begin(), req->update_mask().end());
    auto r = engine_.update(c, req->spec(), mask);
    if (!r) return r.status();
    *resp->mutable_scheduler() = std::move(*r);
    return Status::ok();
  });
}

grpc::ServerUnaryReactor* Service::DestroyScheduler(grpc::CallbackServerContext* ctx,
                                                    const v1::DestroySchedulerRequest* req,
                                                    v1::DestroySchedulerResponse* resp) {
  const Caller c = caller(ctx);
  return finish_on_strand(ctx, [=, this]() -> Status {
    auto r = engine_.destroy(c, req->name(), req->force());
    if (!r) return r.status();
    *resp = std::move(*r);
    return Status::ok();
  });
}

grpc::ServerUnaryReactor* Service::GetScheduler(grpc::CallbackServerContext* ctx, const v1::GetSchedulerRequest* req,
                                                v1::GetSchedulerResponse* resp) {
  return finish_on_strand(ctx, [=, this]() -> Status {
    auto r = engine_.get(req->name());
    if (!r) return r.status();
    *resp->mutable_scheduler() = std::move(*r);
    return Status::ok();
  });
}

grpc::ServerUnaryReactor* Service::ListSchedulers(grpc::CallbackServerContext* ctx, const v1::ListSchedulersRequest*,
                                                  v1::ListSchedulersResponse* resp) {
  return finish_on_strand(ctx, [=, this]() -> Status {
    *resp = engine_.list();
    return Status::ok();
  });
}

grpc::ServerUnaryReactor* Service::Bind(grpc::CallbackServerContext* ctx, const v1::BindRequest* req,
                                        v1::BindResponse* resp) {
  const Caller c = caller(ctx);
  return finish_on_strand(
      ctx,
      [=, this]() -> Status {
        auto r = engine_.bind(c, *req);
        if (!r) return r.status();
        *resp = std::move(*r);
        return Status::ok();
      },
      // A member of a locked scheduler (or a gang) whose cgroup move is
      // still to come would run on the group's CPUs until placed again
      // after it: the answer waits for that, as the placement socket's does.
      [=, this](std::function<void()> finish) {
        engine_.when_placed(MemberKey{req->pid(), req->tid()}, std::move(finish));
      });
}

grpc::ServerUnaryReactor* Service::Unbind(grpc::CallbackServerContext* ctx, const v1::UnbindRequest* req,
                                          v1::UnbindResponse* resp) {
  const Caller c = caller(ctx);
  return finish_on_strand(ctx, [=, this]() -> Status {
    auto r = engine_.unbind(c, req->pid(), req->tid());
    if (!r) return r.status();
    *resp = std::move(*r);
    return Status::ok();
  });
}

grpc::ServerUnaryReactor* Service::Chown(grpc::CallbackServerContext* ctx, const v1::ChownRequest* req,
                                         v1::ChownResponse* resp) {
  const Caller c = caller(ctx);
  return finish_on_strand(ctx, [=, this]() -> Status {
    auto r = engine_.chown(c, req->name(), req->uid(),
                           req->has_gid() ? std::optional<uint32_t>(req->gid()) : std::nullopt);
    if (!r) return r.status();
    *resp->mutable_scheduler() = std::move(*r);
    return Status::ok();
  });
}

grpc::Status Service::Watch(grpc::ServerContext* ctx, const v1::WatchRequest*,
                            grpc::ServerWriter<v1::Event>* writer) {
  struct Queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<v1::Event> events;
  };
  // One user cannot hold more than --max-watchers-per-uid streams (each
  // holds a thread of gRPC's and up to kMaxQueued events).
  const Caller c = caller(ctx);
  {
    std::lock_guard<std::mutex> l(peers_mu_);
    const int limit = limits_.max_watchers_per_uid;
    int& n = watchers_[c.uid];
    if (c.uid != 0 && limit > 0 && n >= limit) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "uid " + std::to_string(c.uid) + " has " + std::to_string(n) +
                              " Watch streams open; the limit is --max-watchers-per-uid " + std::to_string(limit));
    }
    if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "uschedd is stopping");
    ++n;
    const std::string peer = ctx->peer();
    watches_[ctx] = peer.rfind("fd:", 0) == 0 ? std::atoi(peer.c_str() + 3) : -1;
    spdlog::debug("watch: uid {} opened a stream ({} open)", c.uid, n);
  }
  struct Release {
    Service* self;
    uid_t uid;
    grpc::ServerContext* ctx;
    ~Release() {
      std::lock_guard<std::mutex> l(self->peers_mu_);
      self->watches_.erase(ctx);
      if (--self->watchers_[uid] <= 0) self->watchers_.erase(uid);
    }
  } release{this, c.uid, ctx};
  auto q = std::make_shared<Queue>();
  int id = 0;
  grpc::Status st = wait_on_strand(ctx, [&]() -> Status {
    id = engine_.subscribe([q](const v1::Event& ev) {
      std::lock_guard<std::mutex> l(q->mu);
      if (q->events.size() < kMaxQueued) q->events.push_back(ev);  // a stalled reader loses events
      q->cv.notify_one();
    });
    return Status::ok();
  });
  if (!st.ok()) return st;
  while (!ctx->IsCancelled() && !stopping_) {
    std::unique_lock<std::mutex> l(q->mu);
    q->cv.wait_for(l, std::chrono::milliseconds(100), [&] { return !q->events.empty(); });
    while (!q->events.empty()) {
      v1::Event ev = std::move(q->events.front());
      q->events.pop_front();
      l.unlock();
      if (!writer->Write(ev)) {
        l.lock();
        goto done;
      }
      l.lock();
    }
  }
done:
  if (!io_.stopped()) asio::post(io_, [this, id] { engine_.unsubscribe(id); });
  return grpc::Status::OK;
}

// ---- gangs ----------------------------------------------------------------------

grpc::ServerUnaryReactor* Service::CreateGang(grpc::CallbackServerContext* ctx, const v1::CreateGangRequest* req,
                                              v1::CreateGangResponse* resp) {
  const Caller c = caller(ctx);
  return finish_on_strand(ctx, [=, this]() -> Status {
    auto r = engine_.create_gang(c, req->spec());
    if (!r) return r.status();
    *resp->mutable_gang() = std::move(*r);
    return Status::ok();
  });
}

grpc::ServerUnaryReactor* Service::DestroyGang(grpc::CallbackServerContext* ctx, const v1::DestroyGangRequest* req,
                                               v1::DestroyGangResponse*) {
  const Caller c = caller(ctx);
  return finish_on_strand(ctx,
                          [=, this]() -> Status { return engine_.destroy_gang(c, req->scheduler(), req->name()); });
}

grpc::ServerUnaryReactor* Service::AddGangMember(grpc::CallbackServerContext* ctx, const v1::AddGangMemberRequest* req,
                                                 v1::AddGangMemberResponse* resp) {
  const Caller c = caller(ctx);
  return finish_on_strand(ctx, [=, this]() -> Status {
    auto r = engine_.add_gang_member(c, *req);
    if (!r) return r.status();
    *resp->mutable_gang() = std::move(*r);
    return Status::ok();
  });
}

grpc::ServerUnaryReactor* Service::RemoveGangMember(grpc::CallbackServerContext* ctx,
                                                    const v1::RemoveGangMemberRequest* req,
                                                    v1::RemoveGangMemberResponse*) {
  const Caller c = caller(ctx);
  return finish_on_strand(ctx, [=, this]() -> Status { return engine_.remove_gang_member(c, *req); });
}

grpc::ServerUnaryReactor* Service::ListGangs(grpc::CallbackServerContext* ctx, const v1::ListGangsRequest* req,
                                             v1::ListGangsResponse* resp) {
  return finish_on_strand(ctx, [=, this]() -> Status {
    *resp = engine_.list_gangs(req->scheduler());
    return Status::ok();
  });
}

// ---- acceptor -----------------------------------------------------------------

Result<int> listen_unix(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return invalid("socket path " + path + " is longer than " +
                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  std::error_code ec;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);

  // A socket file left by a daemon that died is removed; one that still
  // answers belongs to a running uschedd.
  if (std::filesystem::exists(path, ec)) {
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(probe);
    if (live) return precondition("another uschedd is already listening on " + path);
    ::unlink(path.c_str());
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return internal(std::string("socket: ") + std::strerror(errno));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int e = errno;
    ::close(fd);
    return precondition("bind " + path + ": " + std::strerror(e));
  }
  // Everyone may connect (and read); what a caller may change is decided
  // per request from SO_PEERCRED.
  ::chmod(path.c_str(), 0666);
  // The backlog holds the connections not yet accepted. When it is full a
  // non-blocking connect (as gRPC's) fails at once with EAGAIN, and the
  // client waits out its reconnect backoff (1 s) before trying again: one
  // user connecting in a tight loop (every connect of theirs is queued
  // faster than we accept) would then lock root out for that long. The
  // kernel's largest (net.core.somaxconn, 4096 by default) holds more
  // connections than one process of theirs can open at its default fd limit.
  if (::listen(fd, SOMAXCONN) != 0) {
    const int e = errno;
    ::close(fd);
    return internal("listen " + path + ": " + std::strerror(e));
  }
  return fd;
}


Acceptor::~Acceptor() { close(); }

Status Acceptor::listen(const std::string& path) {
  auto fd = listen_unix(path);
  if (!fd) return fd.status();
  listen_.assign(*fd);
  path_ = path;
  return Status::ok();
}

void accept_loop(asio::posix::stream_descriptor& listen, asio::steady_timer& retry,
                 std::function<void(int fd, const Caller& c)> take) {
  listen.async_wait(asio::posix::stream_descriptor::wait_read,
                    [&listen, &retry, take = std::move(take)](const boost::system::error_code& ec) mutable {
                      if (ec) return;
                      for (;;) {
                        int fd = ::accept4(listen.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                        if (fd < 0) {
                          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                            // Out of fds: the connection stays queued and
                            // the socket readable; waiting on it again
                            // would spin. Try again shortly.
                            spdlog::warn("accept: {} (connections wait)", std::strerror(errno));
                            retry.expires_after(std::chrono::milliseconds(100));
                            retry.async_wait([&listen, &retry, take](const boost::system::error_code& e) mutable {
                              if (!e) accept_loop(listen, retry, std::move(take));
                            });
                            return;
                          }
                          break;
                        }
                        ucred cred{};
                        socklen_t len = sizeof(cred);
                        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
                          ::close(fd);
                          continue;
                        }
                        take(fd, Caller{cred.pid, cred.uid, cred.gid});
                      }
                      accept_loop(listen, retry, std::move(take));
                    });
}

void Acceptor::start(grpc::Server* server) {
  server_ = server;
  accept_loop(listen_, retry_, [this](int fd, const Caller& c) {
    service_.remember_peer(fd, c);
    // gRPC owns the fd from here and closes it.
    grpc::AddInsecureChannelFromFd(server_, fd);
  });
}

void Acceptor::close() {
  retry_.cancel();
  if (listen_.is_open()) {
    boost::system::error_code ec;
    listen_.close(ec);
    ::unlink(path_.c_str());
  }
}

grpc::ServerUnaryReactor* Service::Apply(grpc::CallbackServerContext* ctx, const v1::ApplyRequest* req,
                                         v1::ApplyResponse* resp) {
  const Caller c = caller(ctx);
  return finish_on_strand(ctx, [=, this]() -> Status {
    auto r = engine_.apply(c, *req);
    if (!r) return r.status();
    *resp = std::move(*r);
    return Status::ok();
  });
}

grpc::ServerUnaryReactor* Service::GetStats(grpc::CallbackServerContext* ctx, const v1::GetStatsRequest*,
                                            v1::GetStatsResponse* resp) {
  return finish_on_strand(ctx, [=, this]() -> Status {
    *resp = engine_.stats();
    return Status::ok();
  });
}

}  // namespace usched::daemon
