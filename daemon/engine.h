//! The engine: the tree of schedulers, the members it tracks, and the glue
//! that makes Linux enforce them. Every method runs on the daemon's one
//! strand (the io_context thread), so nothing here takes a lock; the gRPC
//! threads post to it and wait. Errors come back as usched::Status and are
//! turned into gRPC codes in one place (server.cc).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "asio.h"
#include "usched/glue/glue.h"
#include "usched/glue/proc.h"
#include "usched/names.h"
#include "usched/tree.h"
#include "usched/v1/state.pb.h"
#include "usched/v1/usched.pb.h"

namespace usched::daemon {

// Who is calling, from SO_PEERCRED on the connection (never the request).
struct Caller {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  bool root() const { return uid == 0; }
};

struct EngineOptions {
  std::string state_dir = "/var/lib/usched";
  bool defaults = true;  // create IDLE, NORM, REAL when there is no state
};

class Engine {
 public:
  Engine(asio::io_context& io, std::unique_ptr<glue::Glue> glue, EngineOptions o);
  ~Engine();

  // Sets up the glue, loads the state file (or creates the defaults),
  // re-applies every group and adopts members that are still alive.
  Status start();
  // Graceful stop. With cleanup, every member is returned to where it came
  // from and every cgroup of ours removed; otherwise members stay placed
  // and the state file keeps them for the next start.
  void stop(bool cleanup);

  Result<v1::Scheduler> create(const Caller& c, const v1::SchedulerSpec& spec);
  Result<v1::Scheduler> update(const Caller& c, const v1::SchedulerSpec& spec,
                               const std::vector<std::string>& mask);
  Result<v1::DestroySchedulerResponse> destroy(const Caller& c, const std::string& name, bool force);
  Result<v1::Scheduler> get(const std::string& name) const;
  v1::ListSchedulersResponse list() const;
  Result<v1::BindResponse> bind(const Caller& c, const v1::BindRequest& r);
  Result<v1::UnbindResponse> unbind(const Caller& c, int pid, int tid);

  // Event subscribers are called on the strand; they must not block.
  using Subscriber = std::function<void(const v1::Event&)>;
  int subscribe(Subscriber s);
  void unsubscribe(int id);

  const glue::Glue& glue() const { return *glue_; }

 private:
  struct Tracked {
    std::unique_ptr<asio::posix::stream_descriptor> exit_watch;  // owns the pidfd
    glue::TaskOrigin origin;
    std::string placed_cpus;   // what place() last applied
    SchedClass placed_class = SchedClass::kNormal;
    int placed_prio = -1;
    std::string joined;        // entity whose cgroup it was last moved into
    uint64_t generation = 0;
  };

  Status check_writer(const Caller& c, const std::string& what) const;
  Status sync_groups();
  // Places every member whose CPUs or class no longer match the tree.
  void reconcile_members();
  Status place_member(const Member& m, const Entity& e, Tracked& t);
  void join_later(const Member& m, const Entity& e);
  void watch_exit(MemberKey key, Tracked& t);
  void member_exited(MemberKey key, uint64_t generation);
  void sweep();
  void release(const Member& m);
  Result<glue::TaskInfo> check_task(int pid, int tid) const;
  v1::Scheduler to_proto(const Entity& e) const;
  void publish(v1::Event::Kind kind, const std::string& scheduler, int pid = 0, int tid = 0,
               const std::string& detail = "");
  void save_state();
  Status load_state(const std::string& text);
  Status create_defaults();

  asio::io_context& io_;
  std::unique_ptr<glue::Glue> glue_;
  EngineOptions opts_;
  glue::ProcFs proc_;
  std::unique_ptr<Tree> tree_;
  std::map<MemberKey, Tracked> tracked_;
  uint64_t next_generation_ = 1;
  std::map<int, Subscriber> subscribers_;
  int next_subscriber_ = 1;
  asio::steady_timer sweep_timer_;
  // cgroup moves wait for an RCU grace period (~10 ms): they run here, off
  // the strand, so a Bind answers once affinity and class are applied.
  asio::thread_pool joiner_{1};
  bool stopping_ = false;
};

}  // namespace usched::daemon
