// Gang calls of the client library.
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>

#include "client_unary.h"

namespace usched {

Result<v1::Gang> Client::create_gang(const v1::GangSpec& spec) {
  v1::CreateGangRequest req;
  *req.mutable_spec() = spec;
  v1::CreateGangResponse resp;
  if (Status s = unary("CreateGang", req, &resp, &v1::Usched::Stub::CreateGang); !s) return s;
  return resp.gang();
}

Status Client::destroy_gang(const std::string& scheduler, const std::string& gang) {
  v1::DestroyGangRequest req;
  req.set_scheduler(scheduler);
  req.set_name(gang);
  v1::DestroyGangResponse resp;
  return unary("DestroyGang", req, &resp, &v1::Usched::Stub::DestroyGang);
}

namespace {
v1::AddGangMemberRequest add_request(const std::string& scheduler, const std::string& gang, int pid, int tid) {
  v1::AddGangMemberRequest req;
  req.set_scheduler(scheduler);
  req.set_name(gang);
  req.set_pid(pid);
  req.set_tid(tid);
  return req;
}
}  // namespace

Result<v1::Gang> Client::add_gang_threads(const std::string& scheduler, const std::string& gang, int pid,
                                          const std::string& glob) {
  v1::AddGangMemberRequest req = add_request(scheduler, gang, pid, 0);
  req.set_threads(glob);
  v1::AddGangMemberResponse resp;
  if (Status s = unary("AddGangMember", req, &resp, &v1::Usched::Stub::AddGangMember); !s) return s;
  return resp.gang();
}

Result<v1::Gang> Client::add_gang_member(const std::string& scheduler, const std::string& gang, int pid, int tid) {
  const v1::AddGangMemberRequest req = add_request(scheduler, gang, pid, tid);
  v1::AddGangMemberResponse resp;
  if (Status s = unary("AddGangMember", req, &resp, &v1::Usched::Stub::AddGangMember); !s) return s;
  return resp.gang();
}

Status Client::remove_gang_member(const std::string& scheduler, const std::string& gang, int pid, int tid) {
  v1::RemoveGangMemberRequest req;
  req.set_scheduler(scheduler);
  req.set_name(gang);
  req.set_pid(pid);
  req.set_tid(tid);
  v1::RemoveGangMemberResponse resp;
  return unary("RemoveGangMember", req, &resp, &v1::Usched::Stub::RemoveGangMember);
}

Result<v1::ListGangsResponse> Client::list_gangs(const std::string& scheduler) {
  v1::ListGangsRequest req;
  req.set_scheduler(scheduler);
  v1::ListGangsResponse resp;
  if (Status s = unary("ListGangs", req, &resp, &v1::Usched::Stub::ListGangs); !s) return s;
  return resp;
}

Result<std::pair<std::string, std::string>> split_gang(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == path.size()) {
    return invalid("'" + path + "' does not name a gang: write SCHED/GANG, e.g. NORM/vm1");
  }
  return std::make_pair(path.substr(0, slash), path.substr(slash + 1));
}

Result<v1::Gang> join_gang(Client& c, const std::string& gang) {
  auto sg = split_gang(gang);
  if (!sg) return sg.status();
  return c.add_gang_member(sg->first, sg->second, static_cast<int>(::getpid()),
                           static_cast<int>(::syscall(SYS_gettid)));
}

}  // namespace usched
