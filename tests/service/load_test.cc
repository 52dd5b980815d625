// Tier 2: 32 clients at once doing create/bind/list/destroy against one
// uschedd (fake glue) for a bounded time (USCHED_LOAD_SECONDS, default 20),
// then checked: no error that was not expected, the tree as it was, and the
// daemon's resident memory back near where it was after warm-up.
// Also the limits and hostile requests a user could send.
#include <atomic>
#include <mutex>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/harness.h"
#include "usched/client.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;

int load_seconds() {
  const char* v = std::getenv("USCHED_LOAD_SECONDS");
  return v && std::atoi(v) > 0 ? std::atoi(v) : 20;
}

std::unique_ptr<Client> connect(const Daemon& d) {
  auto c = Client::connect(d.socket(), 5s);
  EXPECT_TRUE(c.is_ok()) << c.status().message();
  return c.is_ok() ? std::move(*c) : nullptr;
}

// One client's round: a scheduler of its own, its process bound, a list,
// a look, and the scheduler destroyed again. Returns the first error.
Status round(Client& c, const std::string& name, pid_t pid) {
  v1::SchedulerSpec s;
  s.set_name(name);
  s.set_pool("cpu0-1");
  s.set_locked(true);
  if (auto r = c.create(s); !r) return r.status();
  if (auto r = c.bind(name, pid); !r) return r.status();
  auto l = c.list();
  if (!l) return l.status();
  auto g = c.get(name);
  if (!g) return g.status();
  if (g->members_size() != 1 || g->members(0).pid() != pid) {
    return internal(name + " does not show its one member");
  }
  if (auto r = c.destroy(name, true); !r) return r.status();
  return Status::ok();
}

TEST(LoadTest, ThirtyTwoClientsLeaveNoErrorNoLeftoverAndNoGrowth) {
  Daemon d({"--glue", "fake", "--fake-cpus", "0-3"});
  ASSERT_TRUE(d.start()) << d.log();
  constexpr int kClients = 32;
  std::vector<std::unique_ptr<Child>> kids;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    kids.push_back(std::make_unique<Child>());
    clients.push_back(connect(d));
    ASSERT_TRUE(clients.back());
    clients.back()->set_timeout(30s);
  }
  std::mutex mu;
  std::vector<std::string> errors;
  std::atomic<long> rounds{0};
  auto storm = [&](std::chrono::steady_clock::time_point until, bool once) {
    std::vector<std::thread> ts;
    for (int i = 0; i < kClients; ++i) {
      ts.emplace_back([&, i] {
        do {
          Status s = round(*clients[i], "L" + std::to_string(i), kids[i]->pid());
          ++rounds;
          if (!s) {
            std::lock_guard<std::mutex> l(mu);
            errors.push_back("client " + std::to_string(i) + ": " + s.message());
            return;
          }
        } while (!once && std::chrono::steady_clock::now() < until);
      });
    }
    for (auto& t : ts) t.join();
  };
  // Warm-up: gRPC's threads and the allocator's arenas are made once.
  storm(std::chrono::steady_clock::now(), true);
  ASSERT_TRUE(errors.empty()) << errors.front();
  const long warm = rss_kib(d.pid());
  ASSERT_GT(warm, 0);

  storm(std::chrono::steady_clock::now() + std::chrono::seconds(load_seconds()), false);
  EXPECT_TRUE(errors.empty()) << errors.size() << " errors, first: " << errors.front();
  const long after = rss_kib(d.pid());
  std::cerr << "load: " << rounds << " rounds by " << kClients << " clients in "
            << load_seconds() << " s; uschedd RSS " << warm << " KiB after warm-up, " << after
            << " KiB after\n";

  // The tree is as it was before: the defaults, nobody bound.
  auto l = clients[0]->list();
  ASSERT_TRUE(l.is_ok()) << l.status().message();
  std::vector<std::string> names;
  for (const auto& s : l->schedulers()) {
    names.push_back(s.spec().name());
    EXPECT_EQ(s.members_size(), 0) << s.spec().name();
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("IDLE", "NORM", "REAL"));
  EXPECT_LT(after, warm + rss_growth_allowed_kib(16 * 1024))
      << "uschedd grew from " << warm << " KiB to " << after << " KiB";
  EXPECT_EQ(d.stop(SIGTERM), 0);
}

