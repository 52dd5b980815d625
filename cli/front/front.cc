//! usched, the command users run: `usched run NAME [--vcpu N] -- CMD ...`
//! is served here, through uschedd's placement socket (usched/place.h);
//! every other command, and any `run` this file does not parse exactly,
//! goes to the full command (usched-cli, beside this program or in
//! ../libexec/usched/) with the same arguments.
//!
//! Why two programs: the full command links gRPC, whose start-up (loading
//! and relocating a 30 MB program and five libraries, then gRPC's threads)
//! costs ~3 ms before its first call; `usched run` sits in front of every
//! command a user starts placed, as `taskset` does, and this program links
//! only the C and C++ runtime (docs/benchmarks.md, issue 12).
#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "place_exchange.h"
#include "usched/place.h"

namespace {

constexpr int kExitError = 1;

// An integer in [lo, hi], the whole string; false otherwise.
bool parse_int(const char* s, long lo, long hi, long* out) {
  if (*s == '\0') return false;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

// `--opt VALUE` or `--opt=VALUE` at argv[*i]; advances *i past it.
bool option(int argc, char** argv, int* i, const char* opt, const char** value) {
  const size_t n = std::strlen(opt);
  if (std::strncmp(argv[*i], opt, n) != 0) return false;
  if (argv[*i][n] == '=') {
    *value = argv[*i] + n + 1;
    ++*i;
    return true;
  }
  if (argv[*i][n] != '\0' || *i + 1 >= argc) return false;
  *value = argv[*i + 1];
  *i += 2;
  return true;
}

[[noreturn]] void full_command(char** argv) {
  char self[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  std::string dir = ".";
  if (n > 0) {
    self[n] = '\0';
    dir = self;
    dir.erase(dir.rfind('/'));
  }
  for (const std::string& path : {dir + "/usched-cli", dir + "/../libexec/usched/usched-cli"}) {
    ::execv(path.c_str(), argv);
  }
  std::fprintf(stderr, "usched: cannot run %s/../libexec/usched/usched-cli: %s (is usched installed whole?)\n",
               dir.c_str(), std::strerror(errno));
  std::_Exit(kExitError);
}

}  // namespace

int main(int argc, char** argv) {
  // usched [--socket P] [--timeout MS] run NAME [--vcpu N] -- CMD [ARGS...]
  std::string socket = usched::place::default_socket();
  long timeout_ms = 10000;
  int i = 1;
  for (;;) {
    const char* v = nullptr;
    if (i < argc && option(argc, argv, &i, "--socket", &v)) {
      socket = v;
    } else if (i < argc && option(argc, argv, &i, "--timeout", &v)) {
      if (!parse_int(v, 1, 86400000, &timeout_ms)) full_command(argv);  // it explains
    } else {
      break;
    }
  }
  if (i + 1 >= argc || std::strcmp(argv[i], "run") != 0 || argv[i + 1][0] == '-') full_command(argv);
  const std::string name = argv[i + 1];
  i += 2;
  long vcpu = -1;
  if (const char* v = nullptr; i < argc && option(argc, argv, &i, "--vcpu", &v)) {
    if (!parse_int(v, 0, 1 << 30, &vcpu)) full_command(argv);
  }
  if (i >= argc || std::strcmp(argv[i], "--") != 0 || i + 1 >= argc) full_command(argv);
  char** cmd = argv + i + 1;

  const std::string path = usched::place::socket_of(socket);
  const std::string req = usched::place::request_frame(usched::place::bind_request(name, 0, 0, static_cast<int>(vcpu)));
  std::vector<char> reply(usched::place::kMaxReply);
  const ssize_t n = usched::detail::place_exchange(path.c_str(), req.data(), req.size(), reply.data(), reply.size(),
                                                   static_cast<int>(timeout_ms));
  if (n < 8 || usched::place::get_le32(reply.data() + 4) != 0) {
    std::fprintf(stderr, "usched: %s\n", usched::detail::place_status(path, n, reply.data()).message().c_str());
    return kExitError;
  }
  std::fflush(stdout);
  ::execvp(cmd[0], cmd);
  std::fprintf(stderr, "usched: cannot run %s: %s\n", cmd[0], std::strerror(errno));
  std::_Exit(127);
}
