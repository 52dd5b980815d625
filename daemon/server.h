//! The gRPC face of the engine. Connections are accepted by our own
//! acceptor on the unix socket so that the caller's uid/gid/pid can be read
//! with SO_PEERCRED before the connection is handed to gRPC
//! (AddInsecureChannelFromFd). gRPC names such a peer "fd:N", which is how a
//! handler finds the credentials of its connection.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "asio.h"
#include "engine.h"
#include "usched/v1/usched.grpc.pb.h"

namespace usched::daemon {

// Turns a usched Status into a grpc::Status: the one place that does it.
grpc::Status to_grpc(const Status& s);

// Limits per non-root uid (0: no limit); going past one is
// RESOURCE_EXHAUSTED naming the flag. Root is never limited, so that root
// can always repair things.
struct ServiceLimits {
  int max_connections_per_uid = 64;
  int max_watchers_per_uid = 16;
};

class Service final : public v1::Usched::Service {
 public:
  Service(asio::io_context& io, Engine& engine, ServiceLimits limits = {})
      : io_(io), engine_(engine), limits_(limits) {}
  // Every handler has returned by now (the server was shut down), the
  // last Watch after releasing its count under peers_mu_. That order is
  // gRPC's, kept with a mutex ThreadSanitizer cannot see (Debian's abseil
  // is not built for it); taking the lock makes it one TSan sees too.
  ~Service() { std::lock_guard<std::mutex> l(peers_mu_); }

  // Records SO_PEERCRED of a connection about to be handed to gRPC, by
  // fd; past --max-connections-per-uid its RPCs are refused (see there).
  void remember_peer(int fd, const Caller& c);
  // Refuses new RPCs, and ends the Watch streams: one whose reader stopped
  // reading is blocked in Write, and its connection, full of what it did
  // not read, would hold up the server's Shutdown and uschedd's exit. Each
  // is cancelled and its connection shut down (gRPC then closes it).
  void shutting_down();

  grpc::Status CreateScheduler(grpc::ServerContext* ctx, const v1::CreateSchedulerRequest* req,
                               v1::CreateSchedulerResponse* resp) override;
  grpc::Status UpdateScheduler(grpc::ServerContext* ctx, const v1::UpdateSchedulerRequest* req,
                               v1::UpdateSchedulerResponse* resp) override;
  grpc::Status DestroyScheduler(grpc::ServerContext* ctx, const v1::DestroySchedulerRequest* req,
                                v1::DestroySchedulerResponse* resp) override;
  grpc::Status GetScheduler(grpc::ServerContext* ctx, const v1::GetSchedulerRequest* req,
                            v1::GetSchedulerResponse* resp) override;
  grpc::Status ListSchedulers(grpc::ServerContext* ctx, const v1::ListSchedulersRequest* req,
                              v1::ListSchedulersResponse* resp) override;
  grpc::Status Bind(grpc::ServerContext* ctx, const v1::BindRequest* req,
                    v1::BindResponse* resp) override;
  grpc::Status Unbind(grpc::ServerContext* ctx, const v1::UnbindRequest* req,
                      v1::UnbindResponse* resp) override;
  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                     grpc::ServerWriter<v1::Event>* writer) override;
  grpc::Status Chown(grpc::ServerContext* ctx, const v1::ChownRequest* req,
                     v1::ChownResponse* resp) override;
  grpc::Status Apply(grpc::ServerContext* ctx, const v1::ApplyRequest* req,
                     v1::ApplyResponse* resp) override;
  grpc::Status GetStats(grpc::ServerContext* ctx, const v1::GetStatsRequest* req,
                        v1::GetStatsResponse* resp) override;
  grpc::Status CreateGang(grpc::ServerContext* ctx, const v1::CreateGangRequest* req,
                          v1::CreateGangResponse* resp) override;
  grpc::Status DestroyGang(grpc::ServerContext* ctx, const v1::DestroyGangRequest* req,
                           v1::DestroyGangResponse* resp) override;
  grpc::Status AddGangMember(grpc::ServerContext* ctx, const v1::AddGangMemberRequest* req,
                             v1::AddGangMemberResponse* resp) override;
  grpc::Status RemoveGangMember(grpc::ServerContext* ctx, const v1::RemoveGangMemberRequest* req,
                                v1::RemoveGangMemberResponse* resp) override;
  grpc::Status ListGangs(grpc::ServerContext* ctx, const v1::ListGangsRequest* req,
                         v1::ListGangsResponse* resp) override;

 private:
  Caller caller(grpc::ServerContext* ctx);
  // Why the connection's RPCs are refused ("" when they are not).
  std::string refused(grpc::ServerContext* ctx);
  // Runs fn on the engine's strand and waits for its answer (unless the
  // connection is refused or the daemon stopping).
  template <class Fn>
  grpc::Status on_strand(grpc::ServerContext* ctx, Fn&& fn);

  // Connections of one uid kept open past the limit, their RPCs refused
  // with the reason; a newer one shuts the oldest down.
  static constexpr size_t kRefusedConnections = 8;
  // Events queued for a Watch stream whose reader is slow; more are lost.
  static constexpr size_t kMaxQueued = 10000;

  struct Peer {
    Caller caller;
    ino_t ino = 0;        // the socket's inode, to tell a reused fd
    uint64_t seq = 0;     // order of acceptance
    std::string refused;  // why its RPCs are refused, "" when served
  };
  uint64_t next_seq_ = 0;  // (peers_mu_)
  asio::io_context& io_;
  Engine& engine_;
  const ServiceLimits limits_;
  std::mutex peers_mu_;
  std::map<int, Peer> peers_;          // (peers_mu_)
  std::map<uid_t, int> watchers_;      // open Watch streams per uid (peers_mu_)
  // The open Watch calls and the fd of each one's connection (peers_mu_).
  std::map<grpc::ServerContext*, int> watches_;
  std::atomic<bool> stopping_{false};
};

// Listens on a unix socket and hands every accepted connection to gRPC.
class Acceptor {
 public:
  Acceptor(asio::io_context& io, Service& service) : io_(io), service_(service), listen_(io), retry_(io) {}
  ~Acceptor();
  // Refuses to take over a socket another uschedd still answers on.
  Status listen(const std::string& path);
  void start(grpc::Server* server);
  void close();

 private:
  void wait();
  asio::io_context& io_;
  Service& service_;
  asio::posix::stream_descriptor listen_;
  asio::steady_timer retry_;  // accept again after running out of fds
  grpc::Server* server_ = nullptr;
  std::string path_;
};

}  // namespace usched::daemon
