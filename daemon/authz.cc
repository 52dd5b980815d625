//! Delegation and limits: who may change which part of the tree, and how
//! much of the daemon one user may take. Root may do anything. An entity's
//! owner may manage what lies *below* it (create, update, destroy, chown its
//! descendants, bind its own processes to it or below), but not the entity
//! itself: its pool and class were decided by whoever handed it over.
//! Everyone may read. Runs on the engine's strand like the rest of Engine.
#include <string>

#include "engine.h"

namespace usched::daemon {
namespace {

// Is `uid` the owner of `e` or of one of its ancestors (the root entity
// stands for root and is never delegated)?
bool owns_or_below(uint32_t uid, const Entity& e) {
  for (const Entity* p = &e; p && !p->is_root(); p = p->parent()) {
    if (p->spec().owner_uid == uid) return true;
  }
  return false;
}

std::string who(const Caller& c) { return "uid " + std::to_string(c.uid); }

std::string label(const Entity& e) { return e.is_root() ? "the root" : "'" + e.name() + "'"; }

}  // namespace

Status Engine::check_below(const Caller& c, const Entity& parent, const std::string& what) const {
  if (c.root() || owns_or_below(c.uid, parent)) return Status::ok();
  return denied("you (" + who(c) + ") may not " + what + ": only root or the owner of " +
                label(parent) + " or of an entity above it may; everyone may read");
}

Status Engine::check_bind(const Caller& c, const Entity& target, uint32_t task_uid) const {
  if (c.root()) return Status::ok();
  if (!owns_or_below(c.uid, target)) {
    return denied("you (" + who(c) + ") may not bind to " + label(target) +
                  ": only root or the owner of it or of an entity above it may");
  }
  if (task_uid != c.uid) {
    return denied("you (" + who(c) + ") may bind only your own processes; that task belongs to uid " +
                  std::to_string(task_uid));
  }
  return Status::ok();
}

Status Engine::check_privileged_spec(const Caller& c, const Entity& parent,
                                     const EntitySpec& s) const {
  if (c.root()) return Status::ok();
  if (s.allow_realtime) return denied("only root may set allow_realtime (you are " + who(c) + ")");
  if (s.exclusive) {
    // An exclusive entity takes its CPUs from every unrelated entity,
    // including other users' ones.
    return denied("only root may make '" + s.name + "' exclusive (you are " + who(c) + ")");
  }
  if (class_for(s.lwktpri, s.class_override).cls != SchedClass::kRealtime) return Status::ok();
  for (const Entity* p = &parent; p && !p->is_root(); p = p->parent()) {
    if (p->spec().allow_realtime) return Status::ok();
  }
  return denied("'" + s.name + "' would be realtime (lwktpri " + std::to_string(s.lwktpri) +
                "): only root may create realtime schedulers, or an owner below an entity root "
                "marked allow_realtime");
}

Status Engine::check_entity_limit(uint32_t owner, int adding) const {
  const int limit = opts_.max_entities_per_owner;
  if (owner == 0 || limit <= 0) return Status::ok();
  int n = 0;
  tree_->for_each([&](const Entity& e) {
    if (!e.is_root() && e.spec().owner_uid == owner) ++n;
  });
  if (n + adding <= limit) return Status::ok();
  return exhausted("uid " + std::to_string(owner) + " owns " + std::to_string(n) +
                   " schedulers; the limit of entities per owner is " + std::to_string(limit) +
                   " (uschedd --max-entities-per-owner)");
}

Status Engine::check_member_limit(const Entity& e, MemberKey key) const {
  const int limit = opts_.max_members_per_entity;
  if (limit <= 0 || e.members().count(key)) return Status::ok();
  if (static_cast<int>(e.members().size()) < limit) return Status::ok();
  return exhausted("'" + e.name() + "' has " + std::to_string(e.members().size()) +
                   " members; the limit of members per entity is " + std::to_string(limit) +
                   " (uschedd --max-members-per-entity)");
}

Result<v1::Scheduler> Engine::chown(const Caller& c, const std::string& name, uint32_t uid,
                                    std::optional<uint32_t> gid) {
  if (name.empty()) return invalid("the root cannot be handed over; name a scheduler");
  const Entity* e = tree_->find(name);
  if (!e) {
    if (Status s = validate_name(name); !s) return s;
    return not_found("no scheduler named '" + name + "'");
  }
  if (Status s = check_below(c, *e->parent(), "hand '" + name + "' to another user"); !s) return s;
  if (uid != e->spec().owner_uid) {
    if (Status s = check_entity_limit(uid, 1); !s) return s;
  }
  const v1::StateFile before = snapshot();
  EntityUpdate u;
  u.owner_uid = uid;
  if (gid) u.owner_gid = *gid;
  auto r = tree_->update(name, u);
  if (!r) return r.status();
  if (Status s = commit(before); !s) return s;
  e = tree_->find(name);
  publish(v1::Event::SCHEDULER_UPDATED, name, 0, 0,
          "owner " + std::to_string(e->spec().owner_uid) + ":" + std::to_string(e->spec().owner_gid));
  return to_proto(*e);
}

}  // namespace usched::daemon
