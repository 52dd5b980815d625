// The C API (usched/usched.h) over the C++ client: one connection per call.
#include "usched/usched.h"

#include <string>

#include "usched/client.h"

namespace {

thread_local std::string g_last_error;

int fail(const usched::Status& s) {
  g_last_error = s.message();
  return -1;
}

}  // namespace

extern "C" {

pid_t usched_rfork(const char* name, int vcpu) {
  if (name == nullptr) return fail(usched::invalid("usched_rfork: name is NULL"));
  auto c = usched::Client::connect();
  if (!c) return fail(c.status());
  usched::RforkOptions o;
  o.vcpu = vcpu;
  auto r = usched::rfork(**c, name, o);
  if (!r) return fail(r.status());
  if (*r == 0) {
    // The child must not tear down gRPC state inherited across fork().
    (void)c->release();
    g_last_error.clear();
    return 0;
  }
  g_last_error.clear();
  return static_cast<pid_t>(*r);
}

int usched_bind_self(const char* name, int vcpu) {
  if (name == nullptr) return fail(usched::invalid("usched_bind_self: name is NULL"));
  auto c = usched::Client::connect();
  if (!c) return fail(c.status());
  auto r = usched::bind_self(**c, name, vcpu);
  if (!r) return fail(r.status());
  g_last_error.clear();
  return 0;
}

int usched_bind_thread(const char* name, int vcpu) {
  if (name == nullptr) return fail(usched::invalid("usched_bind_thread: name is NULL"));
  auto c = usched::Client::connect();
  if (!c) return fail(c.status());
  auto r = usched::bind_thread(**c, name, vcpu);
  if (!r) return fail(r.status());
  g_last_error.clear();
  return 0;
}

int usched_join_gang(const char* gang) {
  if (gang == nullptr) return fail(usched::invalid("usched_join_gang: gang is NULL"));
  auto c = usched::Client::connect();
  if (!c) return fail(c.status());
  auto r = usched::join_gang(**c, gang);
  if (!r) return fail(r.status());
  g_last_error.clear();
  return 0;
}

int usched_gang_add_threads(const char* gang, pid_t pid, const char* glob) {
  if (gang == nullptr || glob == nullptr) return fail(usched::invalid("usched_gang_add_threads: gang or glob is NULL"));
  auto sg = usched::split_gang(gang);
  if (!sg) return fail(sg.status());
  auto c = usched::Client::connect();
  if (!c) return fail(c.status());
  auto r = (*c)->add_gang_threads(sg->first, sg->second, static_cast<int>(pid), glob);
  if (!r) return fail(r.status());
  g_last_error.clear();
  return 0;
}

const char* usched_last_error(void) { return g_last_error.c_str(); }

}  // extern "C"
