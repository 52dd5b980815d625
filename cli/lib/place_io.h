//! The placement socket's client side that speaks protobuf (place.cc);
//! the rest is in place_exchange.h.
#pragma once

#include <string>

#include "place_exchange.h"
#include "usched/v1/usched.pb.h"

namespace usched::detail {

// The request frame for binding the caller (tid 0) or its thread tid.
std::string place_request(const std::string& name, int vcpu, int tid);

// place_status, and the BindResponse when the caller was placed.
Result<v1::BindResponse> place_result(const std::string& path, ssize_t n, const char* reply);

}  // namespace usched::detail
