// Hostile clients: one user opening connections without end (and never
// sending a byte on them), Watch subscribers that never read. Root's RPCs
// still answer within 1 s, the daemon's fds and memory stay bounded, and
// the user past a limit is told which flag holds them off.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <array>

#include "support/harness.h"
#include "support/kernel.h"
#include <grpcpp/grpcpp.h>

#include "usched/client.h"
#include "usched/v1/usched.grpc.pb.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;

constexpr int kNobody = 65534;

long open_fds(pid_t pid) {
  long n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

std::array<int, 2> make_pipe() {
  std::array<int, 2> p{-1, -1};
  if (::pipe2(p.data(), O_CLOEXEC) != 0) p = {-1, -1};
  return p;
}

// A process the test owns, running as `uid`: fn runs in it (after setuid)
// and the process then waits to be killed. ok() once fn has returned.
class AsUser {
 public:
  AsUser(uid_t uid, const std::function<void()>& fn)
      : ready_(make_pipe()), child_({}, {.as_uid = static_cast<int>(uid), .fn = [&] {
                                          fn();
                                          (void)!::write(ready_[1], "r", 1);
                                        }}) {
    ::close(ready_[1]);
    char c;
    ok_ = ::read(ready_[0], &c, 1) == 1;
    ::close(ready_[0]);
  }
  bool ok() const { return ok_; }
  void kill() { child_.kill(); }

 private:
  std::array<int, 2> ready_;
  Child child_;
  bool ok_ = false;
};

// `argv` exec'd as `uid` with its stdout on a pipe nobody reads.
class StalledReader {
 public:
  StalledReader(uid_t uid, const std::vector<std::string>& argv)
      : out_(make_pipe()), child_(argv, {.as_uid = static_cast<int>(uid), .stdout_fd = out_[1]}) {
    ::close(out_[1]);
  }
  ~StalledReader() {
    child_.kill();
    ::close(out_[0]);
  }
  bool running() const { return child_.running(); }

 private:
  std::array<int, 2> out_;
  Child child_;
};

// The slowest of `n` ListSchedulers by root on one connection, each with a
// 1 s deadline; a failed one counts as 1 s.
std::chrono::milliseconds slowest_root_list(const Daemon& d, int n) {
  auto c = Client::connect(d.socket(), std::chrono::seconds(1));
  if (!c.is_ok()) return std::chrono::milliseconds(100000);
  std::chrono::milliseconds worst(0);
  for (int i = 0; i < n; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const bool ok = (*c)->list().is_ok();
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    if (!ok) took = std::chrono::milliseconds(1000);
    worst = std::max(worst, took);
  }
  return worst;
}

// A channel whose connection the daemon sees as `uid`'s (SO_PEERCRED
// holds the credentials of connect(), made while this process's effective
// uid is `uid`), with its own subchannel so it shares no connection.
std::unique_ptr<v1::Usched::Stub> stub_as(const Daemon& d, uid_t uid) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto ch = grpc::CreateCustomChannel("unix:" + d.socket(), grpc::InsecureChannelCredentials(), args);
  if (::setegid(uid) != 0 || ::seteuid(uid) != 0) return nullptr;
  const bool up = ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (::seteuid(0) != 0 || ::setegid(0) != 0) std::abort();  // the test cannot go on as someone else
  return up ? v1::Usched::NewStub(ch) : nullptr;
}

grpc::Status list_with(v1::Usched::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ListSchedulersRequest req;
  v1::ListSchedulersResponse resp;
  return stub.ListSchedulers(&ctx, req, &resp);
}

// Root's connect right after the flood once failed within 1 s: uschedd
// listened with a backlog of 128, the flood filled it, and gRPC's
// non-blocking connect failed with EAGAIN and waited out its 1 s reconnect
// backoff. The backlog is now the kernel's largest.
TEST(HostileClients, OneUserOpeningConnectionsWithoutEndIsHeldOffAndRootStillAnswers) {
  USCHED_SKIP_OR_FAIL_IF(::geteuid() == 0 ? "" : "acting as another user needs root");
  Daemon d({"--glue", "fake", "--fake-cpus", "0-3", "--max-connections-per-uid", "8"});
  ASSERT_TRUE(d.start()) << d.log();
  const long fds_before = open_fds(d.pid());
  const long rss_before = rss_kib(d.pid());
  // Up to 2000 connections (or as many as the user's own fd limit allows)
  // that never send a byte, not even the HTTP/2 preface, as fast as the
  // user can make them.
  AsUser hog(kNobody, [&] {
    for (int i = 0; i < 2000; ++i) {
      (void)connect_unix(d.socket());  // kept open until the process dies
    }
  });
  ASSERT_TRUE(hog.ok());
  // Root is never held off.
  const auto worst = slowest_root_list(d, 20);
  EXPECT_LT(worst.count(), 1000) << "root's ListSchedulers took " << worst.count() << " ms";
  std::cerr << "hostile: 2000 idle connections by one uid; root's slowest of 20 lists " << worst.count()
            << " ms; uschedd fds " << fds_before << " -> " << open_fds(d.pid()) << ", RSS " << rss_before
            << " -> " << rss_kib(d.pid()) << " KiB\n";
  // The user is: RESOURCE_EXHAUSTED naming the flag, while their
  // connections are open.
  const CmdResult r = d.cli({"list"}, {.timeout = 5s, .as_uid = kNobody});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("the limit is --max-connections-per-uid 8"));
  auto stub = stub_as(d, kNobody);
  ASSERT_TRUE(stub);
  const grpc::Status st = list_with(*stub);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("--max-connections-per-uid 8"));
  stub.reset();
  // Bounded: the 8 served, the few refused ones kept to say why, not 2000.
  EXPECT_LT(open_fds(d.pid()), fds_before + 8 + 8 + 8);
  EXPECT_LT(rss_kib(d.pid()), rss_before + rss_growth_allowed_kib(32 * 1024));
  // Once the user's connections close, the user is served again.
  hog.kill();
  EXPECT_TRUE(eventually([&] { return d.cli({"list"}, {.timeout = 5s, .as_uid = kNobody}).exit_code == 0; }, 10s))
      << d.log();
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
}

