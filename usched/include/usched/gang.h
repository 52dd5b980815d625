//! Gangs, the userland co-scheduler's pure half: the Ousterhout matrix of
//! one entity and the policies that pick which of its rows runs next.
//!
//! The matrix: columns are the entity's vcpus, each row a time slot. Every
//! gang has a home row and K fixed columns in it (its vcpus: member threads
//! are pinned there, so they never move when rows rotate). Gangs are packed
//! first-fit, widest first. A row's idle columns run any other gang whose
//! columns are all idle in that row ("alternate scheduling"), so a gang may
//! run in several slots. With one row nothing ever stops.
//!
//! Policies are shaped after NetBSD's common scheduler framework (CSF):
//! enqueue, dequeue, next, tick (quantum expiry), charge (schedclock: CPU
//! time used). Their unit is a row. Time is passed in, never read, so the
//! tests drive them on a fake clock.
//!
//! Legend: (s) changed by GangMatrix methods only, (d) derived by pack().
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "usched/result.h"

namespace usched {

using Micros = int64_t;

struct GangSlot {
  int row = -1;
  std::vector<int> columns;  // the gang's vcpus, ascending, size == width
};

class GangMatrix {
 public:
  explicit GangMatrix(int vcpus);

  int vcpus() const { return vcpus_; }
  // Fails (INVALID_ARGUMENT) when width is not 1..vcpus, ALREADY_EXISTS
  // when the name is taken. Active gangs take slots; inactive (empty) ones
  // do not.
  Status add(const std::string& gang, int width);
  Status remove(const std::string& gang);
  // An empty gang stops taking slots: set_active(g, false) repacks.
  Status set_active(const std::string& gang, bool active);
  bool has(const std::string& gang) const { return gangs_.count(gang) != 0; }
  int width(const std::string& gang) const;

  int rows() const { return static_cast<int>(rows_.size()); }
  // Home gangs of row r, in packing order.
  const std::vector<std::string>& row(int r) const { return rows_.at(static_cast<size_t>(r)); }
  // Every gang that runs while row r is current: its home gangs plus the
  // gangs whose columns are all idle in r.
  const std::set<std::string>& runs_in(int r) const { return runs_.at(static_cast<size_t>(r)); }
  // Home slot of an active gang; row -1 for an inactive or unknown one.
  GangSlot slot(const std::string& gang) const;
  // Columns used by row r's home gangs (no column twice: checked by tests).
  std::vector<int> used_columns(int r) const;

 private:
  void pack();
  struct Gang {
    int width = 0;
    bool active = true;
    uint64_t order = 0;  // creation order: stable tie-break when packing
  };
  int vcpus_;
  uint64_t next_order_ = 0;
  std::map<std::string, Gang> gangs_;              // (s)
  std::map<std::string, GangSlot> slots_;          // (d)
  std::vector<std::vector<std::string>> rows_;     // (d)
  std::vector<std::set<std::string>> runs_;        // (d)
};

// ---- policies ---------------------------------------------------------------

class GangPolicy {
 public:
  virtual ~GangPolicy() = default;
  virtual const char* name() const = 0;
  // Resets the run queue to rows 0..rows-1, all runnable (called after every
  // repack; rows are renumbered then, so history is kept per row index only
  // where the policy says so).
  virtual void reset(int rows) = 0;
  // A row becomes runnable / stops being runnable.
  virtual void enqueue(int row) = 0;
  virtual void dequeue(int row) = 0;
  // Picks the row to run for the next quantum and takes it off the queue.
  // -1 when nothing is queued. Danger: the caller must enqueue() (through
  // tick) the row it ran, or it is never picked again.
  virtual int next() = 0;
  // The current row's quantum expired at `now`: requeue it.
  virtual void tick(int row, Micros now) = 0;
  // schedclock: `row` used `cpu` microseconds of CPU (summed over its
  // threads, as read from the kernel) during a quantum of `quantum`.
  virtual void charge(int row, Micros cpu, Micros quantum, Micros now) = 0;
};

// Rows in turn: 0, 1, ..., R-1, 0, ...
std::unique_ptr<GangPolicy> make_rr_policy();

// 4.4BSD decay usage: 32 run queues, a bit mask of the non-empty ones
// searched with find-first-set; queue = base(lwktpri) + estcpu / 8, where
// charge adds 8 per full quantum of CPU per vcpu of the row, and once a
// second estcpu *= 2*load / (2*load + 1), load being the runnable rows. A
// row that waits decays and rises; the one that ran sinks.
std::unique_ptr<GangPolicy> make_bsd4_policy(int lwktpri, int vcpus);

// "rr" | "bsd4"; INVALID_ARGUMENT naming the choices otherwise.
Result<std::unique_ptr<GangPolicy>> make_gang_policy(std::string_view name, int lwktpri, int vcpus);

// The bsd4 internals, exposed for tests.
namespace bsd4 {
inline constexpr int kQueues = 32;
inline constexpr int kEstcpuPerQueue = 8;
inline constexpr int kEstcpuMax = kQueues * kEstcpuPerQueue;
int base_queue(int lwktpri);  // 0 for lwktpri 31 .. 7 for lwktpri 0
int decay(int estcpu, int load);
// Index of the lowest set bit, -1 for 0 (what ffs(3) returns, minus one).
int find_first_set(uint32_t mask);
}  // namespace bsd4

}  // namespace usched
