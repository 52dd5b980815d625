//! The engine: the tree of schedulers, the members it tracks, and the glue
//! that makes Linux enforce them. Every method runs on the daemon's one
//! strand (the io_context thread), so nothing here takes a lock; the gRPC
//! threads post to it and wait. Errors come back as usched::Status and are
//! turned into gRPC codes in one place (server.cc).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "asio.h"
#include "exit_watch.h"
#include "usched/glue/glue.h"
#include "usched/glue/guardian.h"
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
  // Limits that keep one user from exhausting the daemon (0: no limit).
  // Entities count against their owner; root's are not counted.
  int max_entities_per_owner = 256;
  int max_members_per_entity = 4096;
};

class Gangs;

class Engine {
 public:
  // After reporting exits, the exit watch waits this long before it
  // reports more (ExitWatch): exits in a stream are handled in batches.
  static constexpr std::chrono::milliseconds kExitPause{20};
  // A member rebound on what was last read of it (check_member_task) is
  // read again this long after: a member rebound many times a second is
  // read once per period, not once per Bind.
  static constexpr std::chrono::milliseconds kRefreshDelay{20};

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
  // own_only (the placement socket): the task must be the caller's own
  // process, a thread of it, or a child it forked.
  Result<v1::BindResponse> bind(const Caller& c, const v1::BindRequest& r, bool own_only = false);
  // Runs fn (on the strand) once the member's pending cgroup move is done
  // and its placement applied again, when that move resets its affinity
  // to more CPUs than the tree gives it (cpuset_attach sets the group's
  // CPUs: a locked member's vcpu, a gang's spread, are narrower); at once
  // otherwise. A process that placed itself (the placement socket) is
  // answered only then, so that its first instruction runs where the tree
  // says, not for a moment on the whole group.
  void when_placed(MemberKey key, std::function<void()> fn);
  Result<v1::UnbindResponse> unbind(const Caller& c, int pid, int tid);
  // Hands `name` to uid (and gid, when given). See authz.cc for who may.
  Result<v1::Scheduler> chown(const Caller& c, const std::string& name, uint32_t uid,
                              std::optional<uint32_t> gid);

  // Converges the tree to a config (daemon/apply.cc): validates the whole
  // plan on a scratch tree first, then applies all of it or none of it.
  Result<v1::ApplyResponse> apply(const Caller& c, const v1::ApplyRequest& r);
  // Per-scheduler CPU time and members (daemon/stats.cc); samples first.
  v1::GetStatsResponse stats();

  // Gangs (engine_gang.cc; the co-scheduler is daemon/gang.h).
  Result<v1::Gang> create_gang(const Caller& c, const v1::GangSpec& spec);
  Status destroy_gang(const Caller& c, const std::string& sched, const std::string& gang);
  Result<v1::Gang> add_gang_member(const Caller& c, const v1::AddGangMemberRequest& r);
  Status remove_gang_member(const Caller& c, const v1::RemoveGangMemberRequest& r);
  v1::ListGangsResponse list_gangs(const std::string& sched) const;

  // Event subscribers are called on the strand; they must not block.
  using Subscriber = std::function<void(const v1::Event&)>;
  int subscribe(Subscriber s);
  void unsubscribe(int id);

  const glue::Glue& glue() const { return *glue_; }

 private:
  struct Tracked {
    std::unique_ptr<ExitWatch::Entry> exit_watch;  // owns the pidfd
    glue::TaskOrigin origin;
    std::string placed_cpus;   // what place() last applied
    SchedClass placed_class = SchedClass::kNormal;
    int placed_prio = -1;
    std::string joined;        // entity whose cgroup it was last sent to
    bool moving = false;       // a cgroup move is queued or running
    std::string recorded;      // entity the members files hold it in
    uint64_t generation = 0;
    int ppid = 0;              // its parent when /proc was last read (0: unknown)
  };

