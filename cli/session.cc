#include "session.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "direct.h"

namespace usched::cli {
namespace {

Client* g_session = nullptr;  // owned; deleted only under the sanitizers

}  // namespace

Result<Client*> session(const std::string& socket, int timeout_ms) {
  if (g_session) return g_session;
  const std::string path = socket.empty() ? default_socket() : socket;
  auto caller = direct_caller(path, std::chrono::milliseconds(timeout_ms));
  if (!caller) return caller.status();
  g_session = Client::with_caller(path, std::move(*caller)).release();
  g_session->set_timeout(std::chrono::milliseconds(timeout_ms));
  return g_session;
}

void finish(int rc) {
  std::cout.flush();
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    int err = errno;
    std::fprintf(stderr, "usched: cannot write the output: %s\n", std::strerror(err));
    if (rc == 0) rc = 1;
  }
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  delete g_session;
  g_session = nullptr;
  std::exit(rc);
#else
  std::_Exit(rc);
#endif
}

}  // namespace usched::cli
