//! Item 6 of the performance issue: 1000 schedulers in a tree and 10000
//! bound members. The 10000 are sleeping threads of this program (a
//! member is a pid or a pid+tid; 10000 processes would only add fork
//! cost), bound through the fake glue, since 10000 real cgroup moves take
//! ~10 ms each (an RCU grace period) and measure the kernel, not usched.
//! Measured: daemon RSS (goal <= 64 MiB), ListSchedulers latency (goal
//! <= 20 ms), restart with reconciliation of all of them (goal <= 2 s).
//! Then, with the real glue as root: resizing a scheduler that has 1000
//! member threads (goal <= 50 ms), the RPC until every thread is placed.
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "support/bench_util.h"
#include "usched/client.h"

using namespace usched;
using namespace usched::bench;
using namespace std::chrono_literals;

namespace {

// N sleeping threads with small stacks; their tids.
class Sleepers {
 public:
  explicit Sleepers(int n) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 * 1024);
    tids_.resize(n);
    threads_.resize(n);
    for (int i = 0; i < n; ++i) {
      slot_ = i;
      if (pthread_create(&threads_[i], &a, &Sleepers::body, this) != 0) die("pthread_create");
      std::unique_lock l(m_);
      started_cv_.wait(l, [&] { return started_ == i + 1; });
    }
    pthread_attr_destroy(&a);
  }
  ~Sleepers() {
    {
      std::lock_guard l(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) pthread_join(t, nullptr);
  }
  const std::vector<int>& tids() const { return tids_; }

 private:
  static void* body(void* p) {
    auto* s = static_cast<Sleepers*>(p);
    std::unique_lock l(s->m_);
    s->tids_[s->slot_] = static_cast<int>(::syscall(SYS_gettid));
    ++s->started_;
    s->started_cv_.notify_one();
    s->cv_.wait(l, [&] { return s->stop_; });
    return nullptr;
  }
  std::mutex m_;
  std::condition_variable cv_;          // stop: wakes the sleepers once
  std::condition_variable started_cv_;  // a start wakes only the creator
  int slot_ = 0, started_ = 0;
  bool stop_ = false;
  std::vector<int> tids_;
  std::vector<pthread_t> threads_;
};

std::unique_ptr<Client> connect(const test::Daemon& d) {
  auto c = Client::connect(d.socket());
  if (!c) die(c.status().message());
  (*c)->set_timeout(60s);
  return std::move(*c);
}

// Binds tids[i] to names[i % names.size()] from `threads` clients.
void bind_all(const test::Daemon& d, const std::vector<int>& tids,
              const std::vector<std::string>& names, int threads) {
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      auto c = connect(d);
      for (size_t i = t; i < tids.size(); i += threads) {
        auto r = c->bind(names[i % names.size()], ::getpid(), tids[i]);
        if (!r) die("bind tid " + std::to_string(tids[i]) + ": " + r.status().message());
      }
    });
  }
  for (auto& th : ts) th.join();
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, 10000);
  const int n_sched = args.quick ? 50 : 1000;
  const int n_members = args.quick ? 300 : 10000;
  const int n_resize = args.quick ? 50 : 1000;

  {
    test::Daemon d({"--glue", "fake", "--fake-cpus", "0-1"});
    Owned own_d(d);
    if (!d.start()) die("uschedd did not start: " + d.log());
    auto c = connect(d);
    // 20 top-level schedulers, the rest below them: a tree, not a list.
    std::vector<std::string> names;
    const int tops = 20;
    double t0 = now_us();
    for (int i = 0; i < n_sched; ++i) {
      v1::SchedulerSpec s;
      std::string name = "t";
      name += std::to_string(i < tops ? i : i % tops);
      if (i >= tops) name.append("/c").append(std::to_string(i));
      s.set_name(name);
      if (auto r = c->create(s); !r) die("create " + s.name() + ": " + r.status().message());
      names.push_back(s.name());
    }
    result("scale.create_each", (now_us() - t0) / n_sched, "us", "(" + std::to_string(n_sched) + " schedulers)");
    Sleepers sl(n_members);
    t0 = now_us();
    bind_all(d, sl.tids(), names, 8);
    result("scale.bind_each", (now_us() - t0) / n_members, "us",
           "(" + std::to_string(n_members) + " thread members, 8 clients)");
    result("scale.daemon_rss", test::rss_kib(d.pid()) / 1024.0, "MiB", "goal <= 64 MiB");
    std::vector<double> lat;
    for (int i = 0; i < 5; ++i) {
      t0 = now_us();
      auto r = c->list();
      lat.push_back((now_us() - t0) / 1000);
      if (!r || r->schedulers_size() < n_sched) die("list");
    }
    result("scale.list_schedulers", median(lat), "ms", "goal <= 20 ms");
    c.reset();
    stopped(d);
    std::vector<double> restart;
    for (int i = 0; i < (args.quick ? 1 : 3); ++i) {
      test::Daemon d2({"--glue", "fake", "--fake-cpus", "0-1"}, d.state_dir());
      Owned own_d2(d2);
      t0 = now_us();
      if (!d2.start()) die("uschedd did not restart: " + d2.log());
      restart.push_back((now_us() - t0) / 1000);
      auto c2 = connect(d2);
      auto g = c2->get(names.back());
      if (!g || g->members_size() == 0) die("members were not adopted on restart");
      c2.reset();
      stopped(d2);
    }
    result("scale.restart", median(restart), "ms",
           "goal <= 2000 ms (exec until `usched list` answers, " + std::to_string(n_members) +
               " members adopted)");
  }

  if (cgroups_writable()) {
    test::Daemon d(daemon_flags());
    Owned own_d(d);
    if (!d.start()) die("uschedd did not start: " + d.log());
    auto c = connect(d);
    if (d.cli({"R", "on", "cpu0-1"}).exit_code != 0) die("create R: " + d.log());
    Sleepers sl(n_resize);
    bind_all(d, sl.tids(), {"R"}, 4);
    std::vector<double> lat;
    const char* pools[] = {"cpu0", "cpu1"};
    for (int i = 0; i < (args.quick ? 2 : 7); ++i) {
      v1::SchedulerSpec s;
      s.set_name("R");
      s.set_pool(pools[i % 2]);
      const double t0 = now_us();
      auto r = c->update(s, {"pool"});
      lat.push_back((now_us() - t0) / 1000);
      if (!r) die("resize: " + r.status().message());
      // Placed before the answer: check one thread.
      std::string st = test::read_file("/proc/self/task/" + std::to_string(sl.tids().back()) + "/status");
      if (st.find(std::string("Cpus_allowed_list:\t") + (i % 2 ? "1" : "0")) == std::string::npos)
        die("resize answered before the members were placed");
    }
    result("scale.resize_" + std::to_string(n_resize) + "_threads", median(lat), "ms", "goal <= 50 ms");
    c.reset();
    stopped(d);
  }
  return 0;
}
