// The C API (usched/usched.h) over the C++ client: one connection per call,
// errors kept per thread as a message and a gRPC status code number.
#include "usched/usched.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <string>

#include "usched/client.h"

namespace {

thread_local std::string g_last_error;
thread_local int g_last_code = USCHED_OK;

std::mutex g_socket_mu;
std::string g_socket;  // guarded by g_socket_mu; "" = usched::default_socket()

// The C codes are gRPC's numbers: usched::Code is the library's reading of
// the gRPC status (cli/lib/client.cc from_grpc), mapped back one to one.
int c_code(usched::Code c) {
  switch (c) {
    case usched::Code::kOk: return USCHED_OK;
    case usched::Code::kInvalidArgument: return USCHED_INVALID_ARGUMENT;
    case usched::Code::kNotFound: return USCHED_NOT_FOUND;
    case usched::Code::kAlreadyExists: return USCHED_ALREADY_EXISTS;
    case usched::Code::kFailedPrecondition: return USCHED_FAILED_PRECONDITION;
    case usched::Code::kPermissionDenied: return USCHED_PERMISSION_DENIED;
    case usched::Code::kResourceExhausted: return USCHED_RESOURCE_EXHAUSTED;
    case usched::Code::kUnavailable: return USCHED_UNAVAILABLE;
    case usched::Code::kInternal: return USCHED_INTERNAL;
  }
  return USCHED_INTERNAL;
}

int fail(const usched::Status& s) {
  g_last_error = s.message();
  g_last_code = c_code(s.code());
  return -1;
}

int succeed() {
  g_last_error.clear();
  g_last_code = USCHED_OK;
  return 0;
}

std::string socket_path() {
  std::lock_guard<std::mutex> l(g_socket_mu);
  return g_socket.empty() ? usched::default_socket() : g_socket;
}

usched::Result<std::unique_ptr<usched::Client>> connect() { return usched::Client::connect(socket_path()); }

// What a Client waits for an answer by default (Client::timeout()).
constexpr std::chrono::milliseconds kTimeout = std::chrono::seconds(10);

usched::Status null_arg(const char* fn, const char* arg) {
  return usched::invalid(std::string(fn) + ": " + arg + " is NULL");
}

usched::Status bad_pid(const char* fn, pid_t pid, pid_t tid) {
  if (pid <= 0) return usched::invalid(std::string(fn) + ": pid " + std::to_string(pid) + " is not a process id");
  if (tid < 0) return usched::invalid(std::string(fn) + ": tid " + std::to_string(tid) + " is not a thread id (0 for the whole process)");
  return usched::Status::ok();
}

}  // namespace

