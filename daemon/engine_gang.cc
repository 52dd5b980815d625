// The gang RPCs of the engine: authorization, binding the task to the
// gang's scheduler, then the co-scheduler (gang.h) does the rest.
#include <spdlog/spdlog.h>

#include "engine.h"
#include "gang.h"
#include "usched/names.h"

namespace usched::daemon {

Result<v1::Gang> Engine::create_gang(const Caller& c, const v1::GangSpec& spec) {
  const Entity* e = tree_->find(spec.scheduler());
  if (!e || e->is_root()) return not_found("no scheduler named '" + spec.scheduler() + "'");
  if (Status s = check_below(c, *e, "create gangs in " + spec.scheduler()); !s) return s;
  const v1::StateFile before = snapshot();
  auto g = gangs_->create(spec);
  if (!g) return g;
  // Durable before the answer; a new gang is empty, so no kernel group
  // exists yet and taking it back leaves nothing behind.
  if (Status s = commit(before); !s) {
    gangs_->undo_create(spec.scheduler(), spec.name());
    return s;
  }
  return g;
}

Status Engine::destroy_gang(const Caller& c, const std::string& sched, const std::string& gang) {
  const Entity* e = tree_->find(sched);
  if (!e || e->is_root()) return not_found("no scheduler named '" + sched + "'");
  if (Status s = check_below(c, *e, "destroy gangs in " + sched); !s) return s;
  // The state without the gang is written first; only then does the gang
  // go (its freezer group thawed and removed). A failed write changes
  // nothing.
  if (Status s = gangs_->stage_destroy(sched, gang, true); !s) return s;
  const v1::StateFile before = snapshot();
  if (Status s = commit(before); !s) {
    (void)gangs_->stage_destroy(sched, gang, false);
    return s;
  }
  // Members stay bound to the scheduler; only the gang goes. When the
  // kernel keeps its group, the gang stays, on disk too.
  if (Status s = gangs_->destroy(sched, gang); !s) {
    (void)gangs_->stage_destroy(sched, gang, false);
    save_state();
    return s;
  }
  return Status::ok();
}

Result<v1::Gang> Engine::add_gang_member(const Caller& c, const v1::AddGangMemberRequest& r) {
  const Entity* e = tree_->find(r.scheduler());
  if (!e || e->is_root()) return not_found("no scheduler named '" + r.scheduler() + "'");
  if (!gangs_->has(r.scheduler(), r.name())) {
    return not_found("no gang " + r.scheduler() + "/" + r.name() + " (create it with `usched gang create " +
                     r.scheduler() + "/" + r.name() + "`)");
  }
  if (!r.threads().empty()) {
    // Checked before anything is bound, so a refused glob changes nothing.
    if (r.tid() != 0) {
      return invalid("--threads picks threads of a whole process by name: give --pid " + std::to_string(r.pid()) +
                     " without --tid");
    }
    if (Status s = validate_thread_glob(r.threads()); !s) return s;
    const glue::Kind k = glue_->kind();
    if (k != glue::Kind::kCgroupV1 && k != glue::Kind::kCgroupV2 && k != glue::Kind::kFake) {
      return precondition("--threads needs a freezer that takes single threads (cgroup v1, or cgroup v2 with "
                          "threaded groups); this uschedd freezes gangs with " + glue_->freezer() +
                          ", which stops whole processes: add the whole process instead");
    }
  }
  const MemberKey key{r.pid(), r.tid()};
  const bool already = gangs_->gang_of(r.scheduler(), key) == r.name();
  bool bound_here = false;
  if (tree_->entity_of(key) != e) {
    v1::BindRequest b;
    b.set_name(r.scheduler());
    b.set_pid(r.pid());
    b.set_tid(r.tid());
    auto br = bind(c, b);
    if (!br) return br.status();
    bound_here = true;
  } else {
    auto info = check_task(key.pid, key.tid);
    if (!info) return info.status();
    if (Status s = check_bind(c, *e, info->uid); !s) return s;
  }
  const Member* m = tree_->member(key);
  if (!m) return internal("pid " + std::to_string(key.pid) + " vanished while joining the gang");
  // Nothing half-done: a member bound only for this gang is unbound again
  // when the gang does not take it.
  auto undo_bind = [&] {
    if (!bound_here) return;
    if (unbind(c, key.pid, key.tid)) return;
    // The unbind's own write failed too (the state disk is full): take it
    // back in memory and in the kernel all the same; its bind, already on
    // disk, is rewritten by the next write that succeeds.
    if (const Member* bm = tree_->member(key); bm) {
      const Member copy = *bm;
      (void)tree_->unbind(key);
      release(copy);
    }
  };
  auto g = gangs_->add_member(r.scheduler(), r.name(), key, m->start_time, r.threads());
  if (!g) {
    undo_bind();
    return g;
  }
  if (already) return g;
  // The member is in the gang's freezer group now: when its state cannot
  // be written it leaves the group again, so the RPC fails with nothing
  // changed.
  const v1::StateFile before = snapshot();
  if (Status s = commit(before); !s) {
    (void)gangs_->remove_member(r.scheduler(), r.name(), key);
    if (bound_here) {
      undo_bind();
    } else if (auto it = tracked_.find(key); it != tracked_.end()) {
      // Back on the scheduler's CPUs, as before the gang pinned its threads.
      it->second.placed_cpus.clear();
      if (const Entity* now = tree_->entity_of(key); now) {
        (void)place_member(now->members().at(key), *now, it->second);
      }
    }
    return s;
  }
  return g;
}

Status Engine::remove_gang_member(const Caller& c, const v1::RemoveGangMemberRequest& r) {
  const Entity* e = tree_->find(r.scheduler());
  if (!e || e->is_root()) return not_found("no scheduler named '" + r.scheduler() + "'");
  const MemberKey key{r.pid(), r.tid()};
  if (const Member* m = tree_->member(key); m) {
    if (Status s = check_bind(c, *e, m->uid); !s) return s;
  } else if (Status s = check_below(c, *e, "change gangs in " + r.scheduler()); !s) {
    return s;
  }
  // Written without the member first; then it leaves the freezer group.
  if (Status s = gangs_->stage_remove(r.scheduler(), r.name(), key, true); !s) return s;
  const v1::StateFile before = snapshot();
  if (Status s = commit(before); !s) {
    (void)gangs_->stage_remove(r.scheduler(), r.name(), key, false);
    return s;
  }
  if (Status s = gangs_->remove_member(r.scheduler(), r.name(), key, true); !s) {
    (void)gangs_->stage_remove(r.scheduler(), r.name(), key, false);
    save_state();
    return s;
  }
  // It stays bound: back on the scheduler's CPUs as any other member.
  if (auto it = tracked_.find(key); it != tracked_.end()) {
    it->second.placed_cpus.clear();
    if (const Entity* now = tree_->entity_of(key); now) {
      if (Status s = place_member(now->members().at(key), *now, it->second); !s) {
        spdlog::warn("re-placing pid {} after leaving its gang: {}", key.pid, s.message());
      }
    }
  }
  return Status::ok();
}

v1::ListGangsResponse Engine::list_gangs(const std::string& sched) const { return gangs_->list(sched); }

}  // namespace usched::daemon
