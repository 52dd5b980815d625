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

class Service final : public v1::Usched::Service {
 public:
  Service(asio::io_context& io, Engine& engine) : io_(io), engine_(engine) {}

  // SO_PEERCRED of each connection handed to gRPC, by fd.
  void remember_peer(int fd, const Caller& c);
  void shutting_down() { stopping_ = true; }

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
  // Runs fn on the engine's strand and waits for its answer.
  template <class Fn>
  grpc::Status on_strand(Fn&& fn);

  asio::io_context& io_;
  Engine& engine_;
  std::mutex peers_mu_;
  std::map<int, Caller> peers_;
  std::atomic<bool> stopping_{false};
};

// Listens on a unix socket and hands every accepted connection to gRPC.
class Acceptor {
 public:
  Acceptor(asio::io_context& io, Service& service) : io_(io), service_(service), listen_(io) {}
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
  grpc::Server* server_ = nullptr;
  std::string path_;
};

}  // namespace usched::daemon
