#include "gang.h"

#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "usched/names.h"

namespace usched::daemon {
namespace {

int64_t us_between(Gangs::Clock::time_point a, Gangs::Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

int64_t mono_us(Gangs::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

std::string label(const std::string& entity, const std::string& gang) { return entity + "/" + gang; }

}  // namespace

Gangs::Gangs(asio::io_context& io, glue::Glue& glue, const glue::ProcFs& proc, const std::unique_ptr<Tree>& tree)
    : io_(io), glue_(glue), proc_(proc), tree_(tree), poll_timer_(io) {
  poll();
}

Gangs::~Gangs() { stop(); }

Gangs::Sched* Gangs::find(const std::string& entity) {
  auto it = scheds_.find(entity);
  return it == scheds_.end() ? nullptr : it->second.get();
}
const Gangs::Sched* Gangs::find(const std::string& entity) const {
  auto it = scheds_.find(entity);
  return it == scheds_.end() ? nullptr : it->second.get();
}

// ---- RPCs ---------------------------------------------------------------------

Result<v1::Gang> Gangs::create(const v1::GangSpec& spec) {
  if (spec.scheduler().empty()) return invalid("name the scheduler the gang lives in (SCHED/GANG)");
  const Entity* e = tree_->find(spec.scheduler());
  if (!e) return not_found("no scheduler named '" + spec.scheduler() + "'");
  if (spec.name().empty()) return invalid("a gang needs a name");
  if (spec.name().find('/') != std::string::npos) {
    return invalid("gang name '" + spec.name() + "' may not contain '/': the gang is SCHED/GANG");
  }
  if (Status st = validate_name(spec.name()); !st) return invalid("gang name: " + st.message());
  const int vcpus = e->vcpu_count();
  const int width = spec.width() == 0 ? vcpus : spec.width();
  if (width < 1 || width > vcpus) {
    return invalid("gang " + label(spec.scheduler(), spec.name()) + " asks for " + std::to_string(width) +
                   " vcpus but scheduler " + spec.scheduler() + " has " + std::to_string(vcpus) +
                   " (give --width 1.." + std::to_string(vcpus) + ")");
  }
  const int quantum = spec.quantum_ms() == 0 ? kDefaultQuantumMs : spec.quantum_ms();
  if (quantum < 1 || quantum > 10000) {
    return invalid("quantum " + std::to_string(spec.quantum_ms()) + " ms is outside 1..10000 ms");
  }
  Sched* s = find(spec.scheduler());
  if (s && !spec.policy().empty() && spec.policy() != s->policy_name) {
    return precondition("scheduler " + spec.scheduler() + " runs its gangs with policy " + s->policy_name +
                        "; create this gang with --policy " + s->policy_name + " or none");
  }
  if (s && s->gangs.count(spec.name())) {
    return already_exists("gang " + label(spec.scheduler(), spec.name()) + " already exists");
  }
  bool fresh = false;
  if (scheds_.empty()) raise_priority();
  if (!s) {
    auto policy = make_gang_policy(spec.policy(), e->spec().lwktpri, vcpus);
    if (!policy) return policy.status();
    auto ns = std::make_unique<Sched>(io_, vcpus);
    ns->policy = std::move(policy.value());
    ns->policy_name = ns->policy->name();
    s = ns.get();
    scheds_[spec.scheduler()] = std::move(ns);
    fresh = true;
    arm_poll();
  }
  if (Status st = s->matrix.add(spec.name(), width); !st) {
    if (fresh) scheds_.erase(spec.scheduler());
    return st;
  }
  (void)s->matrix.set_active(spec.name(), false);  // an empty gang takes no slot
  Gang& g = s->gangs[spec.name()];
  g.order = next_order_++;
  g.width = width;
  g.quantum_ms = quantum;
  g.since = g.last_sample = Clock::now();
  spdlog::info("gang {} created (width {}, quantum {} ms, policy {})", label(spec.scheduler(), spec.name()),
               width, quantum, s->policy_name);
  return to_proto(spec.scheduler(), *s, spec.name(), g);
}

Status Gangs::destroy(const std::string& entity, const std::string& gang) {
  Sched* s = find(entity);
  if (!s || !s->gangs.count(gang)) return not_found("no gang " + label(entity, gang));
  // remove_gang thaws before it moves the tasks out: nothing stays frozen.
  // When the kernel keeps the group (EBUSY: a task we do not know of is in
  // it), the gang stays, its members back in its freezer group (some may
  // have left it already), and the caller hears why.
  if (Status st = glue_.remove_gang(entity, gang); !st) {
    spdlog::warn("removing the freezer group of gang {}: {}", label(entity, gang), st.message());
    for (const auto& [key, m] : s->gangs.at(gang).members) {
      if (Status j = glue_.join_gang(entity, gang, key.pid, key.tid); !j) {
        spdlog::warn("gang {}: pid {} back into its freezer: {}", label(entity, gang), key.pid, j.message());
      }
    }
    return Status(st.code(), "destroy gang " + label(entity, gang) + ": " + st.message());
  }
  retire(entity, *s, gang);
  s->gangs.erase(gang);
  (void)s->matrix.remove(gang);
  if (s->gangs.empty()) {
    retire_all(entity, *s);
    s->epoch++;
    s->timer.cancel();
    scheds_.erase(entity);
  } else {
    repack(entity, *s);
  }
  spdlog::info("gang {} destroyed", label(entity, gang));
  return Status::ok();
}

void Gangs::undo_create(const std::string& entity, const std::string& gang) {
  Sched* s = find(entity);
  if (!s || !s->gangs.count(gang)) return;
  s->gangs.erase(gang);
  (void)s->matrix.remove(gang);
  if (s->gangs.empty()) {
    s->epoch++;
    s->timer.cancel();
    scheds_.erase(entity);
  }
  spdlog::info("gang {}: not created (the state could not be written)", label(entity, gang));
}

Status Gangs::stage_destroy(const std::string& entity, const std::string& gang, bool staged) {
  Sched* s = find(entity);
  if (!s || !s->gangs.count(gang)) return not_found("no gang " + label(entity, gang));
  s->gangs.at(gang).staged_out = staged;
  return Status::ok();
}

Status Gangs::stage_remove(const std::string& entity, const std::string& gang, MemberKey key, bool staged) {
  Sched* s = find(entity);
  if (!s || !s->gangs.count(gang)) return not_found("no gang " + label(entity, gang));
  Gang& g = s->gangs.at(gang);
  auto it = g.members.find(key);
  if (it == g.members.end()) {
    return not_found("pid " + std::to_string(key.pid) + (key.tid ? " tid " + std::to_string(key.tid) : "") +
                     " is not in gang " + label(entity, gang));
  }
  it->second.staged_out = staged;
  return Status::ok();
}

Result<v1::Gang> Gangs::add_member(const std::string& entity, const std::string& gang, MemberKey key,
                                   uint64_t start_time, const std::string& threads) {
  Sched* s = find(entity);
  if (!s || !s->gangs.count(gang)) return not_found("no gang " + label(entity, gang));
  for (auto& [en, sc] : scheds_) {
    for (auto& [gn, g] : sc->gangs) {
      if (g.members.count(key) && !(en == entity && gn == gang)) {
        return precondition("pid " + std::to_string(key.pid) + (key.tid ? " tid " + std::to_string(key.tid) : "") +
                            " is already in gang " + label(en, gn) + "; remove it there first");
      }
    }
  }
  Gang& g = s->gangs.at(gang);
  if (auto it = g.members.find(key); it != g.members.end()) {
    if (it->second.glob != threads) {
      return precondition("pid " + std::to_string(key.pid) + " is already in gang " + label(entity, gang) +
                          (it->second.glob.empty() ? " with all its threads"
                                                   : " with threads '" + it->second.glob + "'") +
                          "; remove it first to choose other threads");
    }
    return to_proto(entity, *s, gang, g);
  }
  if (!threads.empty()) {
    if (key.tid != 0) return invalid("a thread glob selects threads of a whole process: give a pid, not a tid");
    if (Status st = validate_thread_glob(threads); !st) return st;
    // The matching threads join one by one (refresh()); the process as a
    // whole never does, so its other threads stay out of the group. The
    // freezer is made ready for them first (cgroup v2: a threaded subtree
    // of the process's own), so that a process it cannot take is refused
    // now, with the reason.
    if (Status st = glue_.isolate_threads(entity, gang, key.pid); !st) return st;
    GangMember& m = g.members[key];
    m.start_time = start_time;
    m.glob = threads;
  } else {
    if (Status st = glue_.join_gang(entity, gang, key.pid, key.tid); !st) return st;
    g.members[key].start_time = start_time;
  }
  const bool was_active = s->matrix.slot(gang).row >= 0;
  if (!was_active) {
    (void)s->matrix.set_active(gang, true);
    repack(entity, *s);
  } else {
    refresh(entity, gang, g, true);
  }
  spdlog::info("gang {}: added pid {} tid {}{}", label(entity, gang), key.pid, key.tid,
               threads.empty() ? "" : " threads '" + threads + "'");
  return to_proto(entity, *s, gang, g);
}

Status Gangs::remove_member(const std::string& entity, const std::string& gang, MemberKey key, bool strict) {
  Sched* s = find(entity);
  if (!s || !s->gangs.count(gang)) return not_found("no gang " + label(entity, gang));
  Gang& g = s->gangs.at(gang);
  if (!g.members.count(key)) {
    return not_found("pid " + std::to_string(key.pid) + (key.tid ? " tid " + std::to_string(key.tid) : "") +
                     " is not in gang " + label(entity, gang));
  }
  // Out of the freezer group first: a member that left never stays frozen.
  // Asked for (strict), a member the kernel keeps in the group stays in the
  // gang, which goes on thawing it in turn; leaving because it was unbound
  // or exited, it goes all the same.
  if (Status st = glue_.leave_gang(entity, gang, key.pid, key.tid); !st) {
    spdlog::warn("gang {}: taking pid {} out of the freezer: {}", label(entity, gang), key.pid, st.message());
    if (strict) {
      return Status(st.code(), "remove pid " + std::to_string(key.pid) + " from gang " + label(entity, gang) +
                                   ": " + st.message());
    }
  }
  g.members.erase(key);
  if (g.members.empty()) {
    if (g.frozen) (void)set_frozen(entity, gang, g, false);
    (void)s->matrix.set_active(gang, false);
    repack(entity, *s);
  } else {
    refresh(entity, gang, g, true);
  }
  return Status::ok();
}

bool Gangs::has(const std::string& entity, const std::string& gang) const {
  const Sched* s = find(entity);
  return s && s->gangs.count(gang);
}

void Gangs::forget(MemberKey key) {
  std::vector<std::pair<std::string, std::string>> where;
  for (auto& [en, s] : scheds_)
    for (auto& [name, g] : s->gangs)
      if (g.members.count(key)) where.emplace_back(en, name);
  for (auto& [en, name] : where) (void)remove_member(en, name, key);
}

std::string Gangs::gang_of(const std::string& entity, MemberKey key) const {
  const Sched* s = find(entity);
  if (!s) return "";
  for (auto& [name, g] : s->gangs)
    if (g.members.count(key)) return name;
  return "";
}

v1::ListGangsResponse Gangs::list(const std::string& entity) const {
  v1::ListGangsResponse resp;
  for (auto& [en, s] : scheds_) {
    if (!entity.empty() && en != entity) continue;
    auto* gs = resp.add_schedulers();
    gs->set_scheduler(en);
    gs->set_policy(s->policy_name);
    gs->set_rows(s->matrix.rows());
    gs->set_current_row(s->current);
    gs->set_rotations(s->rotations);
    gs->set_freezer(glue_.freezer());
    for (auto& [name, g] : s->gangs) *resp.add_gangs() = to_proto(en, *s, name, g);
  }
  return resp;
}

v1::Gang Gangs::to_proto(const std::string& entity, const Sched& s, const std::string& name, const Gang& g) const {
  v1::Gang out;
  auto* sp = out.mutable_spec();
  sp->set_scheduler(entity);
  sp->set_name(name);
  sp->set_quantum_ms(g.quantum_ms);
  sp->set_width(g.width);
  sp->set_policy(s.policy_name);
  GangSlot slot = s.matrix.slot(name);
  for (int c : slot.columns) out.add_vcpus(c);
  out.set_row(slot.row);
  out.set_frozen(g.frozen);
  for (auto& [key, m] : g.members) {
    auto* pm = out.add_members();
    pm->set_pid(key.pid);
    pm->set_tid(key.tid);
    pm->set_threads_glob(m.glob);
    for (auto& [tid, t] : m.threads) {
      pm->add_threads(tid);
      pm->add_thread_vcpus(t.vcpu);
      pm->add_thread_skew_us(t.lead_us);
    }
  }
  const Stats& st = g.stats;
  auto* ps = out.mutable_stats();
  const int64_t ongoing = us_between(g.since, Clock::now());
  ps->set_slots_run(st.slots_run);
  ps->set_switches(st.switches);
  ps->set_frozen_us(static_cast<uint64_t>(st.frozen_us + (g.frozen ? ongoing : 0)));
  ps->set_running_us(static_cast<uint64_t>(st.running_us + (g.frozen || g.members.empty() ? 0 : ongoing)));
  ps->set_freeze_latency_us_avg(st.freezes ? st.freeze_sum / static_cast<double>(st.freezes) : 0);
  ps->set_freeze_latency_us_max(st.freeze_max);
  ps->set_thaw_latency_us_avg(st.thaws ? st.thaw_sum / static_cast<double>(st.thaws) : 0);
  ps->set_thaw_latency_us_max(st.thaw_max);
  ps->set_co_run_ratio(st.sampled_us > 0 ? std::min(1.0, st.corun_us / st.sampled_us) : 0);
  ps->set_skew_us(skew_us(g));
  return out;
}

// ---- the rotation -------------------------------------------------------------

Status Gangs::set_frozen(const std::string& entity, const std::string& name, Gang& g, bool frozen) {
  if (g.frozen == frozen) return Status::ok();
  // Close the sampling period exactly at the switch: run time before a
  // freeze counts, time spent frozen never does.
  sample(g, Clock::now());
  const auto t0 = Clock::now();
  Status st = glue_.freeze_gang(entity, name, frozen);
  const auto t1 = Clock::now();
  const double lat = static_cast<double>(us_between(t0, t1));
  // Account the period that just ended.
  const int64_t period = us_between(g.since, t1);
  if (g.frozen) {
    g.stats.frozen_us += period;
  } else if (!g.members.empty()) {
    g.stats.running_us += period;
  }
  g.since = t1;
  if (!st) {
    // The glue leaves a failed freeze thawed: the gang runs, never sticks.
    g.frozen = false;
    spdlog::error("gang {}: {} failed: {}", label(entity, name), frozen ? "freeze" : "thaw", st.message());
    return st;
  }
  g.frozen = frozen;
  g.stats.switches++;
  if (frozen) {
    g.stats.freezes++;
    g.stats.freeze_sum += lat;
    g.stats.freeze_max = std::max(g.stats.freeze_max, lat);
  } else {
    g.stats.thaws++;
    g.stats.thaw_sum += lat;
    g.stats.thaw_max = std::max(g.stats.thaw_max, lat);
  }
  return Status::ok();
}

void Gangs::repack(const std::string& entity, Sched& s) {
  s.epoch++;
  s.timer.cancel();
  repacking_ = true;
  for (auto& [name, g] : s.gangs) refresh(entity, name, g, true);
  repacking_ = false;
  const int rows = s.matrix.rows();  // after the refreshes: they may empty a gang
  s.policy->reset(rows);
  s.current = -1;
  if (rows <= 1) {
    // No contention: nothing is ever stopped.
    for (auto& [name, g] : s.gangs) (void)set_frozen(entity, name, g, false);
    if (rows == 1) {
      s.current = 0;
      (void)s.policy->next();
      for (const std::string& n : s.matrix.runs_in(0)) s.gangs.at(n).stats.slots_run++;
    }
    return;
  }
  // Inactive gangs are never frozen.
  for (auto& [name, g] : s.gangs)
    if (s.matrix.slot(name).row < 0) (void)set_frozen(entity, name, g, false);
  rotate(entity, s);
}

void Gangs::rotate(const std::string& entity, Sched& s) {
  if (stopped_) return;
  const auto now = Clock::now();
  if (s.current >= 0 && s.current < s.matrix.rows()) {
    int64_t cpu = 0;
    for (const std::string& n : s.matrix.runs_in(s.current)) {
      Gang& g = s.gangs.at(n);
      sample(g, now);
      cpu += g.stats.cpu_us_quantum;
    }
    s.policy->charge(s.current, cpu, us_between(s.quantum_start, now), mono_us(now));
    s.policy->tick(s.current, mono_us(now));
  }
  for (auto& [n, g] : s.gangs) g.stats.cpu_us_quantum = 0;
  const int r = s.policy->next();
  if (r >= s.matrix.rows()) {
    // The matrix changed under the policy without a repack: never index a
    // row that is gone; start the rotation over.
    spdlog::warn("co-scheduler {}: row {} of {} is gone; repacking", entity, r, s.matrix.rows());
    repack(entity, s);
    return;
  }
  if (r < 0) {
    for (auto& [name, g] : s.gangs) (void)set_frozen(entity, name, g, false);
    s.current = -1;
    return;
  }
  const auto& run = s.matrix.runs_in(r);
  // Freeze the outgoing gangs before thawing the incoming ones, so that
  // threads of different gangs never share a quantum.
  std::string stuck;
  for (auto& [name, g] : s.gangs)
    if (!run.count(name) && s.matrix.slot(name).row >= 0)
      if (!set_frozen(entity, name, g, true) && stuck.empty()) stuck = name;
  if (!stuck.empty()) {
    s.policy->enqueue(r);  // row r did not get its turn: it stays queued
    hold(entity, s, stuck);
    return;
  }
  for (const std::string& n : run) {
    Gang& g = s.gangs.at(n);
    (void)set_frozen(entity, n, g, false);
    g.stats.slots_run++;
  }
  s.current = r;
  s.quantum_start = Clock::now();  // the quantum counts once the switch is confirmed
  s.rotations++;
  arm(entity, s, row_quantum(s, r));
}

int Gangs::row_quantum(const Sched& s, int r) const {
  int quantum = 0;
  for (const std::string& n : s.matrix.row(r)) quantum = std::max(quantum, s.gangs.at(n).quantum_ms);
  return quantum > 0 ? quantum : kDefaultQuantumMs;
}

// A freeze the kernel did not confirm in time leaves that gang running (the
// glue thaws it rather than leave it half frozen; a v2 freeze waits for
// every task to reach the kernel, which a slow or overloaded CPU delays).
// Thawing the incoming gangs beside it would run two gangs at once, so the
// switch is given up for this quantum: the gang that did not stop keeps the
// CPUs with the gangs of its own row, every other gang stays (or is) frozen,
// and the next quantum tries again.
void Gangs::hold(const std::string& entity, Sched& s, const std::string& stuck) {
  const int row = s.matrix.slot(stuck).row;
  const std::set<std::string> keep = s.matrix.runs_in(row);
  for (auto& [name, g] : s.gangs)
    if (!keep.count(name) && s.matrix.slot(name).row >= 0) (void)set_frozen(entity, name, g, true);
  for (const std::string& n : keep) (void)set_frozen(entity, n, s.gangs.at(n), false);
  spdlog::debug("co-scheduler {}: gang {} did not freeze; it keeps running with its row, the others wait a quantum",
               entity, label(entity, stuck));
  s.current = row;
  s.quantum_start = Clock::now();
  arm(entity, s, row_quantum(s, row));
}

void Gangs::arm(const std::string& entity, Sched& s, int quantum_ms) {
  s.timer.expires_after(std::chrono::milliseconds(quantum_ms));
  const uint64_t epoch = s.epoch;
  s.timer.async_wait([this, entity, epoch](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    Sched* cur = find(entity);
    if (!cur || cur->epoch != epoch) return;
    rotate(entity, *cur);
  });
}

// ---- threads ------------------------------------------------------------------

void Gangs::place_thread(const std::string& entity, const Sched& s, const std::string& name, MemberKey key,
                         int tid, Thread& t) {
  const Entity* e = tree_->find(entity);
  if (!e || t.vcpu < 0) return;
  CpuSet cpus;
  if (t.vcpu < e->vcpu_count()) cpus = e->vcpu_effective()[static_cast<size_t>(t.vcpu)];
  if (cpus.empty()) cpus = e->runnable();
  glue::TaskSettings ts{cpus, e->class_params()};
  if (Status st = glue_.place(key.pid, tid, ts); !st) {
    // A listed thread that is gone by now is expected, not a fault: exec
    // ends every thread but the caller's (`usched run --gang` execs after
    // its own gRPC threads were listed), and threads end all the time. The
    // next refresh drops it from the member's threads.
    if (st.code() == Code::kNotFound) {
      spdlog::debug("gang {}: tid {} ended before it was placed on vcpu {}", label(entity, name), tid, t.vcpu);
      return;
    }
    spdlog::warn("gang {}: placing tid {} on vcpu {}: {}", label(entity, name), tid, t.vcpu, st.message());
  }
}

void Gangs::refresh(const std::string& entity, const std::string& name, Gang& g, bool place_all) {
  Sched* s = find(entity);
  if (!s) return;
  std::vector<MemberKey> gone;
  for (auto& [key, m] : g.members) {
    auto info = proc_.task(key.pid, key.tid);
    if (!info || info->start_time != m.start_time || info->exited()) {
      gone.push_back(key);
      continue;
    }
    std::vector<int> tids;
    if (key.tid != 0) {
      tids.push_back(key.tid);
    } else if (!m.glob.empty()) {
      auto t = glob_threads(entity, name, key, m);
      if (!t) {
        gone.push_back(key);
        continue;
      }
      tids = std::move(*t);
    } else if (auto t = proc_.threads(key.pid); t) {
      tids = *t;
    } else {
      gone.push_back(key);
      continue;
    }
    std::map<int, Thread> next;
    for (int tid : tids) {
      auto it = m.threads.find(tid);
      next[tid] = it == m.threads.end() ? Thread{} : it->second;
    }
    m.threads = std::move(next);
  }
  for (MemberKey k : gone) {
    spdlog::info("gang {}: pid {} tid {} exited; it leaves the gang", label(entity, name), k.pid, k.tid);
    // Nothing of it is left to move, but what the glue made for it goes
    // (cgroup v2: the process's own threaded subtree).
    if (Status st = glue_.leave_gang(entity, name, k.pid, k.tid); !st) {
      spdlog::warn("gang {}: after pid {} exited: {}", label(entity, name), k.pid, st.message());
    }
    g.members.erase(k);
  }
  // One thread per vcpu over the gang's columns, round robin when there
  // are more threads than columns.
  const GangSlot slot = s->matrix.slot(name);
  if (!slot.columns.empty()) {
    size_t i = 0;
    for (auto& [key, m] : g.members) {
      for (auto& [tid, t] : m.threads) {
        const int want = slot.columns[i++ % slot.columns.size()];
        if (want != t.vcpu || place_all) {
          t.vcpu = want;
          place_thread(entity, *s, name, key, tid, t);
        }
      }
    }
  }
  if (g.members.empty() && slot.row >= 0) {
    // An empty gang stops taking slots, and is never left frozen.
    (void)set_frozen(entity, name, g, false);
    (void)s->matrix.set_active(name, false);
    // The matrix lost a row maybe: the rotation must start over from it
    // (unless repack() is the caller and does so itself).
    if (!repacking_) repack(entity, *s);
  }
}

std::optional<std::vector<int>> Gangs::glob_threads(const std::string& entity, const std::string& name,
                                                    MemberKey key, GangMember& m) {
  auto all = proc_.threads(key.pid);
  if (!all) return std::nullopt;
  std::vector<int> in;
  std::set<int> outside;
  for (int tid : *all) {
    auto info = proc_.task(key.pid, tid);
    if (!info) continue;  // exited meanwhile
    const bool match = ::fnmatch(m.glob.c_str(), info->comm.c_str(), 0) == 0;
    if (match) {
      if (m.threads.count(tid)) {
        in.push_back(tid);
        continue;
      }
      // New, or renamed to match (QEMU names a vCPU thread once it runs).
      if (Status st = glue_.join_gang(entity, name, key.pid, tid); !st) {
        if (m.refused.insert(tid).second) {
          spdlog::warn("gang {}: thread {} '{}' of pid {} cannot join: {}", label(entity, name), tid, info->comm,
                       key.pid, st.message());
        }
        continue;
      }
      spdlog::info("gang {}: thread {} '{}' of pid {} joins (matches '{}')", label(entity, name), tid, info->comm,
                   key.pid, m.glob);
      in.push_back(tid);
      continue;
    }
    outside.insert(tid);
    // A thread made by a gang thread starts in the gang's freezer group,
    // and one renamed away from the glob is still in it: out, once.
    if (m.threads.count(tid) || !m.outside.count(tid)) {
      if (Status st = glue_.leave_gang(entity, name, key.pid, tid); !st) {
        spdlog::warn("gang {}: keeping thread {} '{}' of pid {} out of the freezer: {}", label(entity, name), tid,
                     info->comm, key.pid, st.message());
      } else if (m.threads.count(tid)) {
        spdlog::info("gang {}: thread {} '{}' of pid {} no longer matches '{}'; it leaves", label(entity, name), tid,
                     info->comm, key.pid, m.glob);
      }
    }
  }
  m.outside = std::move(outside);
  std::erase_if(m.refused, [&](int tid) { return !std::binary_search(all->begin(), all->end(), tid); });
  return in;
}

uint64_t Gangs::skew_us(const Gang& g) {
  uint64_t most = 0;
  for (auto& [key, m] : g.members)
    for (auto& [tid, t] : m.threads) most = std::max(most, t.lead_us);
  return most;
}

void Gangs::sample(Gang& g, Clock::time_point now) {
  const int64_t elapsed = us_between(g.last_sample, now);
  g.last_sample = now;
  int64_t least = -1, total = 0;
  std::vector<std::pair<Thread*, int64_t>> runnable;  // threads that ran or wanted to, and their progress
  for (auto& [key, m] : g.members) {
    for (auto& [tid, t] : m.threads) {
      auto ns = proc_.run_ns(key.pid, tid);
      if (!ns) continue;
      const bool had = t.sampled;
      const int64_t d = had ? static_cast<int64_t>((*ns - t.run_ns) / 1000) : 0;
      t.run_ns = *ns;
      t.sampled = true;
      if (!had) continue;
      total += d;
      // A thread that did not run counts only if it wanted to (state R):
      // one asleep in a join is not a partner being waited for.
      bool counts = d > 0;
      if (!counts) {
        auto info = proc_.task(key.pid, tid);
        counts = info && info->state == 'R';
      }
      if (counts) {
        least = least < 0 ? d : std::min(least, d);
        runnable.emplace_back(&t, d);
      }
    }
  }
  // Skew: each runnable thread gains what it ran beyond the slowest one.
  for (auto& [t, d] : runnable) t->lead_us += static_cast<uint64_t>(std::max<int64_t>(0, d - least));
  g.stats.cpu_us_quantum += total;
  if (!g.frozen && least >= 0 && elapsed > 0) {
    g.stats.sampled_us += static_cast<double>(elapsed);
    g.stats.corun_us += static_cast<double>(std::min(least, elapsed));
  }
}

void Gangs::raise_priority() {
  if (raised_ || !tree_) return;
  // The strand switches gangs: behind spinning members at normal priority
  // it would wake milliseconds late and stretch every quantum. Above every
  // member's realtime priority (lwktpri 31 gives 24) it runs on time. So
  // do the daemon's other threads (gRPC's, which answer every RPC, and the
  // cgroup mover): behind realtime members spinning on every CPU they got
  // only what RT throttling leaves (5%), and an RPC took a second.
  glue::TaskSettings ts{tree_->root().effective(), ClassParams{SchedClass::kRealtime, kStrandRtPriority}};
  if (Status st = glue_.place(static_cast<int>(::getpid()), 0, ts); !st) {
    spdlog::warn("co-scheduler: cannot run uschedd at SCHED_RR {}: {}; quanta may stretch under load",
                 kStrandRtPriority, st.message());
  } else {
    spdlog::info("co-scheduler: uschedd's threads run at SCHED_RR {}", kStrandRtPriority);
  }
  raised_ = true;
}

void Gangs::replaced(MemberKey key) {
  for (auto& [en, s] : scheds_) {
    for (auto& [name, g] : s->gangs) {
      if (!g.members.count(key)) continue;
      // v2: the move into "<entity>/@members" took the process out of
      // "<entity>/gang:<G>"; back in (frozen with the gang if it is). The
      // v1 freezer is a hierarchy of its own: a cpuset move leaves it be.
      // So does the systemd driver's move into a new scope. A glob
      // member's threads go back one by one (the move put the whole
      // process, its gang threads too, into "@members").
      if (glue_.kind() == glue::Kind::kCgroupV2 || glue_.kind() == glue::Kind::kSystemd) {
        const GangMember& m = g.members.at(key);
        std::vector<int> tids;
        if (m.glob.empty()) {
          tids.push_back(key.tid);
        } else {
          for (auto& [tid, t] : m.threads) tids.push_back(tid);
        }
        for (int tid : tids) {
          if (Status st = glue_.join_gang(en, name, key.pid, tid); !st) {
            spdlog::warn("gang {}: pid {} tid {} back into the freezer group: {}", label(en, name), key.pid, tid,
                         st.message());
          }
        }
      }
      for (auto& [tid, t] : g.members.at(key).threads) place_thread(en, *s, name, key, tid, t);
    }
  }
}

void Gangs::poll() {
  if (stopped_) return;
  prune();
  const auto now = Clock::now();
  for (auto& [en, s] : scheds_) {
    std::vector<std::string> names;
    for (auto& [name, g] : s->gangs) names.push_back(name);
    for (const std::string& name : names) {
      auto it = s->gangs.find(name);
      if (it == s->gangs.end()) continue;
      refresh(en, name, it->second, false);
      if (s->gangs.count(name)) sample(s->gangs.at(name), now);
    }
  }
  arm_poll();
}

void Gangs::prune() {
  std::vector<std::string> dead;
  for (auto& [en, s] : scheds_) {
    if (!tree_->find(en)) dead.push_back(en);
  }
  for (const std::string& en : dead) {
    Sched* s = find(en);
    for (auto& [name, g] : s->gangs) {
      if (Status st = glue_.remove_gang(en, name); !st) spdlog::warn("gang {}: {}", label(en, name), st.message());
    }
    retire_all(en, *s);
    s->epoch++;
    s->timer.cancel();
    scheds_.erase(en);
    spdlog::info("scheduler {} is gone: its gangs are destroyed", en);
  }
}

void Gangs::arm_poll() {
  // Only while some gang exists: an idle daemon does not wake 50 times a second.
  if (polling_ || stopped_ || scheds_.empty()) return;
  polling_ = true;
  poll_timer_.expires_after(kPoll);
  poll_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: stopping
    polling_ = false;
    poll();
  });
}

// ---- durability ------------------------------------------------------------------

void Gangs::save(v1::StateFile& f) const {
  for (auto& [en, s] : scheds_) {
    if (!tree_ || !tree_->find(en)) continue;  // its scheduler is being destroyed
    std::vector<std::pair<uint64_t, std::string>> order;
    for (auto& [name, g] : s->gangs)
      if (!g.staged_out) order.emplace_back(g.order, name);
    std::sort(order.begin(), order.end());
    for (auto& [o, name] : order) {
      const Gang& g = s->gangs.at(name);
      auto* sg = f.add_gangs();
      sg->set_scheduler(en);
      sg->set_name(name);
      sg->set_quantum_ms(g.quantum_ms);
      sg->set_width(g.width);
      sg->set_policy(s->policy_name);
      for (auto& [key, m] : g.members) {
        if (m.staged_out) continue;
        // Only a member the file also binds here: the gang never claims
        // a task the tree has let go (unbound, exited, moved elsewhere).
        const Entity* e = tree_->entity_of(key);
        const Member* tm = tree_->member(key);
        if (!e || e->name() != en || !tm || tm->start_time != m.start_time) continue;
        auto* sm = sg->add_members();
        sm->set_pid(key.pid);
        sm->set_tid(key.tid);
        sm->set_start_time(m.start_time);
        sm->set_threads(m.glob);
      }
    }
  }
}

void Gangs::load(const v1::StateFile& f) {
  int gangs = 0, joined = 0, gone = 0;
  for (const auto& sg : f.gangs()) {
    const std::string what = label(sg.scheduler(), sg.name());
    if (!tree_->find(sg.scheduler())) {
      spdlog::error("state: cannot re-create gang {}: its scheduler {} was not re-created", what, sg.scheduler());
      continue;
    }
    v1::GangSpec spec;
    spec.set_scheduler(sg.scheduler());
    spec.set_name(sg.name());
    spec.set_quantum_ms(sg.quantum_ms());
    spec.set_width(sg.width());
    spec.set_policy(sg.policy());
    auto g = create(spec);
    if (!g) {
      // The machine changed under the state (fewer CPUs than the width):
      // say so loudly and go on, as for schedulers.
      spdlog::error("state: cannot re-create gang {}: {}", what, g.status().message());
      continue;
    }
    ++gangs;
    for (const auto& sm : sg.members()) {
      const MemberKey key{sm.pid(), sm.tid()};
      const Entity* e = tree_->entity_of(key);
      const Member* tm = tree_->member(key);
      if (!e || e->name() != sg.scheduler() || !tm || tm->start_time != sm.start_time()) {
        ++gone;
        spdlog::info("state: pid {} tid {} of gang {} is gone", key.pid, key.tid, what);
        continue;
      }
      // Back into the gang's freezer group (it may still be there: the
      // groups outlive us, and start-up thawed them all).
      if (auto r = add_member(sg.scheduler(), sg.name(), key, tm->start_time, sm.threads()); !r) {
        ++gone;
        spdlog::error("state: pid {} tid {} cannot rejoin gang {}: {}; it stays bound to {} outside the gang",
                      key.pid, key.tid, what, r.status().message(), sg.scheduler());
        continue;
      }
      ++joined;
    }
  }
  if (f.gangs_size() > 0) {
    spdlog::info("state: re-created {} gangs, {} members rejoined, {} gone", gangs, joined, gone);
  }
}

// ---- totals --------------------------------------------------------------------

int64_t Gangs::frozen_us_now(const Gang& g, Clock::time_point now) {
  return g.stats.frozen_us + (g.frozen ? us_between(g.since, now) : 0);
}

void Gangs::retire(const std::string& entity, const Sched& s, const std::string& gang) {
  auto it = s.gangs.find(gang);
  if (it == s.gangs.end()) return;
  retired_[entity].frozen_us += static_cast<uint64_t>(std::max<int64_t>(0, frozen_us_now(it->second, Clock::now())));
}

void Gangs::retire_all(const std::string& entity, const Sched& s) {
  for (auto& [name, g] : s.gangs) retire(entity, s, name);
  retired_[entity].switches += s.rotations;
}

Gangs::Totals Gangs::totals(const std::string& entity) const {
  Totals t;
  if (auto it = retired_.find(entity); it != retired_.end()) {
    t.switches = it->second.switches;
    t.frozen_us = it->second.frozen_us;
  }
  const Sched* s = find(entity);
  if (!s) return t;
  const auto now = Clock::now();
  t.gangs = static_cast<int>(s->gangs.size());
  t.slots = s->matrix.rows();
  t.switches += s->rotations;
  for (auto& [name, g] : s->gangs) t.frozen_us += static_cast<uint64_t>(std::max<int64_t>(0, frozen_us_now(g, now)));
  return t;
}

void Gangs::samples(v1::GetStatsResponse& out) const {
  for (auto& [en, s] : scheds_) {
    std::vector<std::pair<uint64_t, std::string>> order;
    for (auto& [name, g] : s->gangs) order.emplace_back(g.order, name);
    std::sort(order.begin(), order.end());
    for (auto& [o, name] : order) {
      const Gang& g = s->gangs.at(name);
      auto* p = out.add_gangs();
      p->set_scheduler(en);
      p->set_gang(name);
      p->set_skew_us(skew_us(g));
      p->set_co_run_ratio(g.stats.sampled_us > 0 ? std::min(1.0, g.stats.corun_us / g.stats.sampled_us) : 0);
      int threads = 0;
      for (auto& [key, m] : g.members) threads += static_cast<int>(m.threads.size());
      p->set_threads(threads);
    }
  }
}

void Gangs::thaw_everything() {
  for (auto& [en, s] : scheds_) {
    s->epoch++;
    s->timer.cancel();
    for (auto& [name, g] : s->gangs) (void)set_frozen(en, name, g, false);
  }
  // Behind the bookkeeping, the kernel's word: every usched freezer group.
  if (Status st = glue_.thaw_all(); !st) spdlog::error("thawing every gang: {}", st.message());
}

void Gangs::stop() {
  if (stopped_) return;
  stopped_ = true;
  poll_timer_.cancel();
  thaw_everything();
}

}  // namespace usched::daemon
