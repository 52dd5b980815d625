#include "usched/tree.h"

#include <algorithm>

#include "usched/names.h"

namespace usched {
namespace {

// "cpu0-3", "cpu0", or "no vcpus".
std::string vcpu_range(int n) {
  if (n <= 0) return "no vcpus";
  if (n == 1) return "cpu0";
  return "cpu0-" + std::to_string(n - 1);
}

// "batch's 4 vcpus (cpu0-3)" or "the machine's 2 CPUs (cpu0-1)".
std::string describe_vcpus(const Entity& e) {
  int n = e.vcpu_count();
  if (e.is_root()) {
    return "the machine's " + std::to_string(n) + (n == 1 ? " CPU" : " CPUs") + " (" +
           vcpu_range(n) + ")";
  }
  return e.name() + "'s " + std::to_string(n) + (n == 1 ? " vcpu" : " vcpus") + " (" +
         vcpu_range(n) + ")";
}

// True when `a` is a strict ancestor of `b`.
bool is_ancestor(const Entity* a, const Entity* b) {
  for (const Entity* p = b->parent(); p != nullptr; p = p->parent()) {
    if (p == a) return true;
  }
  return false;
}

bool related(const Entity* a, const Entity* b) {
  return a == b || is_ancestor(a, b) || is_ancestor(b, a);
}

std::string describe_member(MemberKey k) {
  if (k.tid != 0) return "pid " + std::to_string(k.pid) + " tid " + std::to_string(k.tid);
  return "pid " + std::to_string(k.pid);
}

std::string count_of(size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

int least_loaded(const Entity& e) {
  int best = -1, best_n = 0;
  for (int v = 0; v < e.vcpu_count(); ++v) {
    int n = e.members_on_vcpu(v);
    if (best < 0 || n < best_n) {
      best = v;
      best_n = n;
    }
  }
  return best;
}

void walk(const Entity& e, const std::function<void(const Entity&)>& fn) {
  fn(e);
  for (const auto& [_, c] : e.children()) walk(*c, fn);
}

// Children before parents.
void post_order(const Entity& e, std::vector<const Entity*>& out) {
  for (const auto& [_, c] : e.children()) post_order(*c, out);
  out.push_back(&e);
}

}  // namespace

// ---- Entity ----

int Entity::depth() const {
  int d = 0;
  for (const Entity* p = parent_; p != nullptr; p = p->parent_) ++d;
  return d;
}

CpuSet Entity::runnable() const {
  for (const Entity* e = this; e != nullptr; e = e->parent_) {
    if (!e->effective_.empty()) return e->effective_;
  }
  return CpuSet();
}

CpuSet Entity::cpus_for(const Member& m) const {
  if (spec_.locked && m.vcpu >= 0 && m.vcpu < vcpu_count() &&
      !vcpu_effective_[static_cast<size_t>(m.vcpu)].empty()) {
    return vcpu_effective_[static_cast<size_t>(m.vcpu)];
  }
  return runnable();
}

ClassParams Entity::class_params() const { return class_for(spec_.lwktpri, spec_.class_override); }

int Entity::members_on_vcpu(int vcpu) const {
  int n = 0;
  for (const auto& [_, m] : members_) {
    if (m.vcpu == vcpu) ++n;
  }
  return n;
}

// ---- Tree: construction and resolution ----

Tree::Tree(CpuSet present, CpuSet online)
    : present_(std::move(present)), online_(std::move(online)), root_(std::make_unique<Entity>()) {
  root_->spec_.name = "";
  root_->spec_.pool = PoolSpec::everything();
  resolve();
}

void Tree::set_online(CpuSet online) {
  online_ = std::move(online);
  compute_effective();
}

void Tree::resolve() {
  Entity& r = *root_;
  r.vcpu_phys_.clear();
  for (int cpu : present_.to_vector()) r.vcpu_phys_.push_back(CpuSet::of({cpu}));
  r.phys_ = present_;
  resolve_children(r);
  compute_effective();
}

void Tree::resolve_children(Entity& parent) {
  const int pv = parent.vcpu_count();
  for (auto& [_, cp] : parent.children_) {
    Entity& e = *cp;
    // Out-of-range entries are reported by validation; skip them here so a
    // tentative resolution never indexes out of bounds.
    std::vector<int> pool;
    for (int v : e.spec_.pool.resolve(pv)) {
      if (v >= 0 && v < pv) pool.push_back(v);
    }
    const int p = static_cast<int>(pool.size());
    const int v = e.spec_.vcpus > 0 ? e.spec_.vcpus : p;
    e.vcpu_phys_.clear();
    e.phys_ = CpuSet();
    if (p > 0) {
      for (const auto& block : vcpu_blocks(p, v)) {
        CpuSet s;
        for (int j : block) s |= parent.vcpu_phys_[static_cast<size_t>(pool[static_cast<size_t>(j)])];
        e.phys_ |= s;
        e.vcpu_phys_.push_back(std::move(s));
      }
    }
    resolve_children(e);
  }
}

void Tree::compute_effective() {
  std::vector<const Entity*> exclusives;
  for_each([&](const Entity& e) {
    if (!e.is_root() && e.spec_.exclusive) exclusives.push_back(&e);
  });
  std::function<void(Entity&)> go = [&](Entity& e) {
    CpuSet taken;
    for (const Entity* x : exclusives) {
      if (!related(x, &e)) taken |= x->phys_;
    }
    e.effective_ = (e.phys_ & online_) - taken;
    e.vcpu_effective_.clear();
    for (const CpuSet& s : e.vcpu_phys_) e.vcpu_effective_.push_back((s & online_) - taken);
    for (auto& [_, c] : e.children_) go(*c);
  };
  go(*root_);
}

// ---- lookup ----

const Entity* Tree::find(std::string_view name) const {
  return const_cast<Tree*>(this)->find_mut(name);
}

Entity* Tree::find_mut(std::string_view name) {
  Entity* e = root_.get();
  if (name.empty()) return e;
  for (const std::string& c : split_name(name)) {
    auto it = e->children_.find(c);
    if (it == e->children_.end()) return nullptr;
    e = it->second.get();
  }
  return e;
}

void Tree::for_each(const std::function<void(const Entity&)>& fn) const { walk(*root_, fn); }

size_t Tree::size() const {
  size_t n = 0;
  for_each([&](const Entity&) { ++n; });
  return n - 1;
}

const Entity* Tree::entity_of(MemberKey key) const {
  auto it = member_index_.find(key);
  return it == member_index_.end() ? nullptr : it->second;
}

const Member* Tree::member(MemberKey key) const {
  const Entity* e = entity_of(key);
  if (e == nullptr) return nullptr;
  auto it = e->members_.find(key);
  return it == e->members_.end() ? nullptr : &it->second;
}

bool Tree::set_member_uid(MemberKey key, uint32_t uid) {
  auto at = member_index_.find(key);
  if (at == member_index_.end()) return false;
  auto it = at->second->members_.find(key);
  if (it == at->second->members_.end()) return false;
  it->second.uid = uid;
  return true;
}

std::vector<const Entity*> Tree::starved() const {
  std::vector<const Entity*> out;
  for_each([&](const Entity& e) {
    if (!e.is_root() && e.starved()) out.push_back(&e);
  });
  return out;
}

// ---- validation ----

Status Tree::check_pools(const Entity& e) const {
  if (e.is_root() || e.spec_.pool.all) return Status::ok();
  if (e.spec_.pool.vcpus.empty()) return invalid("pool of '" + e.name() + "' is empty");
  const Entity& parent = *e.parent_;
  for (int v : e.spec_.pool.vcpus) {
    if (v < 0 || v >= parent.vcpu_count()) {
      return invalid("pool cpu" + std::to_string(v) + " is outside " + describe_vcpus(parent));
    }
  }
  return Status::ok();
}

// Every explicit pool in e's subtree (e excluded) against its parent.
Status Tree::check_tree_pools(const Entity& e, const std::string& context) const {
  for (const auto& [_, c] : e.children_) {
    if (!c->spec_.pool.all) {
      for (int v : c->spec_.pool.vcpus) {
        if (v >= e.vcpu_count()) {
          return invalid(context + ": child " + c->name() + " uses cpu" + std::to_string(v));
        }
      }
    }
    if (Status s = check_tree_pools(*c, context); !s) return s;
  }
  return Status::ok();
}

Status Tree::check_exclusive(const Entity& e) const {
  if (!e.spec_.exclusive || e.is_root()) return Status::ok();
  Status result;
  for_each([&](const Entity& o) {
    if (!result.is_ok() || o.is_root() || !o.spec_.exclusive || related(&o, &e)) return;
    CpuSet shared = e.phys_ & o.phys_;
    if (!shared.empty()) {
      result = precondition("exclusive " + e.name() + " and exclusive " + o.name() +
                            " would share CPUs " + shared.to_string() +
                            "; two unrelated exclusive schedulers may not overlap");
    }
  });
  return result;
}

Status Tree::check_all_exclusive() const {
  Status result;
  for_each([&](const Entity& e) {
    if (result.is_ok()) result = check_exclusive(e);
  });
  return result;
}

namespace {

Status check_scalars(const EntitySpec& spec) {
  if (spec.isolated && !spec.exclusive) {
    return invalid("isolated applies to an exclusive scheduler only: '" + spec.name +
                   "' is shared (say 'exclusive isolated', or 'shared' alone)");
  }
  if (spec.vcpus < 0 || spec.vcpus > Tree::kMaxVcpus) {
    return invalid("vcpus " + std::to_string(spec.vcpus) + " is out of range 1.." +
                   std::to_string(Tree::kMaxVcpus) + " (0 means the pool size)");
  }
  return validate_lwktpri(spec.lwktpri);
}

}  // namespace

// ---- create / update / destroy ----

Result<const Entity*> Tree::create(const EntitySpec& spec) {
  if (Status s = validate_name(spec.name); !s) return s;
  const std::string pname = parent_name(spec.name);
  Entity* parent = find_mut(pname);
  if (parent == nullptr) {
    return not_found("parent '" + pname + "' of '" + spec.name + "' does not exist");
  }
  const std::string leaf = leaf_name(spec.name);
  if (parent->children_.count(leaf)) return already_exists("scheduler '" + spec.name + "' already exists");
  if (Status s = check_scalars(spec); !s) return s;

  auto owned = std::make_unique<Entity>();
  owned->spec_ = spec;
  owned->parent_ = parent;
  Entity* e = owned.get();
  if (Status s = check_pools(*e); !s) return s;

  parent->children_.emplace(leaf, std::move(owned));
  resolve();
  if (Status s = check_exclusive(*e); !s) {
    parent->children_.erase(leaf);
    resolve();
    return s;
  }
  return static_cast<const Entity*>(e);
}

Result<const Entity*> Tree::update(std::string_view name, const EntityUpdate& u) {
  if (name.empty()) return invalid("cannot update the root");
  Entity* e = find_mut(name);
  if (e == nullptr) return not_found("scheduler '" + std::string(name) + "' does not exist");

  const EntitySpec old = e->spec_;
  EntitySpec next = old;
  if (u.pool) next.pool = *u.pool;
  if (u.vcpus) next.vcpus = *u.vcpus;
  if (u.lwktpri) next.lwktpri = *u.lwktpri;
  if (u.class_override) next.class_override = *u.class_override;
  if (u.locked) next.locked = *u.locked;
  if (u.exclusive) next.exclusive = *u.exclusive;
  if (u.isolated) next.isolated = *u.isolated;
  if (u.owner_uid) next.owner_uid = *u.owner_uid;
  if (u.owner_gid) next.owner_gid = *u.owner_gid;
  if (u.allow_realtime) next.allow_realtime = *u.allow_realtime;
  if (Status s = check_scalars(next); !s) return s;

  e->spec_ = next;
  resolve();
  Status st = check_pools(*e);
  if (st) {
    const int n = e->vcpu_count();
    st = check_tree_pools(*e, "cannot shrink " + e->name() + " to " + std::to_string(n) +
                                  (n == 1 ? " vcpu" : " vcpus"));
  }
  if (st && e->spec_.exclusive) st = check_exclusive(*e);
  if (st) st = check_all_exclusive();
  if (!st) {
    e->spec_ = old;
    resolve();
    return st;
  }
  // Vcpu counts may have changed anywhere below e: re-place locked members.
  std::function<void(Entity&)> fix = [&](Entity& x) {
    reassign_locked(x);
    for (auto& [_, c] : x.children_) fix(*c);
  };
  fix(*e);
  return static_cast<const Entity*>(e);
}

void Tree::assign_vcpu(Entity& e, Member& m) {
  if (!e.spec_.locked) {
    m.vcpu = -1;
    return;
  }
  if (m.requested_vcpu >= 0 && m.requested_vcpu < e.vcpu_count()) {
    m.vcpu = m.requested_vcpu;
  } else {
    m.vcpu = least_loaded(e);
  }
}

void Tree::reassign_locked(Entity& e) {
  if (!e.spec_.locked) {
    for (auto& [_, m] : e.members_) m.vcpu = -1;
    return;
  }
  for (auto& [_, m] : e.members_) {
    if (m.vcpu >= e.vcpu_count()) m.vcpu = -1;
  }
  for (auto& [_, m] : e.members_) {
    if (m.vcpu < 0) assign_vcpu(e, m);
  }
}

Result<DestroyResult> Tree::destroy(std::string_view name, bool force) {
  if (name.empty()) return invalid("cannot destroy the root");
  Entity* e = find_mut(name);
  if (e == nullptr) return not_found("scheduler '" + std::string(name) + "' does not exist");
  if (!force && (!e->children_.empty() || !e->members_.empty())) {
    std::string what;
    if (!e->children_.empty()) what = count_of(e->children_.size(), "child", "children");
    if (!e->members_.empty()) {
      if (!what.empty()) what += " and ";
      what += count_of(e->members_.size(), "member", "members");
    }
    return precondition(e->name() + " has " + what + "; destroy them first or use force");
  }

  Entity* parent = e->parent_;
  DestroyResult r;
  r.moved_to = parent->name();
  std::vector<const Entity*> order;
  post_order(*e, order);
  std::vector<Member> orphans;
  for (const Entity* x : order) {
    r.destroyed.push_back(x->name());
    for (const auto& [k, m] : x->members_) {
      member_index_.erase(k);
      orphans.push_back(m);
    }
  }
  const std::string leaf = leaf_name(e->name());
  parent->children_.erase(leaf);  // e is gone from here on
  resolve();

  for (Member m : orphans) {
    m.vcpu = -1;
    m.requested_vcpu = -1;  // it named a vcpu of the destroyed entity
    if (parent->is_root()) {
      r.released.push_back(m);
      continue;
    }
    assign_vcpu(*parent, m);
    parent->members_[m.key] = m;
    member_index_[m.key] = parent;
    r.moved.push_back(m);
  }
  return r;
}

// ---- members ----

void Tree::remove_member(MemberKey key) {
  auto it = member_index_.find(key);
  if (it == member_index_.end()) return;
  it->second->members_.erase(key);
  member_index_.erase(it);
}

Result<const Member*> Tree::bind(std::string_view name, Member m) {
  if (name.empty()) return invalid("cannot bind to the root; pick a scheduler");
  Entity* e = find_mut(name);
  if (e == nullptr) return not_found("scheduler '" + std::string(name) + "' does not exist");
  if (m.requested_vcpu >= e->vcpu_count()) {
    return invalid("vcpu " + std::to_string(m.requested_vcpu) + " is outside " + describe_vcpus(*e));
  }
  if (m.requested_vcpu < 0) m.requested_vcpu = -1;
  remove_member(m.key);
  m.vcpu = -1;
  assign_vcpu(*e, m);
  auto [it, _] = e->members_.insert_or_assign(m.key, m);
  member_index_[m.key] = e;
  return static_cast<const Member*>(&it->second);
}

Result<std::string> Tree::unbind(MemberKey key) {
  auto it = member_index_.find(key);
  if (it == member_index_.end()) return not_found(describe_member(key) + " is not bound");
  std::string name = it->second->name();
  remove_member(key);
  return name;
}

}  // namespace usched