// uschedd used to log "stopped" after SIGTERM and then take 10 s to exit
// in about 2 of 6 runs while two Watch readers had stopped reading: gRPC's
// library teardown at exit waited for their connections. The last check
// bounds the whole stop.
TEST(HostileClients, WatchersPerUidAreLimitedAndStalledOnesCostRootNothing) {
  USCHED_SKIP_OR_FAIL_IF(::geteuid() == 0 ? "" : "acting as another user needs root");
  Daemon d({"--glue", "fake", "--fake-cpus", "0-3", "--max-watchers-per-uid", "2", "--log-level", "debug"});
  ASSERT_TRUE(d.start()) << d.log();
  const long rss_before = rss_kib(d.pid());
  // Two watchers that never read what they are sent.
  StalledReader w1(kNobody, {USCHED_CLI_PATH, "--socket", d.socket(), "--json", "watch"});
  StalledReader w2(kNobody, {USCHED_CLI_PATH, "--socket", d.socket(), "--json", "watch"});
  // A third is refused, naming the flag, once the two are subscribed.
  ASSERT_TRUE(eventually([&] { return d.log().find("uid 65534 opened a stream (2 open)") != std::string::npos; }, 10s))
      << d.log();
  const CmdResult third = d.cli({"watch"}, {.timeout = 5s, .as_uid = kNobody});
  EXPECT_NE(third.exit_code, 0);
  EXPECT_THAT(third.err, HasSubstr("the limit is --max-watchers-per-uid 2"));
  {
    auto stub = stub_as(d, kNobody);
    ASSERT_TRUE(stub);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    auto reader = stub->Watch(&ctx, v1::WatchRequest());
    v1::Event ev;
    EXPECT_FALSE(reader->Read(&ev));
    const grpc::Status st = reader->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
    EXPECT_THAT(st.error_message(), HasSubstr("--max-watchers-per-uid 2"));
  }
  ASSERT_TRUE(w1.running() && w2.running());

  // Root makes events the stalled watchers never take (as JSON, ~200
  // bytes each: more than a pipe, the socket buffers and the HTTP/2 window
  // hold); root's RPCs stay fast.
  auto c = Client::connect(d.socket(), 5s);
  ASSERT_TRUE(c.is_ok());
  std::chrono::milliseconds worst(0);
  const int rounds = 1000;
  for (int i = 0; i < rounds; ++i) {
    v1::SchedulerSpec s;
    s.set_name("churn" + std::to_string(i % 7));
    s.set_pool("cpu0");
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE((*c)->create(s).is_ok());
    ASSERT_TRUE((*c)->destroy(s.name(), false).is_ok());
    worst = std::max(worst, std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - t0));
  }
  // Each create and destroy fsyncs state.json twice: on a disk shared
  // with other work that alone can take seconds, so the bound here is
  // loose; the 1 s bound is on root's reads, below, with the stream full.
  EXPECT_LT(worst.count(), 5000) << "root's slowest create+destroy took " << worst.count() << " ms";
  const long rss_after = rss_kib(d.pid());
  std::cerr << "hostile: 2 stalled watchers, " << 2 * rounds << " events; root's slowest create+destroy "
            << worst.count() << " ms; uschedd RSS " << rss_before << " -> " << rss_after << " KiB\n";
  EXPECT_LT(rss_after, rss_before + rss_growth_allowed_kib(32 * 1024));
  EXPECT_LT(slowest_root_list(d, 20).count(), 1000);
  EXPECT_TRUE(w1.running() && w2.running()) << "the stalled watchers were dropped";
  // SIGTERM with the stalled streams still open: uschedd exits, promptly.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  std::cerr << "hostile: uschedd exited " << took.count() << " ms after SIGTERM\n";
  EXPECT_LT(took.count(), 5000) << d.log();
}

}  // namespace
}  // namespace usched::test
