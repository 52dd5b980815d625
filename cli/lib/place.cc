#include <vector>

#include "place_io.h"
#include "usched/client.h"
#include "usched/place.h"

namespace usched {
namespace detail {

std::string place_request(const std::string& name, int vcpu, int tid) {
  return place::request_frame(place::bind_request(name, 0, tid, vcpu));
}

Result<v1::BindResponse> place_result(const std::string& path, ssize_t n, const char* reply) {
  if (Status s = place_status(path, n, reply); !s) return s;
  v1::BindResponse r;
  if (!r.ParseFromArray(reply + 8, static_cast<int>(n - 8))) {
    return Status(Code::kInternal, "uschedd's answer on " + path + " is not a usched.v1.BindResponse");
  }
  return r;
}

}  // namespace detail

Result<v1::BindResponse> place_self(const std::string& socket, const std::string& name, int vcpu, int tid,
                                    std::chrono::milliseconds timeout) {
  const std::string path = place::socket_of(socket);
  const std::string req = detail::place_request(name, vcpu, tid);
  std::vector<char> reply(place::kMaxReply);
  const ssize_t n = detail::place_exchange(path.c_str(), req.data(), req.size(), reply.data(), reply.size(),
                                           detail::timeout_ms(timeout));
  return detail::place_result(path, n, reply.data());
}

}  // namespace usched
