//! The gRPC face of the engine. Connections are accepted by our own
//! acceptor on the unix socket so that the caller's uid/gid/pid can be read
//! with SO_PEERCRED before the connection is handed to gRPC
//! (AddInsecureChannelFromFd). gRPC names such a peer "fd:N", which is how a
//! handler finds the credentials of its connection.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
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
// An error message as it goes back to a client: cut to 1 KiB (messages
// quote what the caller sent, and a huge name must not make the answer too
// large for the client's limits).
std::string cut_message(const std::string& m);

// Limits per non-root uid (0: no limit); going past one is
// RESOURCE_EXHAUSTED naming the flag. Root is never limited, so that root
// can always repair things.
struct ServiceLimits {
  int max_connections_per_uid = 64;
  int max_watchers_per_uid = 16;
};

// Every unary RPC uses gRPC's callback API: the handler posts the work to
// the engine's strand and returns; the strand runs it and finishes the call
// (ServerUnaryReactor::Finish may be called from any thread), so no gRPC
// thread waits on the strand. A Bind still answers only once its placement
// is applied: Finish follows the engine's work. Watch, a stream, stays
// synchronous.
using UnaryCallbackService =
    v1::Usched::WithCallbackMethod_CreateScheduler<
    v1::Usched::WithCallbackMethod_UpdateScheduler<
    v1::Usched::WithCallbackMethod_DestroyScheduler<
    v1::Usched::WithCallbackMethod_GetScheduler<
    v1::Usched::WithCallbackMethod_ListSchedulers<
    v1::Usched::WithCallbackMethod_Bind<
    v1::Usched::WithCallbackMethod_Unbind<
    v1::Usched::WithCallbackMethod_Chown<
    v1::Usched::WithCallbackMethod_Apply<
    v1::Usched::WithCallbackMethod_GetStats<
    v1::Usched::WithCallbackMethod_CreateGang<
    v1::Usched::WithCallbackMethod_DestroyGang<
    v1::Usched::WithCallbackMethod_AddGangMember<
    v1::Usched::WithCallbackMethod_RemoveGangMember<
    v1::Usched::WithCallbackMethod_ListGangs<
    v1::Usched::Service>>>>>>>>>>>>>>>;

class Service final : public UnaryCallbackService {
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

