//! The co-scheduler: per scheduler with gangs, an Ousterhout matrix
//! (usched/gang.h) whose rows rotate every quantum on an Asio timer on the
//! daemon's strand: the current row's gangs are thawed, the others frozen,
//! through the glue's freezer (confirmed before the quantum counts). Members
//! outside gangs are never touched. A 20 ms poll picks up threads that
//! gang processes create, spreads every gang's threads one per vcpu over its
//! columns, drops members that exited and samples the kernel's per-thread
//! run time for the co-run ratio and the bsd4 policy's charge.
//!
//! Safety: stop() thaws every gang; so does every error path of a freeze;
//! an inactive (empty) gang is thawed before it leaves the matrix; the glue
//! thaws every usched freezer group at start-up.
//!
//! Legend: every field is (s): touched on the strand only.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "asio.h"
#include "usched/gang.h"
#include "usched/glue/glue.h"
#include "usched/glue/proc.h"
#include "usched/tree.h"
#include "usched/v1/state.pb.h"
#include "usched/v1/usched.pb.h"

namespace usched::daemon {

class Gangs {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kPoll = std::chrono::milliseconds(20);
  static constexpr int kDefaultQuantumMs = 20;

  // `tree` is the engine's pointer, read at each use: the engine may replace
  // the tree (a rolled-back transaction).
  Gangs(asio::io_context& io, glue::Glue& glue, const glue::ProcFs& proc, const std::unique_ptr<Tree>& tree);
  ~Gangs();

  Result<v1::Gang> create(const v1::GangSpec& spec);
  Status destroy(const std::string& entity, const std::string& gang);
  // The task is already bound to `entity` (the engine did it). `threads`:
  // a thread name glob (a whole process only): just the matching threads
  // join the freezer group, one by one, now and as they appear.
  Result<v1::Gang> add_member(const std::string& entity, const std::string& gang, MemberKey key,
                              uint64_t start_time, const std::string& threads = "");
  // strict: fails, keeping the member, when the kernel keeps it in the
  // gang's freezer group (otherwise it is taken out all the same).
  Status remove_member(const std::string& entity, const std::string& gang, MemberKey key, bool strict = false);
  v1::ListGangsResponse list(const std::string& entity) const;
  bool has(const std::string& entity, const std::string& gang) const;
  // Takes the member out of whatever gang holds it (unbind, exit).
  void forget(MemberKey key);
  // Gangs whose scheduler left the tree are destroyed now (their groups
  // removed, counters retired), so a scheduler destroyed and made again
  // under the same name never finds the old one's gangs, and ListGangs
  // never answers a gang of a scheduler that is gone. The engine calls it
  // after every change that can destroy a scheduler; the poll also does.
  void prune();
  // Gang of a member, "" when none (for `usched show`).
  std::string gang_of(const std::string& entity, MemberKey key) const;

  // The engine moved or re-placed a member (a cgroup move resets affinity):
  // spread its threads again. On cgroup v2 the move into the entity's
  // "@members" group also took the process out of its gang's freezer
  // group (a sibling): it joins the gang again.
  void replaced(MemberKey key);

  // ---- durability (the engine writes the state before an RPC answers) ----
  // Adds every gang to the state file: spec and members. A gang whose
  // scheduler has left the tree, a member no longer bound to the gang's
  // scheduler (or bound anew: another start time), and what is staged to
  // go (below) are left out, so the file always agrees with its members.
  void save(v1::StateFile& f) const;
  // At start-up, once the schedulers exist and the members still alive are
  // adopted: re-creates the gangs and re-adds (re-joins to the freezer
  // group) the members that are still bound to the gang's scheduler with
  // the same start time. What cannot be re-created is logged and left
  // out; start-up goes on.
  void load(const v1::StateFile& f);
  // Staging for a write that must come before the change: a gang or a
  // member marked here is left out of save() while it still runs, so the
  // state can be written first and the change made only once it is
  // durable; unmark when the write failed. NOT_FOUND as destroy and
  // remove_member say it.
  Status stage_destroy(const std::string& entity, const std::string& gang, bool staged);
  Status stage_remove(const std::string& entity, const std::string& gang, MemberKey key, bool staged);
  // Takes back a create whose state could not be written: the gang is
  // empty, so no kernel group exists yet; nothing is logged as destroyed.
  void undo_create(const std::string& entity, const std::string& gang);

  // Per-scheduler figures for GetStats (`usched top`, metrics). The
  // counters include gangs destroyed since uschedd started, so they never
  // go down while it runs.
  struct Totals {
    int gangs = 0;             // gangs now
    int slots = 0;             // rows (time slots) of the matrix now
    uint64_t switches = 0;     // row switches: rotations of the matrix
    uint64_t frozen_us = 0;    // time the gangs spent frozen, ongoing included
  };
  Totals totals(const std::string& entity) const;
  // Per gang figures for the metrics: skew, co-run ratio, threads.
  void samples(v1::GetStatsResponse& out) const;
  // Thaws everything and stops the timers; idempotent.
  void stop();

