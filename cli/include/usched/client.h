//! The usched client library: a thin C++ wrapper over the gRPC API of uschedd
//! (proto/usched/v1/usched.proto). Errors come back as usched::Status with
//! the daemon's message kept verbatim.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "usched/place.h"
#include "usched/result.h"
#include "usched/v1/usched.grpc.pb.h"
#include "usched/v1/usched.pb.h"

namespace grpc {
class Channel;
class ClientContext;
class Status;
}  // namespace grpc

namespace usched {

using place::kDefaultSocket;  // usched/place.h

// $USCHED_SOCKET if set and non-empty, else "/run/usched/usched.sock".
std::string default_socket();

// The one place where a gRPC status becomes a usched::Status.
Status from_grpc(const grpc::Status& s);

// Makes a Client's unary calls in place of its gRPC channel. method is the
// full path, "/usched.v1.Usched/ListSchedulers"; the answer is gRPC's, and
// the Client turns it into a usched::Status as any other. The usched command
// has one that speaks HTTP/2 on a connection of its own, without gRPC's
// threads (cli/direct.cc).
class UnaryCaller {
 public:
  virtual ~UnaryCaller() = default;
  virtual grpc::Status call(const std::string& method, const google::protobuf::Message& req,
                            google::protobuf::Message* resp, std::chrono::milliseconds timeout) = 0;
};

class Client {
 public:
  // Connects to "unix:"+socket and waits up to `timeout` for the channel to
  // be ready. Error kUnavailable "cannot reach uschedd at PATH: ...".
  static Result<std::unique_ptr<Client>> connect(
      const std::string& socket = default_socket(),
      std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // A client whose unary calls go through caller; a streaming call (watch)
  // opens the gRPC channel when first made. One call at a time.
  static std::unique_ptr<Client> with_caller(const std::string& socket, std::unique_ptr<UnaryCaller> caller);

  Result<v1::Scheduler> create(const v1::SchedulerSpec& spec);
  Result<v1::Scheduler> update(const v1::SchedulerSpec& spec, const std::vector<std::string>& mask);
  Result<v1::DestroySchedulerResponse> destroy(const std::string& name, bool force);
  Result<v1::Scheduler> get(const std::string& name);
  Result<v1::ListSchedulersResponse> list();
  // Converges the daemon's tree to a config (or, dry_run, returns the plan).
  Result<v1::ApplyResponse> apply(const v1::ApplyRequest& req);
  // CPU time and members per scheduler.
  Result<v1::GetStatsResponse> stats();
  // vcpu < 0: the field is left unset (the daemon chooses).
  Result<v1::BindResponse> bind(const std::string& name, int pid, int tid = 0, int vcpu = -1);
  // Returns the scheduler the member left.
  Result<std::string> unbind(int pid, int tid = 0);
  // Hands `name` to uid; gid < 0 keeps the group.
  Result<v1::Scheduler> chown(const std::string& name, uint32_t uid, int64_t gid = -1);
  // Gangs (cli/lib/gang.cc). scheduler + gang name, as in "SCHED/GANG".
  Result<v1::Gang> create_gang(const v1::GangSpec& spec);
  Status destroy_gang(const std::string& scheduler, const std::string& gang);
  // tid 0: the whole process (its threads now and later).
  Result<v1::Gang> add_gang_member(const std::string& scheduler, const std::string& gang, int pid, int tid = 0);
  // The threads of pid whose name (comm) matches the fnmatch glob, now and
  // as they appear: a VM monitor's vCPU threads ("CPU */KVM"). The other
  // threads stay bound to the scheduler, never frozen.
  Result<v1::Gang> add_gang_threads(const std::string& scheduler, const std::string& gang, int pid,
                                    const std::string& glob);
  Status remove_gang_member(const std::string& scheduler, const std::string& gang, int pid, int tid = 0);
  Result<v1::ListGangsResponse> list_gangs(const std::string& scheduler = "");
  // Calls fn for each event until fn returns false or the stream ends.
  Status watch(const std::function<bool(const v1::Event&)>& fn);
  // Deadline for every unary call (default 10 s).
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  const std::string& socket() const { return socket_; }

 private:
  Client(std::string socket, std::shared_ptr<grpc::Channel> ch);
  // One unary call: through caller_ if there is one, else via_stub on the
  // channel. method is the name in the service ("ListSchedulers").
  template <class Req, class Resp>
  Status unary(const char* method, const Req& req, Resp* resp,
               grpc::Status (v1::Usched::Stub::*via_stub)(grpc::ClientContext*, const Req&, Resp*));
  std::string socket_;
  std::shared_ptr<grpc::Channel> channel_;  // null until watch() with a caller
  std::unique_ptr<v1::Usched::Stub> stub_;
  std::unique_ptr<UnaryCaller> caller_;
  std::chrono::milliseconds timeout_ = std::chrono::seconds(10);
};

// pid = getpid(), through c's daemon's placement socket (place_self).
Result<v1::BindResponse> bind_self(Client& c, const std::string& name, int vcpu = -1);
// pid = getpid(), tid = gettid(), the same way.
Result<v1::BindResponse> bind_thread(Client& c, const std::string& name, int vcpu = -1);

// Splits "SCHED/GANG" at its last '/': {"batch/jobA", "g"}. INVALID_ARGUMENT
// when there is no '/'.
Result<std::pair<std::string, std::string>> split_gang(const std::string& path);
// Binds the calling thread (gettid) into gang "SCHED/GANG": what a VM
// monitor calls once per vCPU thread.
Result<v1::Gang> join_gang(Client& c, const std::string& gang);

struct RforkOptions {
  int vcpu = -1;
};

// Binds the calling process (tid 0) or its thread tid to name through
// uschedd's placement socket, socket + ".place" (usched/place.h): one
// connection and one small request, no gRPC channel. `usched run` uses it.
// Errors as Client::bind's.
Result<v1::BindResponse> place_self(const std::string& socket, const std::string& name, int vcpu = -1, int tid = 0,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Connects to the placement socket of c's daemon, then fork()s: the parent
// asks for its child to be placed, and the daemon's one answer reaches both
// (the child makes system calls only, never gRPC, whose threads did not
// come along). The child returns 0 only once placed; the parent returns
// the child's pid once the child is placed. If the placement fails the
// child _exit(127)s and the parent reaps it and returns the error; if the
// daemon cannot be reached, nothing is forked. c.timeout() bounds the wait.
Result<int> rfork(Client& c, const std::string& name, const RforkOptions& o = {});
// The same without a Client: the daemon's gRPC socket path (its placement
// socket is socket + ".place") and how long to wait for its answer.
Result<int> rfork(const std::string& socket, const std::string& name, const RforkOptions& o,
                  std::chrono::milliseconds timeout);

}  // namespace usched