  grpc::ServerUnaryReactor* CreateScheduler(grpc::CallbackServerContext* ctx, const v1::CreateSchedulerRequest* req,
                                            v1::CreateSchedulerResponse* resp) override;
  grpc::ServerUnaryReactor* UpdateScheduler(grpc::CallbackServerContext* ctx, const v1::UpdateSchedulerRequest* req,
                                            v1::UpdateSchedulerResponse* resp) override;
  grpc::ServerUnaryReactor* DestroyScheduler(grpc::CallbackServerContext* ctx, const v1::DestroySchedulerRequest* req,
                                             v1::DestroySchedulerResponse* resp) override;
  grpc::ServerUnaryReactor* GetScheduler(grpc::CallbackServerContext* ctx, const v1::GetSchedulerRequest* req,
                                         v1::GetSchedulerResponse* resp) override;
  grpc::ServerUnaryReactor* ListSchedulers(grpc::CallbackServerContext* ctx, const v1::ListSchedulersRequest* req,
                                           v1::ListSchedulersResponse* resp) override;
  grpc::ServerUnaryReactor* Bind(grpc::CallbackServerContext* ctx, const v1::BindRequest* req,
                                 v1::BindResponse* resp) override;
  grpc::ServerUnaryReactor* Unbind(grpc::CallbackServerContext* ctx, const v1::UnbindRequest* req,
                                   v1::UnbindResponse* resp) override;
  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                     grpc::ServerWriter<v1::Event>* writer) override;
  grpc::ServerUnaryReactor* Chown(grpc::CallbackServerContext* ctx, const v1::ChownRequest* req,
                                  v1::ChownResponse* resp) override;
  grpc::ServerUnaryReactor* Apply(grpc::CallbackServerContext* ctx, const v1::ApplyRequest* req,
                                  v1::ApplyResponse* resp) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* ctx, const v1::GetStatsRequest* req,
                                     v1::GetStatsResponse* resp) override;
  grpc::ServerUnaryReactor* CreateGang(grpc::CallbackServerContext* ctx, const v1::CreateGangRequest* req,
                                       v1::CreateGangResponse* resp) override;
  grpc::ServerUnaryReactor* DestroyGang(grpc::CallbackServerContext* ctx, const v1::DestroyGangRequest* req,
                                        v1::DestroyGangResponse* resp) override;
  grpc::ServerUnaryReactor* AddGangMember(grpc::CallbackServerContext* ctx, const v1::AddGangMemberRequest* req,
                                          v1::AddGangMemberResponse* resp) override;
  grpc::ServerUnaryReactor* RemoveGangMember(grpc::CallbackServerContext* ctx, const v1::RemoveGangMemberRequest* req,
                                             v1::RemoveGangMemberResponse* resp) override;
  grpc::ServerUnaryReactor* ListGangs(grpc::CallbackServerContext* ctx, const v1::ListGangsRequest* req,
                                      v1::ListGangsResponse* resp) override;

 private:
  Caller caller(grpc::ServerContextBase* ctx);
  // Why the connection's RPCs are refused ("" when they are not).
  std::string refused(grpc::ServerContextBase* ctx);
  // Why an RPC is not served at all (uschedd stopping, the connection
  // refused); OK when it is served.
  grpc::Status admit(grpc::ServerContextBase* ctx);
  // Posts fn (which fills the response and returns a usched Status) to the
  // engine's strand, which then finishes the call with that answer; a call
  // admit() refuses is finished at once, without fn. fn runs after the
  // handler has returned: it captures by value, never the handler's locals.
  template <class Fn>
  grpc::ServerUnaryReactor* finish_on_strand(grpc::CallbackServerContext* ctx, Fn&& fn);
  // The same, but when fn succeeds the answer waits for when(finish) to
  // call finish() (on the strand): a Bind answers once the member runs
  // where the tree says (Engine::when_placed).
  template <class Fn, class When>
  grpc::ServerUnaryReactor* finish_on_strand(grpc::CallbackServerContext* ctx, Fn&& fn, When&& when);
  // Runs fn on the engine's strand and waits for its answer (Watch, which
  // holds its gRPC thread for the stream anyway).
  template <class Fn>
  grpc::Status wait_on_strand(grpc::ServerContext* ctx, Fn&& fn);

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
  // RPCs posted to the strand and not yet run. While more wait, the strand
  // hands a finished call's Finish (serializing and sending the answer) to
  // finisher_ and goes on with the next; alone, it finishes the call itself.
  std::atomic<int> queued_{0};
  asio::thread_pool finisher_{1};
};

// Binds and listens on a unix socket anyone may connect to (what a caller
// may change is decided per request from SO_PEERCRED); a socket file left
// by a daemon that died is replaced, one that still answers is an error.
// Returns the listening fd (non-blocking, close-on-exec).
Result<int> listen_unix(const std::string& path);

// Accepts the connections on listen as they come, for as long as it is
// open, and hands each to take with its SO_PEERCRED; when out of fds, the
// connections wait in the backlog and retry tries again after 100 ms.
void accept_loop(asio::posix::stream_descriptor& listen, asio::steady_timer& retry,
                 std::function<void(int fd, const Caller& c)> take);

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
  asio::io_context& io_;
  Service& service_;
  asio::posix::stream_descriptor listen_;
  asio::steady_timer retry_;  // accept again after running out of fds
  grpc::Server* server_ = nullptr;
  std::string path_;
};

}  // namespace usched::daemon