 private:
  struct Thread {
    int vcpu = -1;           // column it is pinned to
    uint64_t run_ns = 0;     // last schedstat sample
    bool sampled = false;
    uint64_t lead_us = 0;    // skew: CPU time run ahead of the gang's slowest runnable thread
  };
  struct GangMember {
    uint64_t start_time = 0;
    bool staged_out = false;  // stage_remove(): left out of save()
    std::map<int, Thread> threads;  // by tid
    // Thread name glob ("" = every thread). With one, `threads` holds the
    // matching threads (each joined to the freezer group on its own) and
    // `outside` the others seen so far (kept out of the group).
    std::string glob;
    std::set<int> outside;
    std::set<int> refused;  // matching threads the freezer refused (warned once)
  };
  struct Stats {
    uint64_t slots_run = 0, switches = 0;
    int64_t frozen_us = 0, running_us = 0;
    double freeze_sum = 0, freeze_max = 0, thaw_sum = 0, thaw_max = 0;
    uint64_t freezes = 0, thaws = 0;
    double corun_us = 0, sampled_us = 0;
    int64_t cpu_us_quantum = 0;  // CPU used since the current quantum began (bsd4 charge)
  };
  struct Gang {
    uint64_t order = 0;       // creation order: the matrix packs in it, save() keeps it
    bool staged_out = false;  // stage_destroy(): left out of save()
    int width = 0;
    int quantum_ms = kDefaultQuantumMs;
    std::map<MemberKey, GangMember> members;
    bool frozen = false;
    Clock::time_point since;  // of the current frozen/running period
    Clock::time_point last_sample;
    Stats stats;
  };
  struct Sched {
    explicit Sched(asio::io_context& io, int vcpus) : matrix(vcpus), timer(io) {}
    GangMatrix matrix;
    std::unique_ptr<GangPolicy> policy;
    std::string policy_name;
    std::map<std::string, Gang> gangs;
    int current = -1;  // row running now; -1: none (all thawed)
    Clock::time_point quantum_start;
    uint64_t rotations = 0;
    asio::steady_timer timer;
    uint64_t epoch = 0;  // bumped on every reschedule: stale timer callbacks ignore themselves
  };

  Sched* find(const std::string& entity);
  const Sched* find(const std::string& entity) const;
  v1::Gang to_proto(const std::string& entity, const Sched& s, const std::string& name, const Gang& g) const;
  // After the matrix changed: re-spread, restart the rotation (or thaw all
  // when there is one row or none).
  void repack(const std::string& entity, Sched& s);
  void rotate(const std::string& entity, Sched& s);
  // The switch to another row is given up because gang `stuck` would not
  // freeze: its row runs on, every other gang is frozen.
  void hold(const std::string& entity, Sched& s, const std::string& stuck);
  // The longest quantum of the gangs whose home is row r.
  int row_quantum(const Sched& s, int r) const;
  void arm(const std::string& entity, Sched& s, int quantum_ms);
  Status set_frozen(const std::string& entity, const std::string& name, Gang& g, bool frozen);
  // Thread discovery, placement and schedstat sampling of one gang.
  void refresh(const std::string& entity, const std::string& name, Gang& g, bool place_all);
  // The tids of a glob member now: matching threads join the freezer
  // group, threads that stopped matching leave it, the others are kept
  // out. nullopt when the process is gone.
  std::optional<std::vector<int>> glob_threads(const std::string& entity, const std::string& name, MemberKey key,
                                               GangMember& m);
  void sample(Gang& g, Clock::time_point now);
  // The largest lead of any thread of the gang (GangStats.skew_us).
  static uint64_t skew_us(const Gang& g);
  void place_thread(const std::string& entity, const Sched& s, const std::string& name, MemberKey key,
                    int tid, Thread& t);
  void poll();
  void arm_poll();
  void thaw_everything();
  // Frozen time of a gang so far, the ongoing frozen period included.
  static int64_t frozen_us_now(const Gang& g, Clock::time_point now);
  // A gang or a whole scheduler leaves: its counters go to retired_.
  void retire(const std::string& entity, const Sched& s, const std::string& gang);
  void retire_all(const std::string& entity, const Sched& s);
  // SCHED_RR for the strand's thread, once the first gang exists.
  void raise_priority();
  static constexpr int kStrandRtPriority = 30;
  bool raised_ = false;

  asio::io_context& io_;
  glue::Glue& glue_;
  const glue::ProcFs& proc_;
  const std::unique_ptr<Tree>& tree_;
  std::map<std::string, std::unique_ptr<Sched>> scheds_;  // by entity
  uint64_t next_order_ = 1;
  // Counters of gangs (and rotations of matrices) that are gone, by entity
  // name, so the per-scheduler totals stay monotonic.
  struct Retired {
    uint64_t switches = 0;
    uint64_t frozen_us = 0;
  };
  std::map<std::string, Retired> retired_;
  asio::steady_timer poll_timer_;
  bool stopped_ = false;
  bool polling_ = false;  // poll_timer_ is armed
  bool repacking_ = false;  // inside repack(): refresh() must not repack again
};

}  // namespace usched::daemon
