//! The one include of Boost.Asio. Boost 1.74's awaitable.hpp uses
//! std::exchange without including <utility>, which g++ 12 in C++20 mode
//! rejects; including it first here fixes every user at once.
#pragma once

#include <utility>

#include <boost/asio.hpp>

namespace asio = boost::asio;
