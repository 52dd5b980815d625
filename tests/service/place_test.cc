// The placement socket (usched/place.h), spoken to byte by byte as a
// hostile or broken client would: every bad request is answered with an
// error naming what was wrong and binds nothing; a client that sends
// nothing is dropped, one user's flood is held off, and root's placements
// go on meanwhile.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/socket.h>

#include <thread>

#include "support/harness.h"
#include "support/kernel.h"
#include "usched/client.h"
#include "usched/place.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr uid_t kNobody = 65534;

std::vector<std::string> fake_args() { return {"--glue", "fake", "--fake-cpus", "0-3", "--max-connections-per-uid", "8"}; }

// A raw connection whose reads give up after 10 s.
int connect_to(const std::string& path) {
  const int fd = connect_unix(path);
  timeval tv{10, 0};
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

struct Reply {
  bool got = false;  // a whole frame came back
  Code code = Code::kInternal;
  std::string rest;
};

// Reads one reply frame (or EOF).
Reply read_reply(int fd) {
  std::string in;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  Reply r;
  if (in.size() < 8 || in.size() != 4 + place::get_le32(in.data())) return r;
  r.got = true;
  r.code = static_cast<Code>(place::get_le32(in.data() + 4));
  r.rest = in.substr(8);
  return r;
}

// Sends raw bytes on a fresh connection and reads the answer.
Reply exchange(const std::string& path, const std::string& bytes) {
  const int fd = connect_to(path);
  if (fd < 0) return {};
  (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  Reply r = read_reply(fd);
  ::close(fd);
  return r;
}

std::string bind_request(const std::string& name, int pid) {
  v1::BindRequest req;
  req.set_name(name);
  req.set_pid(pid);
  return req.SerializeAsString();
}

int members(const Daemon& d) {
  auto c = Client::connect(d.socket(), 5s);
  if (!c) return -1;
  auto l = (*c)->list();
  if (!l) return -1;
  int n = 0;
  for (const auto& s : l->schedulers()) n += s.members_size();
  return n;
}

// The `usched` front writes its BindRequest without protobuf: the bytes
// must be protobuf's own, field for field, or the daemon would read
// another request than the one meant.
TEST(PlaceSocket, TheHandWrittenBindRequestIsProtobufsOwnEncoding) {
  struct Case {
    std::string name;
    int pid, tid, vcpu;
  };
  const std::string long_name(300, 'n');  // a length that takes two varint bytes
  for (const Case& c : std::vector<Case>{{"NORM", 0, 0, -1},
                                         {"batch/jobs", 0, 0, 0},
                                         {"L", 0, 4242, 3},
                                         {long_name, 123456, 0, 1 << 30},
                                         {"", 0, 0, -1},
                                         {"X", -5, -7, 127},
                                         {"Y", 0, 0, 128}}) {
    v1::BindRequest req;
    req.set_name(c.name);
    req.set_pid(c.pid);
    req.set_tid(c.tid);
    if (c.vcpu >= 0) req.set_vcpu(c.vcpu);
    const std::string mine = place::bind_request(c.name, c.pid, c.tid, c.vcpu);
    EXPECT_EQ(mine, req.SerializeAsString()) << c.name.substr(0, 10) << " " << c.pid << " " << c.tid << " " << c.vcpu;
    v1::BindRequest back;
    ASSERT_TRUE(back.ParseFromString(mine));
    EXPECT_EQ(back.name(), c.name);
    EXPECT_EQ(back.tid(), c.tid);
    EXPECT_EQ(back.has_vcpu(), c.vcpu >= 0);
  }
}

TEST(PlaceSocket, BadRequestsAreRefusedNamingWhatWasWrongAndBindNothing) {
  Daemon d(fake_args());
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.cli({"create", "S", "on", "cpu0-1"}).exit_code, 0);
  const std::string path = place::socket_of(d.socket());
  Child other;

  struct Case {
    const char* what;
    std::string bytes;
    Code code;
    std::string says;
  };
  std::string too_big;
  place::put_le32(too_big, 1u << 30);
  const std::string ok_body = bind_request("S", 0);
  const std::vector<Case> cases = {
      {"a length past the limit", too_big, Code::kInvalidArgument, "larger than the 4096 bytes"},
      {"bytes that are no BindRequest", place::request_frame(std::string("\xff\xff\xff\xff\xff", 5)),
       Code::kInvalidArgument, "is not a usched.v1.BindRequest"},
      {"two requests on one connection", place::request_frame(ok_body) + place::request_frame(ok_body),
       Code::kInvalidArgument, "one placement request per connection"},
      {"a process that is not the caller's child", place::request_frame(bind_request("S", ::getppid())),
       Code::kInvalidArgument, "not pid " + std::to_string(::getppid())},
      {"a scheduler that does not exist", place::request_frame(bind_request("NOPE", 0)), Code::kNotFound, "NOPE"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const Reply r = exchange(path, c.bytes);
    ASSERT_TRUE(r.got) << "no answer";
    EXPECT_EQ(r.code, c.code) << r.rest;
    EXPECT_THAT(r.rest, HasSubstr(c.says));
    EXPECT_EQ(members(d), 0);
  }
  // A child of the caller is the caller's to place (rfork's parent does so).
  const std::string child_frame = place::request_frame(bind_request("S", other.pid()));
  const Reply mine = exchange(path, child_frame);
  ASSERT_TRUE(mine.got) << "no answer";
  EXPECT_EQ(mine.code, Code::kOk) << mine.rest;
  EXPECT_EQ(members(d), 1);
  // Half a request, then the connection closed: nothing to answer, nothing bound.
  {
    const int fd = connect_to(path);
    ASSERT_GE(fd, 0);
    const std::string half = place::request_frame(ok_body).substr(0, 6);
    (void)::send(fd, half.data(), half.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
  // The daemon serves the next one: a process placing itself.
  const CmdResult run = d.cli({"run", "S", "--", "grep", "Cpus_allowed_list", "/proc/self/status"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
}

TEST(PlaceSocket, ClientsThatSendNothingAreDroppedAndOneUsersFloodIsHeldOff) {
  USCHED_SKIP_OR_FAIL_IF(::geteuid() == 0 ? "" : "connecting as another uid needs root");
  Daemon d(fake_args());
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.cli({"create", "S", "on", "cpu0-1"}).exit_code, 0);
  const std::string path = place::socket_of(d.socket());

  // nobody opens connections and sends nothing (SO_PEERCRED holds the
  // effective uid of connect()).
  std::vector<int> silent;
  ASSERT_EQ(::seteuid(kNobody), 0);
  for (int i = 0; i < 12; ++i) silent.push_back(connect_to(path));
  ASSERT_EQ(::seteuid(0), 0);
  for (int fd : silent) ASSERT_GE(fd, 0);

  // Past --max-connections-per-uid 8 the daemon answers at once, naming the flag.
  const Reply refused = read_reply(silent.back());
  ASSERT_TRUE(refused.got);
  EXPECT_EQ(refused.code, Code::kResourceExhausted);
  EXPECT_THAT(refused.rest, HasSubstr("--max-connections-per-uid 8"));

  // Root places meanwhile.
  const auto t0 = std::chrono::steady_clock::now();
  const CmdResult run = d.cli({"run", "S", "--", "true"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);

  // The silent ones are closed by the daemon after its request timeout
  // (5 s): EOF, no answer.
  const auto t1 = std::chrono::steady_clock::now();
  const Reply dropped = read_reply(silent.front());
  EXPECT_FALSE(dropped.got);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 8s);
  for (int fd : silent) ::close(fd);

  // nobody's slots are free again (once the daemon has seen the closes).
  Reply r;
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(::seteuid(kNobody), 0);
    const int again = connect_to(path);
    ASSERT_EQ(::seteuid(0), 0);
    ASSERT_GE(again, 0);
    const std::string req = place::request_frame(bind_request("NOPE", 0));
    (void)::send(again, req.data(), req.size(), MSG_NOSIGNAL);
    r = read_reply(again);
    ::close(again);
    if (!r.got || r.code != Code::kResourceExhausted) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(r.got);
  EXPECT_EQ(r.code, Code::kNotFound) << r.rest;
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
}

// A daemon that accepts and never answers (hung, or stopped with SIGSTOP):
// `usched run` gives up after --timeout with a message saying so, and the
// command never runs.
TEST(PlaceSocket, UschedRunGivesUpOnADaemonThatNeverAnswers) {
  TempDir dir;
  const std::string sock = dir / "hung.sock";
  const int l = listen_unix(place::socket_of(sock));  // connections wait in the backlog, unanswered
  ASSERT_GE(l, 0) << std::strerror(errno);
  const std::string marker = dir / "ran";
  const auto t0 = std::chrono::steady_clock::now();
  const CmdResult r = run({USCHED_CLI_PATH, "--socket", sock, "--timeout", "300", "run", "NORM", "--", "touch", marker});
  const auto took = std::chrono::steady_clock::now() - t0;
  ::close(l);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("did not answer on " + place::socket_of(sock)));
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the command ran unplaced";
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 5s);
}

}  // namespace
}  // namespace usched::test