TEST(LimitsTest, MembersPerEntityAndRequestSizeAreResourceExhaustedNamingTheLimit) {
  Daemon d({"--glue", "fake", "--fake-cpus", "0-3", "--max-members-per-entity", "2",
            "--max-request-bytes", "4096"});
  ASSERT_TRUE(d.start()) << d.log();
  auto c = connect(d);
  ASSERT_TRUE(c);
  Child a, b, x;
  ASSERT_TRUE(c->bind("NORM", a.pid()).is_ok());
  ASSERT_TRUE(c->bind("NORM", b.pid()).is_ok());
  auto r = c->bind("NORM", x.pid());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_THAT(r.status().message(), HasSubstr("--max-members-per-entity"));
  // Re-binding a member that is already there is not a new one.
  EXPECT_TRUE(c->bind("NORM", a.pid()).is_ok());

  v1::SchedulerSpec big;
  big.set_name("BIG");
  big.set_pool(std::string(100000, '1'));
  auto cr = c->create(big);
  ASSERT_FALSE(cr.is_ok());
  EXPECT_EQ(cr.status().code(), Code::kResourceExhausted);
  EXPECT_THAT(cr.status().message(), HasSubstr("4096"));
  // And the daemon still answers.
  EXPECT_TRUE(c->list().is_ok());
}

TEST(HostileInputTest, EveryMalformedRequestIsRefusedBeforeTheKernel) {
  TempDir logs;
  const std::string fake_log = logs / "fake.log";
  Daemon d({"--glue", "fake", "--fake-cpus", "0-3", "--fake-log", fake_log});
  ASSERT_TRUE(d.start()) << d.log();
  auto c = connect(d);
  ASSERT_TRUE(c);
  const std::string before = read_file(fake_log);
  struct Case {
    std::string name, pool;
    int vcpus;
    int lwktpri;
  };
  for (const Case& k : std::vector<Case>{{"../etc", "cpu0", 0, 6},
                                         {"a/../../x", "cpu0", 0, 6},
                                         {"NORM/..", "cpu0", 0, 6},
                                         {std::string(5000, 'n'), "cpu0", 0, 6},
                                         {"bad name", "cpu0", 0, 6},
                                         {"X", "cpu99", 0, 6},
                                         {"X", "cpu4294967296", 0, 6},
                                         {"X", "cpu-1", 0, 6},
                                         {"X", "cpu0", -1, 6},
                                         {"X", "cpu0", 2147483647, 6},
                                         {"X", "cpu0", 0, -1},
                                         {"X", "cpu0", 0, 2147483647}}) {
    v1::SchedulerSpec s;
    s.set_name(k.name);
    s.set_pool(k.pool);
    s.set_vcpus(k.vcpus);
    s.set_lwktpri(k.lwktpri);
    auto r = c->create(s);
    EXPECT_FALSE(r.is_ok()) << k.name.substr(0, 20) << " " << k.pool;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument)
        << k.name.substr(0, 20) << " " << k.pool << ": " << r.status().message();
  }
  // Kernel thread (kthreadd is pid 2), init, the daemon, a tid of another process.
  Child other;
  for (auto [pid, tid] : std::vector<std::pair<int, int>>{
           {2, 0}, {1, 0}, {d.pid(), 0}, {-5, 0}, {0, 0}, {static_cast<int>(::getpid()), other.pid()}}) {
    auto r = c->bind("NORM", pid, tid);
    EXPECT_FALSE(r.is_ok()) << pid << " " << tid;
  }
  EXPECT_EQ(read_file(fake_log), before) << "a refused request reached the glue";
  auto l = c->list();
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ(l->schedulers_size(), 3);
}

}  // namespace
}  // namespace usched::test
