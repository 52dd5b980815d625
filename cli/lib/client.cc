#include "usched/client.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>

#include "client_unary.h"
#include "place_io.h"
#include "usched/place.h"

namespace usched {

namespace {

// A child of rfork (usched_rfork) may call the library again, but fork()
// copies every lock as it was at that instant, and gRPC's threads in the
// parent lock abseil mutexes all the time. Abseil's deadlock detection (on
// in Debian's build) takes one global spinlock around every such lock, so
// about one child in 500 inherited it held and hung for good in
// grpc_init. Off: it is a debugging aid, and without it the child meets
// only locks that are held rarely (docs/sdk.md).
const bool g_no_lock_graph = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

using Clock = std::chrono::system_clock;

using detail::unreachable;

// A cheap probe with a plain AF_UNIX connect: gives a precise reason (no such
// file, connection refused, permission denied) without waiting for gRPC's
// backoff. Returns "" when the socket accepts connections.
std::string probe(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return "socket path too long";
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::strerror(errno);
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } while (rc < 0 && errno == EINTR);
  std::string reason = rc < 0 ? std::strerror(errno) : "";
  ::close(fd);
  return reason;
}

std::shared_ptr<grpc::Channel> channel_to(const std::string& socket) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  // A channel of its own connections: a child that usched::rfork made must
  // not pick up the parent's connection from gRPC's global subchannel pool
  // (the parent closes it; the child's call then fails "Socket closed").
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

std::string default_socket() { return place::default_socket(); }

Status from_grpc(const grpc::Status& s) {
  Code c;
  switch (s.error_code()) {
    case grpc::StatusCode::OK: return Status::ok();
    case grpc::StatusCode::INVALID_ARGUMENT: c = Code::kInvalidArgument; break;
    case grpc::StatusCode::NOT_FOUND: c = Code::kNotFound; break;
    case grpc::StatusCode::ALREADY_EXISTS: c = Code::kAlreadyExists; break;
    case grpc::StatusCode::FAILED_PRECONDITION: c = Code::kFailedPrecondition; break;
    case grpc::StatusCode::PERMISSION_DENIED: c = Code::kPermissionDenied; break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: c = Code::kResourceExhausted; break;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED: c = Code::kUnavailable; break;
    default: c = Code::kInternal; break;
  }
  std::string msg = s.error_message();
  if (msg.empty()) msg = "uschedd returned gRPC status " + std::to_string(static_cast<int>(s.error_code()));
  return Status(c, std::move(msg));
}

std::unique_ptr<Client> Client::with_caller(const std::string& socket, std::unique_ptr<UnaryCaller> caller) {
  std::unique_ptr<Client> c(new Client(socket, nullptr));
  c->caller_ = std::move(caller);
  return c;
}

Client::Client(std::string socket, std::shared_ptr<grpc::Channel> ch)
    : socket_(std::move(socket)), channel_(std::move(ch)) {
  if (channel_) stub_ = v1::Usched::NewStub(channel_);
}

Result<std::unique_ptr<Client>> Client::connect(const std::string& socket,
                                                std::chrono::milliseconds timeout) {
  if (socket.empty()) return Status(Code::kUnavailable, unreachable(socket, "empty socket path"));
  if (std::string why = probe(socket); !why.empty())
    return Status(Code::kUnavailable, unreachable(socket, why));
  auto ch = channel_to(socket);
  if (!ch->WaitForConnected(Clock::now() + timeout))
    return Status(Code::kUnavailable,
                  unreachable(socket, "no answer within " + std::to_string(timeout.count()) + " ms"));
  return std::unique_ptr<Client>(new Client(socket, std::move(ch)));
}

Result<v1::Scheduler> Client::create(const v1::SchedulerSpec& spec) {
  v1::CreateSchedulerRequest req;
  *req.mutable_spec() = spec;
  v1::CreateSchedulerResponse resp;
  if (Status s = unary("CreateScheduler", req, &resp, &v1::Usched::Stub::CreateScheduler); !s) return s;
  return resp.scheduler();
}

Result<v1::Scheduler> Client::update(const v1::SchedulerSpec& spec,
                                     const std::vector<std::string>& mask) {
  v1::UpdateSchedulerRequest req;
  *req.mutable_spec() = spec;
  for (const auto& m : mask) req.add_update_mask(m);
  v1::UpdateSchedulerResponse resp;
  if (Status s = unary("UpdateScheduler", req, &resp, &v1::Usched::Stub::UpdateScheduler); !s) return s;
  return resp.scheduler();
}

Result<v1::DestroySchedulerResponse> Client::destroy(const std::string& name, bool force) {
  v1::DestroySchedulerRequest req;
  req.set_name(name);
  req.set_force(force);
  v1::DestroySchedulerResponse resp;
  if (Status s = unary("DestroyScheduler", req, &resp, &v1::Usched::Stub::DestroyScheduler); !s) return s;
  return resp;
}

Result<v1::Scheduler> Client::get(const std::string& name) {
  v1::GetSchedulerRequest req;
  req.set_name(name);
  v1::GetSchedulerResponse resp;
  if (Status s = unary("GetScheduler", req, &resp, &v1::Usched::Stub::GetScheduler); !s) return s;
  return resp.scheduler();
}

Result<v1::ListSchedulersResponse> Client::list() {
  v1::ListSchedulersRequest req;
  v1::ListSchedulersResponse resp;
  if (Status s = unary("ListSchedulers", req, &resp, &v1::Usched::Stub::ListSchedulers); !s) return s;
  return resp;
}

Result<v1::ApplyResponse> Client::apply(const v1::ApplyRequest& req) {
  v1::ApplyResponse resp;
  if (Status s = unary("Apply", req, &resp, &v1::Usched::Stub::Apply); !s) return s;
  return resp;
}

Result<v1::GetStatsResponse> Client::stats() {
  v1::GetStatsRequest req;
  v1::GetStatsResponse resp;
  if (Status s = unary("GetStats", req, &resp, &v1::Usched::Stub::GetStats); !s) return s;
  return resp;
}

Result<v1::BindResponse> Client::bind(const std::string& name, int pid, int tid, int vcpu) {
  v1::BindRequest req;
  req.set_name(name);
  req.set_pid(pid);
  req.set_tid(tid);
  if (vcpu >= 0) req.set_vcpu(vcpu);
  v1::BindResponse resp;
  if (Status s = unary("Bind", req, &resp, &v1::Usched::Stub::Bind); !s) return s;
  return resp;
}

Result<std::string> Client::unbind(int pid, int tid) {
  v1::UnbindRequest req;
  req.set_pid(pid);
  req.set_tid(tid);
  v1::UnbindResponse resp;
  if (Status s = unary("Unbind", req, &resp, &v1::Usched::Stub::Unbind); !s) return s;
  return resp.scheduler();
}

Result<v1::Scheduler> Client::chown(const std::string& name, uint32_t uid, int64_t gid) {
  v1::ChownRequest req;
  req.set_name(name);
  req.set_uid(uid);
  if (gid >= 0) req.set_gid(static_cast<uint32_t>(gid));
  v1::ChownResponse resp;
  if (Status s = unary("Chown", req, &resp, &v1::Usched::Stub::Chown); !s) return s;
  return resp.scheduler();
}

Status Client::watch(const std::function<bool(const v1::Event&)>& fn) {
  if (!stub_) {  // a client with a caller: the channel now
    channel_ = channel_to(socket_);
    stub_ = v1::Usched::NewStub(channel_);
  }
  grpc::ClientContext ctx;  // no deadline: a watch lasts as long as the caller wants
  v1::WatchRequest req;
  auto reader = stub_->Watch(&ctx, req);
  v1::Event ev;
  bool stopped = false;
  while (reader->Read(&ev)) {
    if (!fn(ev)) {
      stopped = true;
      ctx.TryCancel();
      break;
    }
  }
  if (stopped) {
    while (reader->Read(&ev)) {
    }
    (void)reader->Finish();
    return Status::ok();
  }
  return from_grpc(reader->Finish());
}

Result<v1::BindResponse> bind_self(Client& c, const std::string& name, int vcpu) {
  return place_self(c.socket(), name, vcpu, 0, c.timeout());
}

Result<v1::BindResponse> bind_thread(Client& c, const std::string& name, int vcpu) {
  return place_self(c.socket(), name, vcpu, static_cast<int>(::gettid()), c.timeout());
}

Result<int> rfork(Client& c, const std::string& name, const RforkOptions& o) {
  return rfork(c.socket(), name, o, c.timeout());
}

Result<int> rfork(const std::string& socket, const std::string& name, const RforkOptions& o,
                  std::chrono::milliseconds timeout) {
  // The parent connects and then forks, so that the child inherits the
  // connection: the parent's request names the child, and uschedd's one
  // reply wakes both at once (each reads it with MSG_PEEK). A child that
  // connected itself and passed the outcome on through a pipe put two more
  // hand-offs between the fork and the parent's return (docs/benchmarks.md,
  // issue 12, seventh stop).
  //
  // Nothing in the child touches the heap: after fork() every page that
  // the parent or the child writes costs it a page fault (copy-on-write),
  // and the pages malloc touched were most of what an rfork cost above a
  // plain fork (sixth stop). Paths, request and answer live on the stack,
  // and the answer's BindResponse is not kept.
  char path[sizeof(sockaddr_un::sun_path)];
  const size_t suffix = std::strlen(place::kSuffix);
  if (socket.size() + suffix >= sizeof path) {
    return detail::place_status(place::socket_of(socket), -ENAMETOOLONG, nullptr);
  }
  std::memcpy(path, socket.data(), socket.size());
  std::memcpy(path + socket.size(), place::kSuffix, suffix + 1);
  const int timeout_ms = detail::timeout_ms(timeout);
  char reply[place::kMaxRefusal];
  const int fd = detail::connect_unix(path, timeout_ms);
  if (fd < 0) return detail::place_status(path, fd, nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(fd);
    return Status(e == EAGAIN || e == ENOMEM ? Code::kResourceExhausted : Code::kInternal,
                  std::string("rfork: fork: ") + std::strerror(e));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until placed. The parent reads
    // the reply too, and says what was wrong.
    const ssize_t n = detail::place_peek(fd, reply, sizeof reply, timeout_ms);
    ::close(fd);
    if (n < 8 || place::get_le32(reply + 4) != 0) ::_exit(127);
    return 0;
  }
  char small[place::request_frame_max(256)];
  std::string large;  // longer than any valid name: uschedd refuses it by name
  const char* req = small;
  size_t req_len = 0;
  if (sizeof small >= place::request_frame_max(name.size())) {
    req_len = place::request_frame_to(small, name, pid, 0, o.vcpu);
  } else {
    large = place::request_frame(place::bind_request(name, pid, 0, o.vcpu));
    req = large.data();
    req_len = large.size();
  }
  const int sent = detail::place_send(fd, req, req_len);
  const ssize_t n = sent < 0 ? sent : detail::place_peek(fd, reply, sizeof reply, timeout_ms);
  ::close(fd);
  if (n >= 8 && place::get_le32(reply + 4) == 0) return static_cast<int>(pid);
  const Status s = detail::place_status(path, n, reply);
  ::kill(pid, SIGKILL);  // it exits by itself on a refusal; this is for a child that had no reply
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  return s;
}

}  // namespace usched