  Status check_writer(const Caller& c, const std::string& what) const;
  // authz.cc. May the caller create, change or destroy entities below
  // `parent` (root, or owner of `parent` or of one of its ancestors)?
  Status check_below(const Caller& c, const Entity& parent, const std::string& what) const;
  // May the caller bind to `target` a task that belongs to `task_uid`?
  Status check_bind(const Caller& c, const Entity& target, uint32_t task_uid) const;
  // Realtime entities only by root or below an entity with allow_realtime;
  // exclusive ones (they take CPUs from other users) only by root.
  Status check_privileged_spec(const Caller& c, const Entity& parent, const EntitySpec& s) const;
  Status check_entity_limit(uint32_t owner, int adding) const;
  Status check_member_limit(const Entity& e, MemberKey key) const;
  // The desired state as the state file holds it.
  v1::StateFile snapshot() const;
  // Writes the state: the members a tree change moved to members.log (see
  // MembersFile in state.proto), then state.json atomically (fsync, rename,
  // fsync of the directory). The error names the path and the reason.
  Status write_state();
  // Writes members.json (and empties members.log, which it then holds).
  Status write_members();
  // Appends what a Bind or an Unbind changed to members.log (not an exit:
  // a start-up drops members that are gone): one write(2), no fsync, no
  // rename. Rewrites members.json instead once the log has grown past a few
  // times its size.
  // The line says what the tree holds for `key` now (bound where, or not).
  Status log_member(MemberKey key);
  // Logs every member whose entity differs from what the files hold (a
  // destroy moved or released it).
  Status log_moved_members();
  // Adopts the members of a state or members file that are still the same
  // task (pid and start time); returns how many were adopted and dropped.
  std::pair<int, int> adopt_members(const google::protobuf::RepeatedPtrField<v1::StateMember>& ms);
  // Reads members.json and replays members.log when they belong to this
  // boot.
  Status load_members(const std::string& state_boot_id);
  std::string boot_id() const;
  std::string corrupt_file_;     // the members file load_state failed on, if any
  off_t members_written_ = 0;    // size of members.json; 0 until written
  off_t members_log_size_ = 0;   // of members.log
  mutable std::string boot_id_;  // the running kernel's, read once
  // Writes the state; when it cannot be written, puts the tree back as it
  // was in `before` and returns the error, so the RPC fails with nothing
  // changed (the kernel is only touched after the state is durable).
  Status commit(const v1::StateFile& before);
  // Rebuilds the tree from a snapshot (no kernel access).
  void restore_tree(const v1::StateFile& before);
  Status sync_groups();
  // Places every member whose CPUs or class no longer match the tree; the
  // first refusal (other than a task that is gone) is returned, after all
  // the others were tried.
  Status reconcile_members();
  Status place_member(const Member& m, const Entity& e, Tracked& t);
  void join_later(const Member& m, const Entity& e);
  void fire_placed(MemberKey key);
  // Whether moving the member into e's cgroup sets its affinity wider than
  // the tree gives it (cpuset_attach sets the group's CPUs): then it must
  // be placed again after the move.
  bool move_widens(const Entity& e, MemberKey key) const;
  void watch_exit(MemberKey key, Tracked& t);
  void member_exited(MemberKey key, uint64_t generation);
  // Reported by exits_: the task's pidfd is readable.
  void task_exited(MemberKey key);
  void sweep();
  // Takes a member out of its gang and returns it to where it came from
  // (unless the caller did that already: restored).
  void release(const Member& m, bool restored = false);
  Result<glue::TaskInfo> check_task(int pid, int tid) const;
  // check_task for a task about to be bound. A member bound before and
  // held by a live pidfd is that same task (no pid reuse), and not a
  // kernel thread: its start time is the one recorded, and only its status
  // is read again (uid, parent), unless need_uid is false (root binds it:
  // no uid to check): then nothing is read and *cached says the uid and
  // parent are those last read, for refresh_later to read again after the
  // answer. Anything else: check_task.
  Result<glue::TaskInfo> check_member_task(MemberKey key, bool need_uid, bool* cached) const;
  // Reads a member's uid and parent again; records a changed uid.
  void refresh_member(MemberKey key);
  // refresh_member for each member named meanwhile, kRefreshDelay after the
  // first of them.
  void refresh_later(MemberKey key);
  v1::Scheduler to_proto(const Entity& e) const;
  void publish(v1::Event::Kind kind, const std::string& scheduler, int pid = 0, int tid = 0,
               const std::string& detail = "");
  void save_state();
  Status load_state(const std::string& text);
  Status create_defaults();
  // Credits each member's CPU time since the last sample to its entity.
  void account();
  std::chrono::steady_clock::time_point stats_wanted_until_{};

  // Takes the state directory's lock (waiting for the guardian of an
  // uschedd that died to finish thawing) and starts our own guardian.
  Status start_guardian();
  // Respawns the guardian whenever it exits while we run.
  void watch_guardian();

  asio::io_context& io_;
  std::unique_ptr<glue::Glue> glue_;
  // The guardian that thaws every gang if uschedd dies (none with the fake
  // glue), and the lock on the state directory it holds with us. (s)
  int lock_fd_ = -1;
  std::unique_ptr<glue::Guardian> guardian_;
  std::unique_ptr<asio::posix::stream_descriptor> guardian_watch_;
  EngineOptions opts_;
  glue::ProcFs proc_;
  std::unique_ptr<Tree> tree_;
  // Members' exits (before tracked_, whose pidfds it holds: they go first).
  ExitWatch exits_;
  std::map<MemberKey, Tracked> tracked_;
  // Members released while their cgroup move was queued: where to return
  // them once more when the move has run (join_later).
  std::map<MemberKey, glue::TaskOrigin> released_while_moving_;
  // when_placed's callers waiting for a member's move (join_later).
  std::map<MemberKey, std::vector<std::function<void()>>> placed_waiters_;
  uint64_t next_generation_ = 1;
  std::map<int, Subscriber> subscribers_;
  int next_subscriber_ = 1;
  asio::steady_timer sweep_timer_;
  // Members waiting for refresh_later's timer.
  std::set<MemberKey> stale_;
  asio::steady_timer refresh_timer_;
  // cgroup moves wait for an RCU grace period (~10 ms): they run here, off
  // the strand, so a Bind answers once affinity and class are applied.
  asio::thread_pool joiner_{1};
  bool stopping_ = false;
  // The gang co-scheduler, made in start() once the tree exists. (s)
  std::unique_ptr<Gangs> gangs_;
  // Entities made or last set by a config (apply, --config, SIGHUP). (s)
  std::set<std::string> from_config_;
  // CPU accounting (stats.cc): last cpu_us seen per member, and the total
  // credited to each entity. (s)
  std::map<MemberKey, uint64_t> member_cpu_;
  std::map<std::string, uint64_t> entity_cpu_us_;
};

}  // namespace usched::daemon
