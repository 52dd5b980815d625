//! `usched apply`: converge the running tree to a config file in one
//! transaction. The plan is computed against the running tree, replayed on
//! a scratch Tree (the pure core, no kernel writes) so that every error is
//! found before anything changes, then applied to the real tree and synced
//! to the kernel once; a kernel failure rolls the tree back.
//!
//! What a config owns: schedulers it names, and schedulers an earlier apply
//! made (from_config_, kept in the state file). A config-made scheduler that
//! has left the file is destroyed, unless it still holds members or
//! schedulers that are not leaving too: those are kept (a KEEP step says
//! why) unless the request forces it. Schedulers made by hand (`usched
//! create`) and not named in the file are never touched.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "engine.h"
#include "gang.h"
#include "usched/config.h"
#include "usched/names.h"

namespace usched::daemon {
namespace {

EntityUpdate full_update(const EntitySpec& s) {
  EntityUpdate u;
  u.pool = s.pool;
  u.vcpus = s.vcpus;
  u.lwktpri = s.lwktpri;
  u.class_override = s.class_override;
  u.locked = s.locked;
  u.exclusive = s.exclusive;
  u.isolated = s.isolated;
  return u;
}

std::string class_str(const std::optional<SchedClass>& c) { return c ? class_name(*c) : "default"; }

// "pool cpu* -> cpu0-1, lwktpri 6 -> 8, locked"; empty when nothing differs.
std::string diff(const EntitySpec& a, const EntitySpec& b) {
  std::vector<std::string> d;
  if (!(a.pool == b.pool)) d.push_back("pool " + a.pool.to_string() + " -> " + b.pool.to_string());
  if (a.vcpus != b.vcpus)
    d.push_back("vcpus " + (a.vcpus ? std::to_string(a.vcpus) : std::string("pool")) + " -> " +
                (b.vcpus ? std::to_string(b.vcpus) : std::string("pool")));
  if (a.lwktpri != b.lwktpri)
    d.push_back("lwktpri " + std::to_string(a.lwktpri) + " -> " + std::to_string(b.lwktpri));
  if (a.class_override != b.class_override)
    d.push_back("class " + class_str(a.class_override) + " -> " + class_str(b.class_override));
  if (a.locked != b.locked) d.push_back(b.locked ? "locked" : "unlocked");
  if (a.exclusive != b.exclusive) d.push_back(b.exclusive ? "exclusive" : "shared");
  if (a.isolated != b.isolated) d.push_back(b.isolated ? "isolated" : "not isolated");
  std::string out;
  for (auto& s : d) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string describe(const EntitySpec& s) {
  std::string r = "on " + s.pool.to_string();
  if (s.vcpus) r += " vcpus " + std::to_string(s.vcpus);
  r += " lwktpri " + std::to_string(s.lwktpri);
  if (s.class_override) r += std::string(" class ") + class_name(*s.class_override);
  if (s.locked) r += " locked";
  if (s.exclusive) r += " exclusive";
  if (s.isolated) r += " isolated";
  return r;
}

struct Step {
  v1::PlanStep::Action action;
  std::string name;
  int line = 0;
  EntitySpec spec;  // the new spec (create, update)
  std::string detail;
};

Status at(const std::string& source, int line, const Status& s) {
  std::string where = source;
  if (line > 0) where += (where.empty() ? "" : " ") + std::string("line ") + std::to_string(line);
  return Status(s.code(), where.empty() ? s.message() : where + ": " + s.message());
}

bool subtree_has(const Entity& e, const std::function<bool(const Entity&)>& pred) {
  if (pred(e)) return true;
  for (auto& [leaf, c] : e.children())
    if (subtree_has(*c, pred)) return true;
  return false;
}

}  // namespace

Result<v1::ApplyResponse> Engine::apply(const Caller& c, const v1::ApplyRequest& req) {
  // A dry run only reads: anyone may ask what a config would do.
  if (!req.dry_run() && !c.root()) {
    return denied("only root may apply a config (you are uid " + std::to_string(c.uid) +
                  "); `usched apply --dry-run` shows the plan to anyone");
  }
  const std::string& source = req.source();
  // parse_config's errors already start with "line N:".
  auto entries = parse_config(req.config());
  if (!entries) {
    return Status(entries.status().code(),
                  (source.empty() ? "" : source + " ") + entries.status().message());
  }

  // ---- the plan -------------------------------------------------------------
  std::set<std::string> wanted;
  for (const ConfigEntry& ce : *entries) wanted.insert(ce.scheduler.name);

  std::vector<Step> steps;
  // Destroys first, deepest first: they free CPUs (exclusive ones too) that
  // the file's lines may need.
  std::vector<const Entity*> leaving;
  tree_->for_each([&](const Entity& e) {
    if (!e.is_root() && from_config_.count(e.name()) && !wanted.count(e.name())) leaving.push_back(&e);
  });
  std::set<std::string> leaving_names;
  for (const Entity* e : leaving) leaving_names.insert(e->name());
  std::sort(leaving.begin(), leaving.end(),
            [](const Entity* a, const Entity* b) { return a->depth() > b->depth(); });
  std::set<std::string> kept;
  for (const Entity* e : leaving) {
    std::string why;
    if (subtree_has(*e, [&](const Entity& x) { return wanted.count(x.name()) > 0; })) {
      why = "a scheduler below it is in the file";
    } else if (!req.force()) {
      int members = 0;
      bool foreign = false, busy_child = false;
      subtree_has(*e, [&](const Entity& x) {
        members += static_cast<int>(x.members().size());
        if (!leaving_names.count(x.name())) foreign = true;
        if (&x != e && kept.count(x.name())) busy_child = true;
        return false;
      });
      if (members > 0)
        why = "it holds " + std::to_string(members) + " member" + (members == 1 ? "" : "s");
      else if (foreign)
        why = "it holds schedulers that were not made by a config";
      else if (busy_child)
        why = "a scheduler below it is kept";
      if (!why.empty()) why += "; apply --force destroys it and moves members to the parent";
    }
    if (!why.empty()) {
      kept.insert(e->name());
      steps.push_back({v1::PlanStep::KEEP, e->name(), 0, {}, "not in the file, kept: " + why});
      continue;
    }
    steps.push_back({v1::PlanStep::DESTROY, e->name(), 0, e->spec(), "not in the file any more"});
  }
  for (const ConfigEntry& ce : *entries) {
    const SchedulerLine& l = ce.scheduler;
    EntitySpec spec;
    spec.name = l.name;
    spec.pool = l.pool;
    spec.vcpus = l.vcpus.value_or(0);
    spec.lwktpri = l.lwktpri.value_or(6);
    spec.class_override = l.class_override;
    spec.locked = l.locked.value_or(false);
    spec.exclusive = l.exclusive.value_or(false);
    spec.isolated = l.isolated.value_or(false);
    spec.owner_uid = c.uid;
    spec.owner_gid = c.gid;
    if (const Entity* e = tree_->find(l.name)) {
      spec.owner_uid = e->spec().owner_uid;
      spec.owner_gid = e->spec().owner_gid;
      spec.allow_realtime = e->spec().allow_realtime;
      std::string d = diff(e->spec(), spec);
      steps.push_back({d.empty() ? v1::PlanStep::UNCHANGED : v1::PlanStep::UPDATE, l.name, ce.line,
                       spec, d.empty() ? describe(spec) : d});
    } else {
      steps.push_back({v1::PlanStep::CREATE, l.name, ce.line, spec, describe(spec)});
    }
  }

  // ---- validation on a scratch tree -------------------------------------------
  // The core alone decides whether every step is legal (names, pools,
  // vcpus, exclusive overlaps), on a copy of the running specs.
  {
    Tree scratch(tree_->root().phys(), tree_->root().effective());
    Status copy = Status::ok();
    tree_->for_each([&](const Entity& e) {
      if (e.is_root() || !copy) return;
      if (auto r = scratch.create(e.spec()); !r) copy = r.status();
    });
    if (!copy) return internal("cannot copy the running tree to check the plan: " + copy.message());
    for (const Step& s : steps) {
      Status st = Status::ok();
      if (s.action == v1::PlanStep::DESTROY) {
        if (auto r = scratch.destroy(s.name, true); !r) st = r.status();
      } else if (s.action == v1::PlanStep::CREATE) {
        if (auto r = scratch.create(s.spec); !r) st = r.status();
      } else if (s.action == v1::PlanStep::UPDATE) {
        if (auto r = scratch.update(s.name, full_update(s.spec)); !r) st = r.status();
      }
      if (!st) {
        if (s.line == 0) return at(source, 0, Status(st.code(), "destroying " + s.name + ": " + st.message()));
        return at(source, s.line, Status(st.code(), s.name + ": " + st.message()));
      }
    }
  }

  v1::ApplyResponse resp;
  for (const Step& s : steps) {
    auto* p = resp.add_steps();
    p->set_action(s.action);
    p->set_name(s.name);
    p->set_line(s.line);
    p->set_detail(s.detail);
  }
  if (req.dry_run()) return resp;

  // ---- apply --------------------------------------------------------------------
  // The tree changes first, then the state file (commit), then the kernel,
  // as every other change does; a failure puts back the snapshot.
  const v1::StateFile before = snapshot();
  const std::set<std::string> before_config = from_config_;
  std::vector<Member> released;
  std::vector<std::string> removed_groups;
  for (const Step& s : steps) {
    Status st = Status::ok();
    if (s.action == v1::PlanStep::DESTROY) {
      // Children leave before their parent (deepest first), so force only
      // matters for members, which move to the parent.
      auto r = tree_->destroy(s.name, true);
      if (!r) {
        st = r.status();
      } else {
        for (const Member& m : r->released) released.push_back(m);
        for (const std::string& n : r->destroyed) removed_groups.push_back(n);
      }
    } else if (s.action == v1::PlanStep::CREATE) {
      if (auto r = tree_->create(s.spec); !r) st = r.status();
    } else if (s.action == v1::PlanStep::UPDATE) {
      if (auto r = tree_->update(s.name, full_update(s.spec)); !r) st = r.status();
    }
    if (!st) {
      // The scratch tree accepted this step; the real one must too.
      restore_tree(before);
      return at(source, s.line, Status(Code::kInternal, s.name + ": " + st.message()));
    }
  }
  for (const std::string& n : removed_groups) from_config_.erase(n);
  for (const std::string& n : wanted) from_config_.insert(n);
  if (Status st = commit(before); !st) {
    from_config_ = before_config;
    return st;
  }
  if (Status st = sync_groups(); !st) {
    restore_tree(before);
    from_config_ = before_config;
    save_state();
    for (const Step& s : steps) {
      if (s.action == v1::PlanStep::CREATE) (void)glue_->remove_group(s.name);
    }
    (void)sync_groups();
    reconcile_members();
    return at(source, 0, Status(st.code(), "the kernel refused the new tree, nothing was changed: " +
                                               st.message()));
  }
  for (const Member& m : released) release(m);
  if (gangs_) gangs_->prune();  // the destroyed schedulers' gangs, before their groups
  for (const std::string& n : removed_groups) {
    if (Status s = glue_->remove_group(n); !s) spdlog::warn("removing the group of {}: {}", n, s.message());
    entity_cpu_us_.erase(n);
  }
  reconcile_members();
  int changes = 0;
  for (const Step& s : steps) {
    const Entity* e = tree_->find(s.name);
    const std::string cpus = e ? "cpus " + e->effective().to_string() : "";
    switch (s.action) {
      case v1::PlanStep::CREATE: publish(v1::Event::SCHEDULER_CREATED, s.name, 0, 0, cpus); break;
      case v1::PlanStep::UPDATE: publish(v1::Event::SCHEDULER_UPDATED, s.name, 0, 0, cpus); break;
      case v1::PlanStep::DESTROY: publish(v1::Event::SCHEDULER_DESTROYED, s.name); break;
      default: continue;
    }
    ++changes;
    spdlog::info("apply {}: {} {} ({})", source.empty() ? "config" : source,
                 v1::PlanStep::Action_Name(s.action), s.name, s.detail);
  }
  spdlog::info("applied {}: {} changes, {} schedulers from the config", source.empty() ? "config" : source,
               changes, wanted.size());
  resp.set_applied(true);
  return resp;
}

}  // namespace usched::daemon
