//! The entity tree: named schedulers nested under an implicit root whose
//! vcpus are the machine's CPUs 1:1. Resolves every vcpu to physical CPUs,
//! applies exclusive entities and offline CPUs, reports starved entities,
//! and places locked members. Pure: no I/O; the daemon drives it on its one
//! strand and turns its answers into kernel writes.
//!
//! Legend: (c) constant after creation, (s) changed by Tree methods only,
//! (d) derived: recomputed by resolve() after every change.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "usched/cpuset.h"
#include "usched/lwkt.h"
#include "usched/pool.h"
#include "usched/result.h"

namespace usched {

struct EntitySpec {
  std::string name;                        // full path, "" for the root
  PoolSpec pool;                           // in the parent's vcpu numbers
  int vcpus = 0;                           // 0: as many as the pool has
  int lwktpri = 6;
  std::optional<SchedClass> class_override;
  bool locked = false;
  bool exclusive = false;
  // Exclusive and out of the kernel's load balancing: on cgroup v2 an
  // "isolated" cpuset partition. Implies exclusive.
  bool isolated = false;
  uint32_t owner_uid = 0;
  uint32_t owner_gid = 0;
  // Owners may create realtime entities below one that root marked so.
  bool allow_realtime = false;
};

// Fields to change; nullopt keeps the current value.
struct EntityUpdate {
  std::optional<PoolSpec> pool;
  std::optional<int> vcpus;
  std::optional<int> lwktpri;
  std::optional<std::optional<SchedClass>> class_override;
  std::optional<bool> locked;
  std::optional<bool> exclusive;
  std::optional<bool> isolated;
  std::optional<uint32_t> owner_uid;
  std::optional<uint32_t> owner_gid;
  std::optional<bool> allow_realtime;
};

// A member is a whole process (tid == 0) or one thread.
struct MemberKey {
  int pid = 0;
  int tid = 0;
  auto operator<=>(const MemberKey&) const = default;
};

struct Member {
  MemberKey key;
  uint64_t start_time = 0;  // from /proc/PID/stat, to tell a reused pid apart
  uint32_t uid = 0;
  int vcpu = -1;            // assigned vcpu when the entity is locked, else -1
  int requested_vcpu = -1;  // what the binder asked for, kept across resizes
};

class Entity {
 public:
  const EntitySpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }
  bool is_root() const { return parent_ == nullptr; }
  const Entity* parent() const { return parent_; }
  int depth() const;  // root 0, "a" 1, "a/b" 2
  // Children by leaf name, sorted.
  const std::map<std::string, std::unique_ptr<Entity>>& children() const { return children_; }
  const std::map<MemberKey, Member>& members() const { return members_; }

  int vcpu_count() const { return static_cast<int>(vcpu_phys_.size()); }
  // Physical CPUs of each vcpu and of the whole entity, before exclusion.
  const std::vector<CpuSet>& vcpu_phys() const { return vcpu_phys_; }
  const CpuSet& phys() const { return phys_; }
  // After dropping offline CPUs and CPUs of exclusive entities that are
  // neither ancestors nor descendants.
  const std::vector<CpuSet>& vcpu_effective() const { return vcpu_effective_; }
  const CpuSet& effective() const { return effective_; }
  bool starved() const { return effective_.empty(); }
  // Where members actually run: effective() or, when starved, the nearest
  // ancestor's non-empty effective set (the root always has one while any
  // CPU is online).
  CpuSet runnable() const;
  // The CPUs a member is confined to: its vcpu's effective CPUs when locked
  // (falling back to runnable() when that vcpu is starved), else runnable().
  CpuSet cpus_for(const Member& m) const;
  ClassParams class_params() const;
  int members_on_vcpu(int vcpu) const;

 private:
  friend class Tree;
  EntitySpec spec_;                                      // (s)
  Entity* parent_ = nullptr;                             // (c)
  std::map<std::string, std::unique_ptr<Entity>> children_;  // (s)
  std::map<MemberKey, Member> members_;                  // (s)
  std::vector<CpuSet> vcpu_phys_, vcpu_effective_;       // (d)
  CpuSet phys_, effective_;                              // (d)
};

// What a destroy did: entities removed (depth first, children before
// parents) and members handed to the parent (or released, when the parent
// is the root).
struct DestroyResult {
  std::vector<std::string> destroyed;
  std::vector<Member> moved;     // now members of `moved_to`
  std::vector<Member> released;  // unbound (the parent was the root)
  std::string moved_to;
};

class Tree {
 public:
  // `present`: CPUs the root's vcpus stand for (vcpu i = i-th present CPU);
  // `online`: the subset currently online.
  Tree(CpuSet present, CpuSet online);

  // Hotplug: recompute effective sets; never fails (starved entities are
  // reported, not removed).
  void set_online(CpuSet online);

  const Entity& root() const { return *root_; }
  // nullptr when absent; "" is the root.
  const Entity* find(std::string_view name) const;

  // Validates the name, that the parent exists, that the name is free, the
  // pool against the parent's vcpu count, vcpus (0 or 1..kMaxVcpus),
  // lwktpri, and that an exclusive entity overlaps no other unrelated
  // exclusive entity. Nothing changes on error.
  Result<const Entity*> create(const EntitySpec& spec);
  // Same checks, plus: children's explicit pools must stay inside the new
  // vcpu count. Locked members on a vcpu that no longer exists are moved to
  // the least loaded one. Nothing changes on error.
  Result<const Entity*> update(std::string_view name, const EntityUpdate& u);
  // Without force, fails when the entity has children or members.
  Result<DestroyResult> destroy(std::string_view name, bool force);

  // Binds a member (moving it from any other entity); for a locked entity
  // assigns `requested_vcpu` or the vcpu with the fewest members (lowest
  // index on ties). Binding the root is an error.
  Result<const Member*> bind(std::string_view name, Member m);
  // Removes the member; returns the name of the entity it left.
  Result<std::string> unbind(MemberKey key);
  // The entity a member belongs to, or nullptr.
  const Entity* entity_of(MemberKey key) const;
  // The bound member, or nullptr.
  const Member* member(MemberKey key) const;
  // Records that a member's task now belongs to uid; false when it is not bound.
  bool set_member_uid(MemberKey key, uint32_t uid);
  // Entities (root excluded) whose effective set is empty, pre-order.
  std::vector<const Entity*> starved() const;

  // Pre-order walk, root first; children sorted by name.
  void for_each(const std::function<void(const Entity&)>& fn) const;
  size_t size() const;  // entities, root excluded

  static constexpr int kMaxVcpus = 4096;

 private:
  Entity* find_mut(std::string_view name);
  Status check_exclusive(const Entity& e) const;
  void resolve();  // recompute every (d) field, top-down
  void reassign_locked(Entity& e);
  void resolve_children(Entity& e);
  void compute_effective();
  Status check_pools(const Entity& e) const;  // e's explicit pool vs its parent
  Status check_all_exclusive() const;
  Status check_tree_pools(const Entity& e, const std::string& context) const;
  void remove_member(MemberKey key);
  void assign_vcpu(Entity& e, Member& m);

  CpuSet present_, online_;
  std::unique_ptr<Entity> root_;
  std::map<MemberKey, Entity*> member_index_;
};

}  // namespace usched
