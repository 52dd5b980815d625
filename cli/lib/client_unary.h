//! Client::unary, for the files that define the Client's calls.
#pragma once

#include <chrono>
#include <string>

#include <grpcpp/grpcpp.h>

#include "usched/client.h"

namespace usched {

template <class Req, class Resp>
Status Client::unary(const char* method, const Req& req, Resp* resp,
                     grpc::Status (v1::Usched::Stub::*via_stub)(grpc::ClientContext*, const Req&, Resp*)) {
  if (caller_) {
    const std::string path = std::string("/") + v1::Usched::service_full_name() + "/" + method;
    return from_grpc(caller_->call(path, req, resp, timeout_));
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
  return from_grpc((stub_.get()->*via_stub)(&ctx, req, resp));
}

}  // namespace usched