extern "C" {

pid_t usched_rfork(const char* name, int vcpu) {
  if (name == nullptr) return fail(null_arg("usched_rfork", "name"));
  // No gRPC connection: the child places itself on the placement socket.
  usched::RforkOptions o;
  o.vcpu = vcpu;
  auto r = usched::rfork(socket_path(), name, o, kTimeout);
  if (!r) return fail(r.status());
  succeed();
  return static_cast<pid_t>(*r);
}

int usched_bind_self(const char* name, int vcpu) {
  if (name == nullptr) return fail(null_arg("usched_bind_self", "name"));
  auto r = usched::place_self(socket_path(), name, vcpu, 0, kTimeout);
  if (!r) return fail(r.status());
  return succeed();
}

int usched_bind_thread(const char* name, int vcpu) {
  if (name == nullptr) return fail(null_arg("usched_bind_thread", "name"));
  auto r = usched::place_self(socket_path(), name, vcpu, static_cast<int>(::gettid()), kTimeout);
  if (!r) return fail(r.status());
  return succeed();
}

int usched_bind_pid(const char* name, pid_t pid, pid_t tid, int vcpu) {
  if (name == nullptr) return fail(null_arg("usched_bind_pid", "name"));
  if (auto s = bad_pid("usched_bind_pid", pid, tid); !s) return fail(s);
  auto c = connect();
  if (!c) return fail(c.status());
  auto r = (*c)->bind(name, static_cast<int>(pid), static_cast<int>(tid), vcpu);
  if (!r) return fail(r.status());
  return succeed();
}

int usched_unbind(pid_t pid, pid_t tid) {
  if (auto s = bad_pid("usched_unbind", pid, tid); !s) return fail(s);
  auto c = connect();
  if (!c) return fail(c.status());
  auto r = (*c)->unbind(static_cast<int>(pid), static_cast<int>(tid));
  if (!r) return fail(r.status());
  return succeed();
}

int usched_join_gang(const char* gang) {
  if (gang == nullptr) return fail(null_arg("usched_join_gang", "gang"));
  auto c = connect();
  if (!c) return fail(c.status());
  auto r = usched::join_gang(**c, gang);
  if (!r) return fail(r.status());
  return succeed();
}

int usched_gang_create(const char* gang, int quantum_ms, int width) {
  if (gang == nullptr) return fail(null_arg("usched_gang_create", "gang"));
  auto sg = usched::split_gang(gang);
  if (!sg) return fail(sg.status());
  auto c = connect();
  if (!c) return fail(c.status());
  usched::v1::GangSpec spec;
  spec.set_scheduler(sg->first);
  spec.set_name(sg->second);
  spec.set_quantum_ms(quantum_ms > 0 ? quantum_ms : 0);
  spec.set_width(width > 0 ? width : 0);
  auto r = (*c)->create_gang(spec);
  if (!r) return fail(r.status());
  return succeed();
}

int usched_gang_destroy(const char* gang) {
  if (gang == nullptr) return fail(null_arg("usched_gang_destroy", "gang"));
  auto sg = usched::split_gang(gang);
  if (!sg) return fail(sg.status());
  auto c = connect();
  if (!c) return fail(c.status());
  if (auto s = (*c)->destroy_gang(sg->first, sg->second); !s) return fail(s);
  return succeed();
}

int usched_gang_add(const char* gang, pid_t pid, pid_t tid) {
  if (gang == nullptr) return fail(null_arg("usched_gang_add", "gang"));
  if (auto s = bad_pid("usched_gang_add", pid, tid); !s) return fail(s);
  auto sg = usched::split_gang(gang);
  if (!sg) return fail(sg.status());
  auto c = connect();
  if (!c) return fail(c.status());
  auto r = (*c)->add_gang_member(sg->first, sg->second, static_cast<int>(pid), static_cast<int>(tid));
  if (!r) return fail(r.status());
  return succeed();
}

int usched_sched_create(const char* name, const char* pool, int lwktpri, int locked) {
  if (name == nullptr) return fail(null_arg("usched_sched_create", "name"));
  if (pool == nullptr) return fail(null_arg("usched_sched_create", "pool"));
  auto c = connect();
  if (!c) return fail(c.status());
  usched::v1::SchedulerSpec spec;
  spec.set_name(name);
  spec.set_pool(pool);
  if (lwktpri >= 0) spec.set_lwktpri(lwktpri);
  spec.set_locked(locked != 0);
  auto r = (*c)->create(spec);
  if (!r) return fail(r.status());
  return succeed();
}

int usched_sched_chown(const char* name, uid_t uid, gid_t gid) {
  if (name == nullptr) return fail(null_arg("usched_sched_chown", "name"));
  auto c = connect();
  if (!c) return fail(c.status());
  const int64_t g = gid == static_cast<gid_t>(-1) ? -1 : static_cast<int64_t>(gid);
  auto r = (*c)->chown(name, static_cast<uint32_t>(uid), g);
  if (!r) return fail(r.status());
  return succeed();
}

int usched_sched_destroy(const char* name, int force) {
  if (name == nullptr) return fail(null_arg("usched_sched_destroy", "name"));
  auto c = connect();
  if (!c) return fail(c.status());
  auto r = (*c)->destroy(name, force != 0);
  if (!r) return fail(r.status());
  return succeed();
}

int usched_sched_get(const char* name, struct usched_sched_info* info) {
  if (name == nullptr) return fail(null_arg("usched_sched_get", "name"));
  if (info == nullptr) return fail(null_arg("usched_sched_get", "info"));
  auto c = connect();
  if (!c) return fail(c.status());
  auto r = (*c)->get(name);
  if (!r) return fail(r.status());
  std::string vcpus;
  for (const auto& v : r->vcpu()) {
    if (!vcpus.empty()) vcpus += ' ';
    vcpus += std::to_string(v.index()) + ":" + v.cpus();
  }
  if (r->cpus().size() >= sizeof info->cpus || vcpus.size() >= sizeof info->vcpus) {
    return fail(usched::Status(usched::Code::kResourceExhausted,
                               std::string("usched_sched_get: the CPU lists of ") + name + " do not fit usched_sched_info"));
  }
  *info = usched_sched_info{};
  info->owner_uid = static_cast<uid_t>(r->owner_uid());
  info->owner_gid = static_cast<gid_t>(r->owner_gid());
  info->lwktpri = r->spec().has_lwktpri() ? r->spec().lwktpri() : 6;
  info->locked = r->spec().locked() ? 1 : 0;
  info->nvcpus = r->vcpu_size();
  std::snprintf(info->cpus, sizeof info->cpus, "%s", r->cpus().c_str());
  std::snprintf(info->vcpus, sizeof info->vcpus, "%s", vcpus.c_str());
  return succeed();
}

int usched_set_socket(const char* path) {
  std::lock_guard<std::mutex> l(g_socket_mu);
  g_socket = path == nullptr ? "" : path;
  return succeed();
}

const char* usched_socket(void) {
  thread_local std::string copy;
  copy = socket_path();
  return copy.c_str();
}

int usched_gang_add_threads(const char* gang, pid_t pid, const char* glob) {
  if (gang == nullptr || glob == nullptr) return fail(usched::invalid("usched_gang_add_threads: gang or glob is NULL"));
  auto sg = usched::split_gang(gang);
  if (!sg) return fail(sg.status());
  auto c = connect();
  if (!c) return fail(c.status());
  auto r = (*c)->add_gang_threads(sg->first, sg->second, static_cast<int>(pid), glob);
  if (!r) return fail(r.status());
  g_last_error.clear();
  return 0;
}

const char* usched_last_error(void) { return g_last_error.c_str(); }

int usched_last_error_code(void) { return g_last_code; }

const char* usched_code_name(int code) {
  switch (code) {
    case USCHED_OK: return "OK";
    case USCHED_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case USCHED_NOT_FOUND: return "NOT_FOUND";
    case USCHED_ALREADY_EXISTS: return "ALREADY_EXISTS";
    case USCHED_PERMISSION_DENIED: return "PERMISSION_DENIED";
    case USCHED_RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case USCHED_FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case USCHED_INTERNAL: return "INTERNAL";
    case USCHED_UNAVAILABLE: return "UNAVAILABLE";
    default: return "UNKNOWN";
  }
}

}  // extern "C"
