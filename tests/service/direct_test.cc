// The usched command's unary calls without gRPC's runtime (cli/direct):
// the same answers and the same errors, word for word, as a gRPC channel
// gets from the same daemon, and a clear error, in time, from a daemon
// that never answers or drops the connection.
#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <sys/socket.h>

#include <thread>

#include "direct.h"
#include "support/harness.h"
#include "usched/client.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::vector<std::string> fake_args() { return {"--glue", "fake", "--fake-cpus", "0-3"}; }

std::unique_ptr<Client> direct_client(const std::string& socket) {
  auto caller = cli::direct_caller(socket, 5s);
  if (!caller) return nullptr;
  return Client::with_caller(socket, std::move(*caller));
}

TEST(DirectCaller, AnswersAndErrorsAreThoseOfTheGrpcChannel) {
  Daemon d(fake_args());
  ASSERT_TRUE(d.start()) << d.log();
  auto grpc = Client::connect(d.socket());
  ASSERT_TRUE(grpc) << grpc.status().message();
  auto direct = direct_client(d.socket());
  ASSERT_TRUE(direct);

  // Enough schedulers that the list answer spans many HTTP/2 frames and
  // more than the protocol's default 64 KiB flow-control window; made
  // through the direct client, so every create goes its way too.
  const std::string longer(56, 'x');
  for (int i = 0; i < 700; ++i) {
    v1::SchedulerSpec s;
    s.set_name("s" + std::to_string(i) + longer);
    s.set_pool(i % 2 ? "cpu1" : "cpu0-1");
    auto r = direct->create(s);
    ASSERT_TRUE(r) << r.status().message();
  }
  auto a = (*grpc)->list();
  auto b = direct->list();
  ASSERT_TRUE(a) << a.status().message();
  ASSERT_TRUE(b) << b.status().message();
  EXPECT_EQ(b->schedulers_size(), 703);  // and IDLE, NORM, REAL
  EXPECT_GT(b->ByteSizeLong(), 65535u);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*a, *b));

  // Errors keep their code and message, including what gRPC percent-encodes
  // on the way ('%' itself, bytes outside printable ASCII).
  for (const std::string name : {"NOPE", "a%41b", "bad/", "x\xc3\xa9", "s1x/../s2"}) {
    auto ga = (*grpc)->get(name);
    auto gb = direct->get(name);
    ASSERT_FALSE(ga) << name;
    ASSERT_FALSE(gb) << name;
    EXPECT_EQ(gb.status().code(), ga.status().code()) << name;
    EXPECT_EQ(gb.status().message(), ga.status().message()) << name;
  }
  EXPECT_THAT(direct->get("a%41b").status().message(), HasSubstr("'a%41b'"));
  auto unbound = direct->unbind(999999);
  ASSERT_FALSE(unbound);
  EXPECT_EQ(unbound.status().code(), Code::kNotFound);
  EXPECT_THAT(unbound.status().message(), HasSubstr("999999"));
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
}

// The daemon restarted between two calls of one client (`usched top`): the
// next call connects again.
TEST(DirectCaller, ConnectsAgainAfterTheDaemonRestarts) {
  Daemon d(fake_args());
  ASSERT_TRUE(d.start()) << d.log();
  auto direct = direct_client(d.socket());
  ASSERT_TRUE(direct);
  ASSERT_TRUE(direct->list());
  ASSERT_EQ(d.stop(SIGTERM), 0) << d.log();
  auto down = direct->list();
  ASSERT_FALSE(down);
  EXPECT_EQ(down.status().code(), Code::kUnavailable);
  EXPECT_THAT(down.status().message(), HasSubstr("cannot reach uschedd at " + d.socket()));
  ASSERT_TRUE(d.start()) << d.log();
  auto again = direct->list();
  ASSERT_TRUE(again) << again.status().message();
  EXPECT_EQ(again->schedulers_size(), 3);
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
}

// Output that cannot be written (a full disk, a closed pipe) fails the
// command and says why, instead of exiting 0 with nothing written.
TEST(DirectCaller, UschedListThatCannotWriteItsOutputFailsAndSaysSo) {
  Daemon d(fake_args());
  ASSERT_TRUE(d.start()) << d.log();
  const CmdResult r =
      run({"sh", "-c", std::string("exec ") + USCHED_CLI_PATH + " --socket " + d.socket() + " list > /dev/full"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("usched: cannot write the output: No space left on device"));
  EXPECT_EQ(d.cli({"list"}).exit_code, 0);
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
}

// A daemon that accepts and never answers (hung, or stopped with SIGSTOP):
// `usched list` gives up after --timeout and says which call went
// unanswered.
TEST(DirectCaller, UschedListGivesUpOnADaemonThatNeverAnswers) {
  TempDir dir;
  const std::string sock = dir / "hung.sock";
  const int l = listen_unix(sock);
  ASSERT_GE(l, 0) << std::strerror(errno);
  const auto t0 = std::chrono::steady_clock::now();
  const CmdResult r = run({USCHED_CLI_PATH, "--socket", sock, "--timeout", "300", "list"});
  const auto took = std::chrono::steady_clock::now() - t0;
  ::close(l);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("uschedd did not answer /usched.v1.Usched/ListSchedulers within 300 ms"));
  EXPECT_EQ(r.out, "");
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 5s);
}

// A daemon that dies with the call under way: the error says so.
TEST(DirectCaller, UschedListReportsAConnectionDroppedMidCall) {
  TempDir dir;
  const std::string sock = dir / "drop.sock";
  const int l = listen_unix(sock);
  ASSERT_GE(l, 0) << std::strerror(errno);
  std::thread dropper([l] {
    const int c = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    char buf[256];
    (void)::recv(c, buf, sizeof buf, 0);  // the request starts coming in
    ::close(c);
  });
  const CmdResult r = run({USCHED_CLI_PATH, "--socket", sock, "--timeout", "5000", "list"});
  dropper.join();
  ::close(l);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("during /usched.v1.Usched/ListSchedulers"));
  EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace usched::test
