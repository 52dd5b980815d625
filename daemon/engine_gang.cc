// The gang RPCs of the engine: authorization, binding the task to the
// gang's scheduler, then the co-scheduler (gang.h) does the rest.
#include <spdlog/spdlog.h>

#include "engine.h"
#include "gang.h"

namespace usched::daemon {

Result<v1::Gang> Engine::create_gang(const Caller& c, const v1::GangSpec& spec) {
  const Entity* e = tree_->find(spec.scheduler());
  if (!e || e->is_root()) return not_found("no scheduler named '" + spec.scheduler() + "'");
  if (Status s = check_below(c, *e, "create gangs in " + spec.scheduler()); !s) return s;
  return gangs_->create(spec);
}

Status Engine::destroy_gang(const Caller& c, const std::string& sched, const std::string& gang) {
  const Entity* e = tree_->find(sched);
  if (!e || e->is_root()) return not_found("no scheduler named '" + sched + "'");
  if (Status s = check_below(c, *e, "destroy gangs in " + sched); !s) return s;
  // Members stay bound to the scheduler; only the gang goes.
  return gangs_->destroy(sched, gang);
}

Result<v1::Gang> Engine::add_gang_member(const Caller& c, const v1::AddGangMemberRequest& r) {
  const Entity* e = tree_->find(r.scheduler());
  if (!e || e->is_root()) return not_found("no scheduler named '" + r.scheduler() + "'");
  if (!gangs_->has(r.scheduler(), r.name())) {
    return not_found("no gang " + r.scheduler() + "/" + r.name() + " (create it with `usched gang create " +
                     r.scheduler() + "/" + r.name() + "`)");
  }
  const MemberKey key{r.pid(), r.tid()};
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
  auto g = gangs_->add_member(r.scheduler(), r.name(), key, m->start_time);
  if (!g && bound_here) (void)unbind(c, key.pid, key.tid);  // nothing half-done
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
  if (Status s = gangs_->remove_member(r.scheduler(), r.name(), key); !s) return s;
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
