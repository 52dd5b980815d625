//! CPU accounting per scheduler. The kernel accounts CPU time per task
//! (utime + stime in /proc/PID/stat, summed over a process's threads, live
//! and exited); every sample credits each member's growth since the last
//! sample to the entity it is bound to now. This works on every glue
//! (cgroup v1 here has cpuacct in its own hierarchy, which we do not
//! manage; affinity-only machines have no groups at all; thread members
//! never join a cgroup on v2) and cgroup moves, which are asynchronous
//! (join_later), cannot misattribute time. The totals are monotonic for as
//! long as uschedd runs, as a Prometheus counter must be. Sampling costs a
//! /proc read per member each second, so it runs only from the first stats
//! request (usched top, a metrics scrape) until ten minutes after the last:
//! counters start at the first look.
#include <chrono>

#include "engine.h"
#include "gang.h"

namespace usched::daemon {

void Engine::account() {
  if (!tree_) return;
  std::map<MemberKey, uint64_t> now;
  tree_->for_each([&](const Entity& e) {
    for (auto& [key, m] : e.members()) {
      auto info = proc_.task(key.pid, key.tid);
      if (!info || info->start_time != m.start_time) continue;
      uint64_t before = info->cpu_us;  // first sight: nothing to credit yet
      if (auto it = member_cpu_.find(key); it != member_cpu_.end()) before = it->second;
      if (info->cpu_us > before) entity_cpu_us_[e.name()] += info->cpu_us - before;
      now[key] = info->cpu_us;
    }
  });
  member_cpu_ = std::move(now);
}

v1::GetStatsResponse Engine::stats() {
  // The sweep samples every second from now on, for the next 10 minutes
  // (longer than any scrape interval), so the counters follow members that
  // come and go between two requests.
  stats_wanted_until_ = std::chrono::steady_clock::now() + std::chrono::minutes(10);
  account();
  v1::GetStatsResponse resp;
  resp.set_time_us(std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count());
  resp.set_online_cpus(tree_->root().effective().to_string());
  tree_->for_each([&](const Entity& e) {
    if (e.is_root()) return;
    auto* s = resp.add_schedulers();
    s->set_name(e.name());
    if (auto it = entity_cpu_us_.find(e.name()); it != entity_cpu_us_.end()) s->set_cpu_usage_us(it->second);
    s->set_members(static_cast<int>(e.members().size()));
    s->set_effective_cpus(e.effective().to_string());
    s->set_vcpus(e.vcpu_count());
    const v1::Scheduler p = to_proto(e);
    s->set_effective_class(p.effective_class());
    // Gangs: how many, the time slots (rows) of the entity's matrix, and
    // the co-scheduler's counters (row switches, time frozen), which count
    // destroyed gangs too so they never go down.
    if (gangs_) {
      const Gangs::Totals g = gangs_->totals(e.name());
      s->set_gangs(g.gangs);
      s->set_gang_slots(g.slots);
      s->set_gang_switches(g.switches);
      s->set_frozen_us(g.frozen_us);
    }
  });
  if (gangs_) gangs_->samples(resp);
  return resp;
}

}  // namespace usched::daemon
